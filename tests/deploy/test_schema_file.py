"""The raw-order contract, published: docs/raw-order.schema.json (issue 14 point 3).

Upstream teams validate against the committed file before they send; these tests keep it the
output of `jetti-relay schema` and show a standard JSON Schema validator (not ours) agrees with
the relay on real orders.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from ops.commands.preview import schema
from tests.factories import raw_order
from worker.core.contract import parse_raw_order
from worker.core.errors import InvalidOrder

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "raw-order.schema.json"
SAMPLES = [ROOT / "ops" / "demo" / "data" / name for name in ("orders.jsonl", "updates.jsonl")]


def test_the_committed_schema_is_what_the_command_prints() -> None:
    """A contract change without `jetti-relay schema > docs/raw-order.schema.json` fails here."""
    printed = CliRunner().invoke(schema, []).stdout
    assert SCHEMA_FILE.read_text(encoding="utf-8") == printed, (
        "docs/raw-order.schema.json is stale: run "
        "`./run jetti-relay schema > docs/raw-order.schema.json`"
    )


def test_a_standard_validator_agrees_with_the_relay_on_the_demo_orders() -> None:
    """Every demo order and update (mappings for properties, one shipping object, the sample's
    deliberately invalid ones) gets the same verdict from jsonschema as from the relay."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))
    orders = [
        json.loads(line)
        for sample in SAMPLES
        for line in sample.read_text("utf-8").splitlines()
        if line.strip()
    ]
    verdicts = set()
    for order in orders:
        try:
            parse_raw_order(order)
            relay_accepts = True
        except InvalidOrder:
            relay_accepts = False
        schema_accepts = not list(validator.iter_errors(order))
        assert schema_accepts == relay_accepts, order.get("id")
        verdicts.add(relay_accepts)
    assert verdicts == {True, False}, "the sample should hold valid and invalid orders"


def test_a_standard_validator_refuses_what_the_relay_refuses() -> None:
    """An order without an id, or with a line item missing its quantity, fails the schema too."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))
    no_id = raw_order("s-1")
    del no_id["id"]
    assert list(validator.iter_errors(no_id))
    no_quantity = raw_order("s-2")
    del no_quantity["lines"][0]["quantity"]
    assert list(validator.iter_errors(no_quantity))
