"""`jetti-relay dlq list`, `stats`, `show` and `audit` against a real Redis: what an operator
reads, with secrets and personal data masked and keys printed as they are (no console markup)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.factories import EMAIL, one_line_order
from tests.fixtures.cli import jetti_relay
from tests.fixtures.dead_letters import DeadLetterDesk
from worker.core.states import DeadReason
from worker.store.audit import os_user

pytestmark = pytest.mark.integration


def test_list_filters_and_json(desk: DeadLetterDesk) -> None:
    """list --json returns the matching entries newest first, without raw orders or emails."""
    now = time.time()
    desk.make_dead("l-old", now=now - 7200)
    desk.make_dead("l-new", now=now, excerpt=f"customer {EMAIL} unknown")
    desk.make_dead("l-rej", reason=DeadReason.REJECTED, now=now)

    everything = desk.cli("list", "--json")
    recent = desk.cli("list", "--json", "--since", "1h", "--reason", "retries_exhausted")
    by_text = desk.cli("list", "--json", "--error", "UNKNOWN")
    table = desk.cli("list")

    assert [r["order_key"] for r in json.loads(everything.output)] == ["l-rej", "l-new", "l-old"]
    assert [r["order_key"] for r in json.loads(recent.output)] == ["l-new"]
    assert [r["order_key"] for r in json.loads(by_text.output)] == ["l-new"]
    assert EMAIL not in everything.output and "raw" not in json.loads(everything.output)[0]
    assert table.exit_code == 0 and "l-old" in table.output


def test_stats_by_reason_and_oldest(desk: DeadLetterDesk) -> None:
    """stats counts entries by reason and status and gives the oldest still-dead entry."""
    now = time.time()
    desk.make_dead("s-1", now=now - 3600)
    desk.make_dead("s-2", reason=DeadReason.REJECTED, now=now)
    desk.dead.mark_resolved("s-2", now=now)

    data = json.loads(desk.cli("stats", "--json").output)

    assert data["total"] == 2
    assert data["dead_by_reason"]["retries_exhausted"] == 1
    assert data["by_reason"]["rejected"] == 1 and data["dead_by_reason"]["rejected"] == 0
    assert data["by_status"] == {"dead": 1, "replayed": 0, "resolved": 1}
    assert data["oldest_dead_at"] == pytest.approx(now - 3600)
    assert desk.cli("stats").exit_code == 0


def test_show_masks_secrets_and_personal_data(desk: DeadLetterDesk, sandbox: Any) -> None:
    """show prints raw order, payload, attempts and error with the webhook hash and the
    customer's data masked; an unknown key exits 3."""
    desk.make_dead("sh-1", excerpt=f"hash {sandbox.webhook_hash} refused for {EMAIL}")

    view = json.loads(desk.cli("show", "sh-1", "--json").output)
    text = desk.cli("show", "sh-1")
    missing = desk.cli("show", "nope")

    assert view["raw"]["id"] == "sh-1" and view["payload"]["externalId"] == "sh-1"
    assert len(view["attempts"]) == 1 and view["ledger_state"] == "dead"
    for output in (json.dumps(view), text.output):
        assert sandbox.webhook_hash not in output
        assert EMAIL not in output and "Lovelace" not in output
    assert "[secret]" in view["error"]
    assert missing.exit_code == 3


@pytest.mark.parametrize("key", ["shop[a]:1", "x[/]y", "[bold]z[/bold]"])
def test_keys_print_as_they_are(desk: DeadLetterDesk, key: str) -> None:
    """Keys and excerpts that look like console markup print verbatim in `dlq show`, `dlq list`
    and `order show`."""
    desk.make_dead(key, order=one_line_order("1"), excerpt="bad [/] excerpt [red]x")
    for args in (["dlq", "show", key], ["dlq", "list"], ["order", "show", key]):
        result = jetti_relay(*args, "--redis-url", desk.redis_url)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert key in result.stdout, (args, result.stdout)
    shown = jetti_relay("dlq", "show", key, "--redis-url", desk.redis_url).stdout
    assert "bad [/] excerpt [red]x" in shown


def test_audit_lists_who_did_what(desk: DeadLetterDesk) -> None:
    """Every replay is in `dlq audit`, with the OS user, the time and the order key."""
    desk.make_dead("au-1")
    before = time.time()
    assert desk.cli("replay", "au-1").exit_code == 0

    records = json.loads(desk.cli("audit", "--json", "--action", "replay").output)
    table = desk.cli("audit")

    assert [(r["actor"], r["order_keys"]) for r in records] == [(os_user(), ["au-1"])]
    assert records[0]["at"] >= before
    assert table.exit_code == 0 and "au-1" in table.output


def test_iter_entries_pages_through_ties_and_a_time_bound(desk: DeadLetterDesk) -> None:
    """Bulk commands see every matching entry exactly once, even when more entries than a page
    share one dead-letter time, and never one dead-lettered after the bound."""
    from worker.store.dead_query import DeadFilter, iter_entries

    for n in range(250):
        desk.dead.put(
            f"tie-{n}",
            reason=DeadReason.REJECTED,
            raw=b"{}",
            payload=None,
            attempts=(),
            source=None,
            error="422",
            now=1000.0,
        )
    for n in range(30):
        desk.dead.put(
            f"spread-{n}",
            reason=DeadReason.REJECTED,
            raw=b"{}",
            payload=None,
            attempts=(),
            source=None,
            error="422",
            now=900.0 + n,
        )
    desk.dead.put(
        "late",
        reason=DeadReason.REJECTED,
        raw=b"{}",
        payload=None,
        attempts=(),
        source=None,
        error="422",
        now=5000.0,
    )

    keys = [
        e.order_key for e in iter_entries(desk.dead, DeadFilter().bounded(2000.0), page_size=100)
    ]

    assert len(keys) == len(set(keys)) == 280
    assert "late" not in keys
