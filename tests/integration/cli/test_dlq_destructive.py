"""`jetti-relay dlq export`, `purge` and `erase` against a real Redis: what leaves the store or
the building, only when asked (`--yes`), audited, with personal data masked unless asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import EMAIL, new_version, one_line_order
from tests.fixtures.dead_letters import DeadLetterDesk
from worker.core.jsonio import loads_document
from worker.core.states import DeadReason, OrderState
from worker.store.audit import os_user

pytestmark = pytest.mark.integration


def test_export_masks_personal_data_unless_asked(
    desk: DeadLetterDesk, tmp_path: Path, sandbox: Any
) -> None:
    """export writes one JSON object per entry; personal data is masked unless
    --include-personal-data, which is audited; secrets are masked always."""
    desk.make_dead("ex-1", excerpt=f"hash {sandbox.webhook_hash}")
    desk.make_dead("ex-2")
    masked_file, full_file = tmp_path / "masked.jsonl", tmp_path / "full.jsonl"

    assert desk.cli("export", "-o", str(masked_file)).exit_code == 0
    assert desk.cli("export", "-o", str(full_file), "--include-personal-data").exit_code == 0

    rows = [json.loads(line) for line in masked_file.read_text().splitlines()]
    assert sorted(r["order_key"] for r in rows) == ["ex-1", "ex-2"]
    assert EMAIL not in masked_file.read_text() and "Lovelace" not in masked_file.read_text()
    assert rows[0]["raw"]["customer"]["email"] == "***"
    assert EMAIL in full_file.read_text()
    for path in (masked_file, full_file):
        assert sandbox.webhook_hash not in path.read_text()
    (record,) = desk.audit.read(action="export")
    assert record.details["personal_data"] is True


def test_purge_requires_yes_and_exports_first(desk: DeadLetterDesk, tmp_path: Path) -> None:
    """Without --yes nothing is deleted; with it the entries go to the export, then away."""
    desk.make_dead("pu-1")
    desk.make_dead("pu-2")
    desk.make_dead("keep", reason=DeadReason.REJECTED)
    export = tmp_path / "purged.jsonl"

    refused = desk.cli("purge", "--reason", "retries_exhausted")
    no_filter = desk.cli("purge", "--yes")
    assert refused.exit_code == 2 and "would delete 2" in refused.output
    assert no_filter.exit_code == 2
    assert desk.dead.get("pu-1") is not None

    done = desk.cli("purge", "--reason", "retries_exhausted", "--yes", "--export-to", str(export))

    assert done.exit_code == 0, done.output
    assert desk.dead.get("pu-1") is None and desk.dead.get("pu-2") is None
    assert desk.dead.get("keep") is not None
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted(r["order_key"] for r in exported) == ["pu-1", "pu-2"]
    assert all(r["attempts"] for r in exported)
    (record,) = desk.audit.read(action="purge")
    assert sorted(record.order_keys) == ["pu-1", "pu-2"] and record.actor == os_user()


def test_purge_takes_the_dead_ledger_entry_with_the_dead_letter(desk: DeadLetterDesk) -> None:
    """A purged dead letter's DEAD ledger entry goes too (DEAD entries are never shed:
    reliability review #17); one still DEAD whose letter stays, and one replayed since, stay."""
    desk.make_dead("pl-gone")
    desk.make_dead("pl-kept", reason=DeadReason.REJECTED)
    desk.make_dead("pl-back")
    assert desk.ledger.replay("pl-back", now=time.time())[0] == "rearmed"
    done = desk.cli("purge", "--reason", "retries_exhausted", "--yes", "--no-export")
    assert done.exit_code == 0, done.output
    assert desk.ledger.get("pl-gone") is None and desk.ledger.events("pl-gone") == []
    assert desk.state("pl-kept") is OrderState.DEAD
    assert desk.state("pl-back") is OrderState.PENDING
    dead_index = desk.client.zrange(desk.keys.state_index(OrderState.DEAD), 0, -1)
    assert dead_index == [b"pl-kept"]


def test_erase_removes_a_customers_data_from_dead_letters_and_the_ledger(
    desk: DeadLetterDesk, sandbox: Any
) -> None:
    """erase --email rewrites that customer's dead letters and settled ledger orders, leaves
    other customers alone, reports an order still in flight (exit 1) and audits by hash."""
    desk.make_dead("er-dead")
    desk.ledger.record(
        new_version(one_line_order("er-sent"), source=None, stamped=False), now=time.time()
    )
    desk.ledger.mark_dead("er-sent", reason=DeadReason.REJECTED, now=time.time())
    desk.ledger.record(
        new_version(one_line_order("er-wait"), source=None, stamped=False), now=time.time()
    )
    other = one_line_order("er-other", email="grace@example.com")
    desk.make_dead("er-other", order=other)

    assert desk.cli("erase", "--email", EMAIL).exit_code == 2  # needs --yes
    result = desk.cli("erase", "--email", "ADA@example.com", "--yes")

    assert result.exit_code == 1, result.output
    assert "er-wait" in result.output
    entry = desk.dead.get("er-dead")
    assert entry is not None and entry.erased_at is not None
    assert EMAIL.encode() not in (entry.raw or b"") and b"Lovelace" not in (entry.raw or b"")
    for key in ("er-dead", "er-sent"):
        order = desk.ledger.get(key)
        assert order is not None and order.raw is not None
        assert EMAIL.encode() not in order.raw and b"Lovelace" not in order.raw
        assert loads_document(order.raw)["lines"][0]["sku"] == "SKU-1"
    waiting = desk.ledger.get("er-wait")
    assert waiting is not None and EMAIL.encode() in (waiting.raw or b"")
    untouched = desk.dead.get("er-other")
    assert untouched is not None and b"grace@example.com" in (untouched.raw or b"")
    (record,) = desk.audit.read(action="erase")
    assert EMAIL not in json.dumps(record.to_dict())
    assert sorted(record.order_keys) == ["er-dead", "er-sent"]


def test_erase_scrubs_the_payload_stored_for_a_resend(desk: DeadLetterDesk) -> None:
    """`dlq replay --resend-stored` stores the payload in the ledger (`resend_payload`); an
    order that died again with it set is erased there too."""
    desk.make_dead("rs-er")
    assert desk.cli("replay", "rs-er", "--resend-stored").exit_code == 0
    desk.ledger.mark_dead("rs-er", reason=DeadReason.REJECTED, now=time.time())
    before = desk.ledger.get("rs-er")
    assert before is not None and before.state is OrderState.DEAD
    assert before.resend_payload is not None and EMAIL.encode() in before.resend_payload

    result = desk.cli("erase", "--email", EMAIL, "--yes")

    assert result.exit_code == 0, result.output
    after = desk.ledger.get("rs-er")
    assert after is not None and after.resend_payload is not None
    assert EMAIL.encode() not in after.resend_payload
    assert b"Lovelace" not in after.resend_payload
    assert json.loads(after.resend_payload)["lineItems"]  # still a payload, scrubbed
