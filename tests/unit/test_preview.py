"""`jetti-relay preview` and `schema`: the transform seen from a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ops.commands.preview import preview, schema

RULES = Path(__file__).resolve().parents[1] / "data" / "rules" / "example.toml"
GOOD = '{"id": "%s", "lines": [{"sku": "S", "name": "n", "quantity": 1, "unit_price": 1}]}'
BAD_QUANTITY = '{"id": "b", "lines": [{"sku": "S", "name": "n", "quantity": 0, "unit_price": 1}]}'


def run(stdin: str, *args: str) -> tuple[int, list[str], list[str]]:
    result = CliRunner().invoke(preview, ["-", *args], input=stdin)
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def test_json_lines_mixed_valid_and_invalid() -> None:
    """Valid orders print as JSON Lines; invalid ones go to stderr with order, line and path."""
    text = "\n".join([GOOD % "a", "", BAD_QUANTITY, GOOD % "c", "{oops"]) + "\n"
    code, out, err = run(text)
    assert code == 1
    assert [json.loads(o)["externalId"] for o in out] == ["a", "c"]
    assert err[0] == "order 2 (line 3): lines[0].quantity: must be >= 1"
    assert err[1].startswith("order 4 (line 5): $: invalid JSON")
    assert err[-1] == "4 orders: 2 valid, 2 invalid"


def test_all_valid_exits_zero() -> None:
    """Exit code 0 when every order builds."""
    code, out, _ = run(GOOD % "a")
    assert code == 0
    assert len(out) == 1


def test_array_input_reports_element_lines() -> None:
    """A JSON array is read element by element, each reported at the line it starts on."""
    code, out, err = run("[\n" + GOOD % "a" + ",\n" + BAD_QUANTITY + "\n]")
    assert code == 1
    assert len(out) == 1
    assert err[0] == "order 2 (line 3): lines[0].quantity: must be >= 1"


def test_single_pretty_printed_object() -> None:
    """One object spread over several lines is one order."""
    code, out, _ = run(json.dumps(json.loads(GOOD % "a"), indent=2))
    assert code == 0
    assert json.loads(out[0])["externalId"] == "a"


def test_rules_apply(tmp_path: Path) -> None:
    """--rules routes and splits lines like the worker would."""
    doc = (
        '{"id": "a", "lines": [{"sku": "ENGRAVE-1", "name": "n", "quantity": 2, "unit_price": 1}]}'
    )
    code, out, _ = run(doc, "--rules", str(RULES))
    assert code == 0
    assert [i["externalId"] for i in json.loads(out[0])["lineItems"]] == [
        "ENGRAVE-1_1",
        "ENGRAVE-1_2",
    ]


def test_the_line_item_cap_applies_as_in_the_worker() -> None:
    """An order that would split into more line items than --max-line-items (default: the
    worker's default) is invalid, with the worker's message (reliability #12)."""
    doc = (
        '{"id": "a", "lines": [{"sku": "ENGRAVE-1", "name": "n", "quantity": 3, "unit_price": 1}]}'
    )
    code, out, err = run(doc, "--rules", str(RULES), "--max-line-items", "2")
    assert code == 1 and out == []
    assert (
        "the order would become 3 line items after splitting, more than the limit of 2" in (err[0])
    )
    lines = [
        {"id": f"l{n}", "sku": "ENGRAVE-1", "name": "n", "quantity": 1000, "unit_price": 1}
        for n in range(11)
    ]
    many = json.dumps({"id": "b", "lines": lines})
    code, _, err = run(many, "--rules", str(RULES))
    assert code == 1 and "more than the limit of 10000" in err[0]


def test_bad_rules_file_is_a_usage_error(tmp_path: Path) -> None:
    """A broken rules file stops preview with exit code 2 and names the key."""
    bad = tmp_path / "r.toml"
    bad.write_text("[split]\nskus = 3\n")
    code, _, err = run(GOOD % "a", "--rules", str(bad))
    assert code == 2
    assert "split.skus" in "\n".join(err)


def test_schema_prints_the_contract() -> None:
    """`schema` prints RawOrder's JSON Schema."""
    result = CliRunner().invoke(schema, [])
    assert result.exit_code == 0
    assert "lines" in json.loads(result.stdout)["properties"]


def test_preview_imports_neither_celery_nor_redis() -> None:
    """The preview module starts without Celery or Redis."""
    code = (
        "import sys, ops.commands.preview; "
        "assert 'celery' not in sys.modules and 'redis' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_preview_id_prefix_gives_the_externalid_the_worker_sends() -> None:
    """The worker sends the order key (prefix + id) as externalId; preview shows the same."""
    order = GOOD % "1001"
    result = CliRunner().invoke(preview, ["-", "--id-prefix", "shop-a:"], input=order)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["externalId"] == "shop-a:1001"
    plain = CliRunner().invoke(preview, ["-"], input=order)
    assert json.loads(plain.stdout.splitlines()[0])["externalId"] == "1001"
