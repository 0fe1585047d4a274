"""The ledger's versions against a real Redis: compare-and-set, stale and identical copies,
cancellations, and when a recorded version is published."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import redis

from tests.integration.store.ledger_steps import (
    KEY,
    STAMP,
    T0,
    deliver,
    submit,
    version,
)
from worker.core.keys import Keys
from worker.core.records import NewVersion, RecordOutcome
from worker.core.states import DeadReason, OrderState
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


# --- versions ---------------------------------------------------------------------------------


def test_first_version_is_accepted_and_published(ledger: Ledger) -> None:
    """A key the ledger has never seen is ACCEPTED, PENDING, and must be published."""
    result = ledger.record(version('{"a":1}'), now=T0)
    assert result.outcome is RecordOutcome.ACCEPTED
    assert result.publish
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is OrderState.PENDING
    assert entry.raw == b'{"a":1}'
    assert entry.version == result.version
    assert entry.version.ts_ms == int(STAMP.timestamp()) * 1000


def test_newer_timestamp_replaces_the_stored_raw(ledger: Ledger) -> None:
    """A later updated_at replaces the raw and raises the version."""
    first = ledger.record(version('{"a":1}'), now=T0)
    second = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=1)), now=T0 + 1)
    assert second.outcome is RecordOutcome.UPDATED
    assert second.version > first.version
    entry = ledger.get(KEY)
    assert entry is not None and entry.raw == b'{"a":2}'


def test_older_timestamp_is_stale_recorded_and_ignored(ledger: Ledger) -> None:
    """An earlier updated_at is STALE: the stored raw stays, a counter and an event record it."""
    ledger.record(version('{"a":2}'), now=T0)
    deliver(ledger)
    result = ledger.record(version('{"a":1}', at=STAMP - timedelta(seconds=1)), now=T0 + 1)
    assert result.outcome is RecordOutcome.STALE
    assert not result.publish
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.raw == b'{"a":2}'
    assert entry.stale_arrivals == 1
    assert [e["outcome"] for e in ledger.events(KEY) if e["type"] == "received"] == [
        "accepted",
        "stale",
    ]


def test_equal_timestamp_later_arrival_wins(ledger: Ledger) -> None:
    """Same updated_at, different bytes: the arrival sequence breaks the tie for the later one."""
    first = ledger.record(version('{"a":1}'), now=T0)
    second = ledger.record(version('{"a":2}'), now=T0 + 1)
    assert second.outcome is RecordOutcome.UPDATED
    assert second.version.ts_ms == first.version.ts_ms
    assert second.version.seq > first.version.seq


def test_identical_bytes_are_unchanged_and_not_published(ledger: Ledger) -> None:
    """A byte-identical re-send of an order already taken is UNCHANGED, keeps the version and
    sends nothing."""
    first = ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    again = ledger.record(version('{"a":1}'), now=T0 + 1)
    assert again.outcome is RecordOutcome.UNCHANGED
    assert not again.publish
    assert again.version == first.version


@pytest.mark.parametrize("at", [STAMP, STAMP - timedelta(seconds=1)], ids=["unchanged", "stale"])
def test_a_copy_of_an_order_still_pending_is_published_again(ledger: Ledger, at: datetime) -> None:
    """Reliability review L5: a producer that stopped between recording and publishing leaves
    the order PENDING without a message; the re-run's copy (UNCHANGED, or STALE for an older
    copy in the same file) says publish, instead of leaving it to the 15-min sweeper."""
    ledger.record(version('{"a":1}'), now=T0)
    again = ledger.record(version('{"a":1}' if at == STAMP else '{"a":0}', at=at), now=T0 + 1)
    assert again.publish


def test_naive_updated_at_counts_as_absent(ledger: Ledger) -> None:
    """A naive datetime has no instant, so its version timestamp is 0."""
    result = ledger.record(version("{}", at=datetime(2026, 1, 1)), now=T0)
    assert result.version.ts_ms == 0


def cancel_copy(body: str, *, at: datetime | None) -> NewVersion:
    return NewVersion(
        order_key=KEY, raw=body.encode(), updated_at=at, source="test", cancelled=True
    )


def test_a_copy_without_updated_at_is_ordered_after_earlier_copies(ledger: Ledger) -> None:
    """Reliability review #3: a copy without updated_at after a timestamped one is newer by
    arrival (it used to be timestamp 0, so always stale); the version never goes down."""
    first = ledger.record(version('{"a":1}'), now=T0)
    second = ledger.record(version('{"a":2}', at=None), now=T0 + 1)
    assert second.outcome is RecordOutcome.UPDATED
    assert second.version.ts_ms == first.version.ts_ms
    assert second.version > first.version
    entry = ledger.get(KEY)
    assert entry is not None and entry.raw == b'{"a":2}'
    later = ledger.record(version('{"a":3}', at=STAMP + timedelta(seconds=1)), now=T0 + 2)
    older = ledger.record(version('{"a":0}', at=STAMP - timedelta(seconds=1)), now=T0 + 3)
    assert (later.outcome, older.outcome) == (RecordOutcome.UPDATED, RecordOutcome.STALE)


def test_a_cancellation_older_than_the_stored_version_still_cancels(ledger: Ledger) -> None:
    """Reliability review #3: a cancelling copy is recorded whatever its timestamp, ordered
    after the stored version by arrival, so a submission in flight sees a newer version."""
    first = ledger.record(version('{"a":2}', at=STAMP + timedelta(days=1)), now=T0)
    cancel = ledger.record(cancel_copy('{"a":1,"c":1}', at=STAMP), now=T0 + 1)
    assert cancel.outcome is RecordOutcome.UPDATED
    assert cancel.version > first.version
    assert cancel.version.ts_ms == first.version.ts_ms
    entry = ledger.get(KEY)
    assert entry is not None and entry.raw == b'{"a":1,"c":1}'


@pytest.mark.parametrize(
    "at",
    [STAMP + timedelta(seconds=1), STAMP - timedelta(seconds=1), None],
    ids=["later", "earlier", "no-updated_at"],
)
def test_a_copy_after_a_cancellation_is_recorded_not_stored(ledger: Ledger, at: datetime) -> None:
    """Reliability review #3: a cancellation is terminal. A later copy without cancelled_at is
    AFTER_CANCEL: counted and in the timeline, but the stored raw stays the cancelling one."""
    ledger.record(version('{"a":1}'), now=T0)
    ledger.record(cancel_copy('{"a":1,"c":1}', at=STAMP), now=T0 + 1)
    deliver(ledger)

    result = ledger.record(version('{"a":2}', at=at), now=T0 + 2)

    assert result.outcome is RecordOutcome.AFTER_CANCEL
    assert not result.publish
    entry = ledger.get(KEY)
    assert entry is not None and entry.raw == b'{"a":1,"c":1}'
    assert entry.state is OrderState.SUBMITTING
    assert ledger.events(KEY)[-1]["outcome"] == "after_cancel"


def test_a_copy_after_the_order_was_cancelled_in_jetti_is_not_sent(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """An order already CANCELLED stays so (also one recorded before the `cancel` field
    existed): a later non-cancelling copy is AFTER_CANCEL and counted in the counters hash
    (record_after_cancel), not a fresh import."""
    recorded = ledger.record(version('{"c":1}'), now=T0)
    deliver(ledger)
    ledger.mark_cancelled(KEY, version=recorded.version, sale_id=None, via="jetti", now=T0 + 1)
    result = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 2)
    assert result.outcome is RecordOutcome.AFTER_CANCEL
    assert redis_client.hget(keys.counters(), "record_after_cancel") == b"1"


# --- coalescing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prepare", "publish"),
    [
        pytest.param(lambda lg: None, False, id="pending"),
        pytest.param(lambda lg: deliver(lg), False, id="submitting"),
        pytest.param(
            lambda lg: lg.schedule_retry(KEY, due_at=T0 + 60, spend_attempt=True, now=T0),
            False,
            id="retry_wait",
        ),
        pytest.param(
            lambda lg: (deliver(lg), submit(lg)),
            True,
            id="submitted",
        ),
        pytest.param(
            lambda lg: lg.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0),
            True,
            id="dead",
        ),
    ],
)
def test_update_publishes_only_when_no_work_is_in_flight(
    ledger: Ledger, prepare: Callable[[Ledger], object], publish: bool
) -> None:
    """An update coalesces into queued or running work; after a final state it is published."""
    ledger.record(version('{"a":1}'), now=T0)
    prepare(ledger)
    result = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 2)
    assert result.outcome is RecordOutcome.UPDATED
    assert result.publish is publish


def test_update_of_a_dead_order_gets_a_fresh_budget(ledger: Ledger) -> None:
    """A newer version of a DEAD order is new work: attempts and crash-loop count start over."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    ledger.schedule_retry(KEY, due_at=T0, spend_attempt=True, now=T0)
    ledger.mark_dead(KEY, reason=DeadReason.WORKER_LOST, now=T0)
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 2)
    entry = ledger.get(KEY)
    assert entry is not None
    assert (entry.state, entry.attempts, entry.dead_reason) == (OrderState.PENDING, 0, None)
    assert entry.deliveries_started == entry.deliveries_finished
