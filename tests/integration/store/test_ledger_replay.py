"""Re-arming a DEAD order (`Ledger.replay`, as `dlq replay` does) against a real Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.store.ledger_steps import (
    KEY,
    STAMP,
    T0,
    deliver,
    submit,
    version,
)
from worker.core.records import RecordOutcome
from worker.core.states import DeadReason, OrderState
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


def test_replay_resets_the_budget_and_never_lowers_the_version(ledger: Ledger) -> None:
    """A replay sets PENDING with attempts reset but keeps the newest version and its raw."""
    ledger.record(version('{"a":1}'), now=T0)
    latest = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 1).version
    ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0 + 1)
    ledger.mark_dead(KEY, reason=DeadReason.RETRIES_EXHAUSTED, now=T0 + 2)
    assert ledger.replay(KEY, now=T0 + 3) == ("rearmed", "dead")
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is OrderState.PENDING
    assert (entry.attempts, entry.first_failure_at, entry.dead_reason) == (0, None, None)
    assert entry.version == latest and entry.raw == b'{"a":2}'
    stale = ledger.record(version('{"a":1}', at=STAMP), now=T0 + 4)
    assert stale.outcome is RecordOutcome.STALE


def test_replayed_flag_lasts_from_leaving_dead_until_submitted(ledger: Ledger) -> None:
    """A replay of a DEAD order marks it replayed (so its dead letter gets resolved); a success
    clears the mark."""
    ledger.record(version("{}"), now=T0)
    ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0)
    ledger.replay(KEY, now=T0 + 1)
    delivery = deliver(ledger, now=T0 + 2)
    assert delivery.entry is not None and delivery.entry.replayed
    submit(ledger, now=T0 + 3)
    entry = ledger.get(KEY)
    assert entry is not None and not entry.replayed


def test_replay_of_an_unknown_key_is_refused(ledger: Ledger) -> None:
    """A replay answers `missing` for a key the ledger does not hold."""
    assert ledger.replay("nope", now=T0) == ("missing", "")


def test_replay_arms_only_a_dead_order(ledger: Ledger) -> None:
    """A replay without a new raw order or payload re-arms a DEAD order as it stands, and
    refuses an order that is not DEAD (so a rerun never arms one twice)."""
    ledger.record(version("{}"), now=T0)
    assert ledger.replay(KEY, now=T0 + 1) == ("not_dead", "pending")
    ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 2)
    assert ledger.replay(KEY, now=T0 + 3) == ("rearmed", "dead")
    entry = ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.PENDING and entry.replayed
