"""`jetti-relay orders list`, `order retry`, `order discard` and `reindex` against a real Redis
(the default key prefix, as the commands read it from the environment)."""

from __future__ import annotations

import json
import time

import click
import pytest
from click.testing import CliRunner, Result

from ops.commands.order import order
from ops.commands.orders import orders
from ops.commands.reindex import reindex
from tests.fixtures.dead_letters import DeadLetterDesk
from tests.fixtures.ledger import deliver, retry, submit
from worker.core.exit_codes import ExitCode
from worker.core.keys import ORDERS_QUEUE
from worker.core.records import Attempt, NewVersion
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.audit import os_user

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"


def _run(
    desk: DeadLetterDesk, command: click.Command, *args: str, input: str | None = None
) -> Result:
    return CliRunner().invoke(command, [*args, "--redis-url", desk.redis_url], input=input)


def _record(desk: DeadLetterDesk, key: str, *, at: float) -> None:
    desk.ledger.record(NewVersion(key, b'{"id":"x"}', None, "shop"), now=at)


def _waiting(desk: DeadLetterDesk, key: str, *, at: float, due_at: float) -> None:
    _record(desk, key, at=at)
    deliver(desk.ledger, desk.keys, key, now=at)
    attempt = Attempt(at, 503, "JettiUnavailable", f"503 for {EMAIL}", "w1", "error")
    retry(desk.ledger, desk.keys, key, due_at=due_at, now=at, attempt=attempt)


def test_orders_list_json_filters_by_state_and_masks_emails(desk: DeadLetterDesk) -> None:
    """--state retry_wait --json: the waiting orders newest first with next attempt and last
    error (email masked), and no cursor at the end."""
    now = time.time()
    _record(desk, "p-1", at=now - 30)
    _waiting(desk, "w-1", at=now - 20, due_at=now + 600)
    _waiting(desk, "w-2", at=now - 10, due_at=now + 60)

    result = _run(desk, orders, "list", "--state", "retry_wait", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["order_key"] for r in data["rows"]] == ["w-2", "w-1"]
    assert data["next_cursor"] is None
    assert data["rows"][0]["next_attempt_at"] == pytest.approx(now + 60)
    assert EMAIL not in result.output and "JettiUnavailable" in data["rows"][0]["last_error"]


def test_orders_list_table_pages_with_a_cursor_and_accepts_relative_times(
    desk: DeadLetterDesk,
) -> None:
    """A table and a summary line naming the cursor; --since 15m leaves older orders out;
    a --cursor from another listing is a usage error."""
    now = time.time()
    _record(desk, "old", at=now - 3600)
    for n in range(3):
        _record(desk, f"new-{n}", at=now - 60 + n)

    first = _run(desk, orders, "list", "--since", "15m", "--limit", "2")
    assert first.exit_code == 0, first.output
    assert "new-2" in first.output and "new-1" in first.output and "old" not in first.output
    cursor = first.output.split("--cursor ")[1].split()[0]
    rest = _run(
        desk, orders, "list", "--since", "15m", "--limit", "2", "--cursor", cursor, "--json"
    )
    assert [r["order_key"] for r in json.loads(rest.output)["rows"]] == ["new-0"]
    bad = _run(desk, orders, "list", "--prefix", "new", "--cursor", cursor)
    assert bad.exit_code == ExitCode.USAGE and "cursor" in bad.output


def test_order_retry_makes_a_waiting_order_due_and_refuses_one_in_flight(
    desk: DeadLetterDesk,
) -> None:
    """retry KEY: exit 0 and the order due now (audited with the OS user); an order in flight
    exits 7 and an unknown key 3."""
    now = time.time()
    _waiting(desk, "w-1", at=now - 5, due_at=now + 3600)
    _record(desk, "flying", at=now)
    deliver(desk.ledger, desk.keys, "flying", now=now)

    done = _run(desk, order, "retry", "w-1")
    assert done.exit_code == 0, done.output
    assert "due now" in done.output
    entry = desk.ledger.get("w-1")
    assert entry is not None and entry.next_attempt_at is not None
    assert entry.next_attempt_at <= time.time()
    assert desk.audit.read()[0].actor == os_user()

    refused = _run(desk, order, "retry", "flying")
    assert refused.exit_code == ExitCode.WRONG_STATE == 7
    assert "in flight" in refused.output
    assert _run(desk, order, "retry", "nobody").exit_code == ExitCode.NOT_FOUND


def test_order_retry_of_a_pending_order_publishes_it(desk: DeadLetterDesk) -> None:
    """A pending order is published again at once (one message on the orders queue)."""
    _record(desk, "p-1", at=time.time())
    result = _run(desk, order, "retry", "p-1")
    assert result.exit_code == 0, result.output
    assert desk.client.llen(ORDERS_QUEUE) == 1


def test_order_discard_asks_first_then_makes_a_dead_letter_dlq_replay_rearms(
    desk: DeadLetterDesk,
) -> None:
    """Without --yes a "no" changes nothing (exit 2); with --yes the order is dead
    (discarded) with the reason in its dead letter; `dlq replay KEY` re-arms it."""
    _waiting(desk, "w-1", at=time.time(), due_at=time.time() + 3600)

    declined = _run(desk, order, "discard", "w-1", "--reason", "duplicate", input="n\n")
    assert declined.exit_code == ExitCode.USAGE
    assert desk.state("w-1") is OrderState.RETRY_WAIT

    done = _run(desk, order, "discard", "w-1", "--reason", "duplicate", "--yes")
    assert done.exit_code == 0, done.output
    assert desk.state("w-1") is OrderState.DEAD
    letter = desk.dead.get("w-1")
    assert letter is not None and letter.reason is DeadReason.DISCARDED
    assert "duplicate" in letter.error

    replayed = desk.cli("replay", "w-1")
    assert replayed.exit_code == 0, replayed.output
    assert desk.state("w-1") is OrderState.PENDING
    assert desk.status("w-1") is DeadStatus.REPLAYED


def test_order_discard_refuses_a_settled_order(desk: DeadLetterDesk) -> None:
    """A submitted order exits 7 and keeps its state."""
    _record(desk, "sent", at=time.time())
    deliver(desk.ledger, desk.keys, "sent", now=time.time())
    submit(desk.ledger, desk.keys, "sent", now=time.time())
    result = _run(desk, order, "discard", "sent", "--reason", "x", "--yes")
    assert result.exit_code == ExitCode.WRONG_STATE, result.output
    assert "settled" in result.output and desk.state("sent") is OrderState.SUBMITTED


def test_reindex_restores_deleted_index_entries_and_is_idempotent(desk: DeadLetterDesk) -> None:
    """Orders whose index entries were deleted (recorded before the indexes): --dry-run counts
    them and changes nothing; reindex adds them; a second run adds nothing."""
    now = time.time()
    for n in range(3):
        _record(desk, f"o-{n}", at=now - n)
    desk.client.delete(desk.keys.order_key_index(), desk.keys.received_index())

    dry = _run(desk, reindex, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would add 3 to the key index and 3 to the received index" in dry.output
    assert desk.client.zcard(desk.keys.order_key_index()) == 0

    done = _run(desk, reindex)
    assert "added 3 to the key index and 3 to the received index" in done.output
    listed = json.loads(_run(desk, orders, "list", "--prefix", "o-", "--json").output)
    assert [r["order_key"] for r in listed["rows"]] == ["o-0", "o-1", "o-2"]
    assert desk.client.zscore(desk.keys.received_index(), "o-2") == pytest.approx(now - 2)
    again = _run(desk, reindex)
    assert "added 0 to the key index and 0 to the received index" in again.output
