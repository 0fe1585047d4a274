"""Review fixes seen from the operator commands, against a real Redis: erasure of a stored
resend payload, the corrected order's id, exit codes and markup-safe output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from ops.cli import main
from tests.integration.cli.test_dlq_cli import EMAIL, Books, raw_order
from worker.core.states import DeadReason, OrderState
from worker.settings import get_settings

pytestmark = pytest.mark.integration

# Nothing listens on port 1: connections are refused at once.
DEAD_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def books(redis_url: str, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> Iterator[Books]:
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_WEBHOOK_HASH", sandbox.webhook_hash)
    get_settings.cache_clear()
    b = Books(redis_url)
    yield b
    b.client.close()
    get_settings.cache_clear()


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", DEAD_URL)
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", DEAD_URL)
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "t0ken")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def jr(*args: str, input: str | None = None) -> Result:
    # Wide, so table cells are not folded.
    return CliRunner().invoke(main, list(args), input=input, env={"COLUMNS": "300"})


def assert_one_clean_line(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert text in result.stderr
    assert "Traceback" not in result.output


# --- erasure -----------------------------------------------------------------------------------


def test_erase_scrubs_the_payload_stored_for_a_resend(books: Books) -> None:
    """`dlq replay --resend-stored` stores the payload in the ledger (`resend_payload`); an
    order that died again with it set is erased there too."""
    books.make_dead("rs-er")
    assert books.cli("replay", "rs-er", "--resend-stored").exit_code == 0
    books.ledger.mark_dead("rs-er", reason=DeadReason.REJECTED, now=time.time())
    before = books.ledger.get("rs-er")
    assert before is not None and before.state is OrderState.DEAD
    assert before.resend_payload is not None and EMAIL.encode() in before.resend_payload

    result = books.cli("erase", "--email", EMAIL, "--yes")

    assert result.exit_code == 0, result.output
    after = books.ledger.get("rs-er")
    assert after is not None and after.resend_payload is not None
    assert EMAIL.encode() not in after.resend_payload
    assert b"Lovelace" not in after.resend_payload
    assert json.loads(after.resend_payload)["lineItems"]  # still a payload, scrubbed


# --- replay ------------------------------------------------------------------------------------


def test_a_correction_whose_id_is_only_a_suffix_of_the_key_is_refused(
    books: Books, tmp_path: Path
) -> None:
    books.make_dead("shop-a:1001", order=raw_order("1001"))
    fix = tmp_path / "fix.json"
    fix.write_bytes(orjson.dumps(raw_order("1", quantity=2)))

    result = books.cli("replay", "shop-a:1001", "--raw-file", str(fix))

    assert result.exit_code == 2, result.output
    assert "is not the id of order" in result.stderr
    assert books.state("shop-a:1001") is OrderState.DEAD
    fix.write_bytes(orjson.dumps(raw_order("1001", quantity=2)))
    assert books.cli("replay", "shop-a:1001", "--raw-file", str(fix)).exit_code == 0


def test_replay_of_only_unknown_keys_exits_3(books: Books) -> None:
    result = books.cli("replay", "nope-1", "nope-2")
    assert result.exit_code == 3, result.output
    assert "nope-1: no dead letter" in result.stderr
    books.make_dead("known-1")
    assert books.cli("replay", "known-1", "nope-1").exit_code == 1  # done in part


# --- markup ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["shop[a]:1", "x[/]y", "[bold]z[/bold]"])
def test_keys_print_as_they_are(books: Books, key: str) -> None:
    books.make_dead(key, order=raw_order("1"), excerpt="bad [/] excerpt [red]x")
    for args in (["dlq", "show", key], ["dlq", "list"], ["order", "show", key]):
        result = jr(*args, "--redis-url", books.redis_url)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert key in result.stdout, (args, result.stdout)
    shown = jr("dlq", "show", key, "--redis-url", books.redis_url).stdout
    assert "bad [/] excerpt [red]x" in shown


# --- unreachable or malformed Redis ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["dlq", "list"],
        ["dlq", "show", "k"],
        ["order", "show", "k"],
        ["reconcile", "status"],
        ["enqueue", "-"],
    ],
)
def test_a_malformed_redis_url_is_a_usage_error(args: list[str]) -> None:
    result = jr(*args, "--redis-url", "foo", input="{}")
    assert_one_clean_line(result, 2, "not a Redis URL")


@pytest.mark.parametrize("sub", ["status", "run"])
def test_reconcile_without_redis_says_so_and_exits_4(no_redis: None, sub: str) -> None:
    assert_one_clean_line(jr("reconcile", sub), 4, "cannot reach Redis")


def test_enqueue_without_redis_says_so_and_exits_4(no_redis: None) -> None:
    order = json.dumps(raw_order("e-1"))
    assert_one_clean_line(jr("enqueue", "-", input=order), 4, "cannot reach Redis")
    help_text = jr("enqueue", "--help").stdout
    assert "4 when Redis is unreachable" in " ".join(help_text.split())
