"""The ledger against a real Redis: versions, coalescing, indexes, retries, replays, crash loops."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from worker.core.keys import Keys
from worker.core.states import DeadReason, OrderState
from worker.store.ledger import (
    Attempt,
    Delivery,
    DeliveryAction,
    Ledger,
    NewVersion,
    RecordOutcome,
    Version,
)
from worker.store.settle import SettleLedger

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
STAMP = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY = "shop-1001"


@pytest.fixture
def keys() -> Keys:
    return Keys("t")


@pytest.fixture
def ledger(redis_client: redis.Redis[bytes], keys: Keys) -> Ledger:
    return Ledger(redis_client, keys, body_ttl_s=100.0, tombstone_ttl_s=1000.0)


def version(body: str, *, at: datetime | None = STAMP, key: str = KEY) -> NewVersion:
    return NewVersion(order_key=key, raw=body.encode(), updated_at=at, source="test")


def index_members(client: redis.Redis[bytes], keys: Keys) -> dict[str, set[str]]:
    """Every state index as state -> set of order keys."""
    return {
        str(s): {m.decode() for m in client.zrange(keys.state_index(s), 0, -1)} for s in OrderState
    }


def deliver(
    ledger: Ledger, key: str = KEY, *, now: float = T0, max_unfinished: int = 3
) -> Delivery:
    return ledger.begin_delivery(
        key, task_id="t1", worker="w1", now=now, max_unfinished=max_unfinished
    )


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
    SettleLedger(redis_client, keys).mark_cancelled(
        KEY, version=recorded.version, sale_id=None, via="jetti", now=T0 + 1
    )
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
            lambda lg: (deliver(lg), _submit(lg)),
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


def _submit(ledger: Ledger, *, now: float = T0 + 1) -> bool:
    entry = ledger.get(KEY)
    assert entry is not None
    return ledger.mark_submitted(
        KEY, version=entry.version, payload_hash="ph", line_ids=["l1"], sale_id=7, now=now
    )


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


def test_mark_submitted_requeues_when_a_newer_version_arrived(ledger: Ledger) -> None:
    """If a newer version arrived while the old one was being sent, the order goes PENDING."""
    ledger.record(version('{"a":1}'), now=T0)
    started = deliver(ledger).entry
    assert started is not None
    sent = started.version
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 1)
    again = ledger.mark_submitted(
        KEY, version=sent, payload_hash="ph", line_ids=["l1"], sale_id=None, now=T0 + 2
    )
    entry = ledger.get(KEY)
    assert again is True
    assert entry is not None and entry.state is OrderState.PENDING
    assert entry.sent_version == sent


def test_mark_submitted_settles_the_latest_version(ledger: Ledger) -> None:
    """Submitting the latest version settles the order and keeps payload hash, lines, sale id."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    assert _submit(ledger) is False
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is OrderState.SUBMITTED
    assert (entry.payload_hash, entry.line_ids, entry.sale_id) == ("ph", ("l1",), 7)
    assert deliver(ledger).action is DeliveryAction.NOTHING_TO_DO


# --- indexes ----------------------------------------------------------------------------------


def test_state_indexes_follow_every_transition(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """After each operation the order sits in exactly the index of its state, and no other."""
    steps: list[Callable[[], object]] = [
        lambda: ledger.record(version('{"a":1}'), now=T0),
        lambda: deliver(ledger),
        lambda: ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0),
        lambda: ledger.pop_due_retries(now=T0 + 5, limit=10),
        lambda: deliver(ledger, now=T0 + 6),
        lambda: ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 7),
        lambda: ledger.rearm(KEY, now=T0 + 8),
        lambda: deliver(ledger, now=T0 + 9),
        lambda: _submit(ledger, now=T0 + 10),
    ]
    for step in steps:
        step()
        entry = ledger.get(KEY)
        assert entry is not None
        members = index_members(redis_client, keys)
        assert {s for s, m in members.items() if KEY in m} == {str(entry.state)}
    assert ledger.state_counts()[OrderState.SUBMITTED] == 1
    # Settled: no longer waiting, so out of the enqueued index (oldest-waiting age).
    assert ledger.oldest_enqueued() is None


def test_stuck_lists_orders_in_a_state_since_before_a_time(ledger: Ledger) -> None:
    """stuck() reads the state index by score: orders older than the threshold, oldest first."""
    ledger.record(version("{}", key="old"), now=T0)
    ledger.record(version("{}", key="new"), now=T0 + 100)
    assert ledger.stuck(OrderState.PENDING, older_than=T0 + 50, limit=10) == ["old"]
    ledger.mark_republished(["old"], now=T0 + 60)
    assert ledger.stuck(OrderState.PENDING, older_than=T0 + 50, limit=10) == []


# --- retries and replays ----------------------------------------------------------------------


def test_pop_due_retries_moves_only_due_orders_to_pending(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Due keys leave the schedule and become PENDING; later ones stay RETRY_WAIT."""
    for key, due in (("due", T0 + 10), ("later", T0 + 100)):
        ledger.record(version("{}", key=key), now=T0)
        ledger.schedule_retry(key, due_at=due, spend_attempt=True, now=T0)
    assert ledger.pop_due_retries(now=T0 + 10, limit=10) == ["due"]
    assert ledger.pop_due_retries(now=T0 + 10, limit=10) == []
    popped, waiting = ledger.get("due"), ledger.get("later")
    assert popped is not None and popped.state is OrderState.PENDING
    assert waiting is not None and waiting.state is OrderState.RETRY_WAIT
    assert redis_client.zrange(keys.retry_schedule(), 0, -1) == [b"later"]


def test_retry_not_due_is_not_delivered(ledger: Ledger) -> None:
    """A redelivered message for an order waiting on its retry is NOT_DUE until the due time."""
    ledger.record(version("{}"), now=T0)
    ledger.schedule_retry(KEY, due_at=T0 + 30, spend_attempt=True, now=T0)
    assert deliver(ledger, now=T0 + 29).action is DeliveryAction.NOT_DUE
    assert deliver(ledger, now=T0 + 30).action is DeliveryAction.PROCEED


def test_attempts_are_counted_and_kept(ledger: Ledger) -> None:
    """A spent retry counts, a free one does not; every attempt record is kept in order."""
    ledger.record(version("{}"), now=T0)
    fail = Attempt(
        at=T0,
        status=503,
        error_class="JettiUnavailable",
        excerpt="busy",
        worker="w",
        outcome="retry",
    )
    ledger.schedule_retry(KEY, due_at=T0 + 1, spend_attempt=True, now=T0, attempt=fail)
    ledger.schedule_retry(KEY, due_at=T0 + 2, spend_attempt=False, now=T0 + 1)
    entry = ledger.get(KEY)
    assert entry is not None
    assert (entry.attempts, entry.first_failure_at) == (1, T0)
    assert entry.last_error == "JettiUnavailable: busy"
    assert ledger.attempts(KEY) == [fail]


def test_rearm_resets_the_budget_and_never_lowers_the_version(ledger: Ledger) -> None:
    """A replay sets PENDING with attempts reset but keeps the newest version and its raw."""
    ledger.record(version('{"a":1}'), now=T0)
    latest = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 1).version
    ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0 + 1)
    ledger.mark_dead(KEY, reason=DeadReason.RETRIES_EXHAUSTED, now=T0 + 2)
    assert ledger.rearm(KEY, now=T0 + 3)
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is OrderState.PENDING
    assert (entry.attempts, entry.first_failure_at, entry.dead_reason) == (0, None, None)
    assert entry.version == latest and entry.raw == b'{"a":2}'
    stale = ledger.record(version('{"a":1}', at=STAMP), now=T0 + 4)
    assert stale.outcome is RecordOutcome.STALE


def test_replayed_flag_lasts_from_leaving_dead_until_submitted(ledger: Ledger) -> None:
    """rearm of a DEAD order marks it replayed (so its dead letter gets resolved); a success
    clears the mark."""
    ledger.record(version("{}"), now=T0)
    ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0)
    ledger.rearm(KEY, now=T0 + 1)
    delivery = deliver(ledger, now=T0 + 2)
    assert delivery.entry is not None and delivery.entry.replayed
    _submit(ledger, now=T0 + 3)
    entry = ledger.get(KEY)
    assert entry is not None and not entry.replayed


@pytest.mark.parametrize(
    ("prepare", "scheduled", "state"),
    [
        pytest.param(lambda lg: None, True, OrderState.PENDING, id="pending"),
        pytest.param(lambda lg: deliver(lg), False, OrderState.SUBMITTING, id="submitting"),
        pytest.param(
            lambda lg: (deliver(lg), _submit(lg)), False, OrderState.SUBMITTED, id="final"
        ),
    ],
)
def test_reschedule_for_a_taken_lock(
    ledger: Ledger,
    redis_client: redis.Redis[bytes],
    keys: Keys,
    prepare: Callable[[Ledger], object],
    scheduled: bool,
    state: OrderState,
) -> None:
    """A PENDING order whose lock is taken waits in the schedule (no attempt spent); an order
    a worker is submitting, or a settled one, is left alone."""
    ledger.record(version("{}"), now=T0)
    prepare(ledger)
    assert ledger.reschedule(KEY, due_at=T0 + 5, now=T0 + 1) is scheduled
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is (OrderState.RETRY_WAIT if scheduled else state)
    assert entry.attempts == 0
    assert (redis_client.zscore(keys.retry_schedule(), KEY) is not None) is scheduled


def test_reschedule_keeps_the_earlier_due_time(ledger: Ledger) -> None:
    """Rescheduling an order already waiting never pushes its retry later."""
    ledger.record(version("{}"), now=T0)
    ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0)
    ledger.reschedule(KEY, due_at=T0 + 50, now=T0 + 1)
    assert ledger.pop_due_retries(now=T0 + 5, limit=10) == [KEY]


def test_rearm_of_an_unknown_key_is_refused(ledger: Ledger) -> None:
    """rearm answers False for a key the ledger does not hold."""
    assert ledger.rearm("nope", now=T0) is False


# --- crash loops ------------------------------------------------------------------------------


def test_deliveries_that_never_finish_become_a_crash_loop(ledger: Ledger) -> None:
    """N started-but-unfinished deliveries make the next one CRASH_LOOP; finished ones don't."""
    ledger.record(version("{}"), now=T0)
    assert deliver(ledger).action is DeliveryAction.PROCEED
    ledger.finish_delivery(KEY, now=T0)  # a delivery that ended normally
    for _ in range(2):
        assert deliver(ledger, max_unfinished=2).action is DeliveryAction.PROCEED
    delivery = deliver(ledger, max_unfinished=2)
    assert delivery.action is DeliveryAction.CRASH_LOOP
    assert delivery.entry is not None
    assert (delivery.entry.deliveries_started, delivery.entry.deliveries_finished) == (3, 1)


def test_unknown_key_delivery(ledger: Ledger) -> None:
    """A message for a key the ledger never saw is UNKNOWN with no entry."""
    delivery = deliver(ledger, "ghost")
    assert delivery.action is DeliveryAction.UNKNOWN and delivery.entry is None


# --- tombstones -------------------------------------------------------------------------------


def _settle(ledger: Ledger, body: str, *, now: float) -> Version:
    result = ledger.record(version(body), now=now)
    deliver(ledger, now=now)
    _submit(ledger, now=now)
    return result.version


def test_shed_keeps_a_tombstone_that_recognises_late_duplicates(ledger: Ledger) -> None:
    """After the body TTL the raw is gone, but an identical re-send is UNCHANGED and an older
    one STALE; nothing is published for either."""
    kept = _settle(ledger, '{"a":2}', now=T0)
    assert ledger.shed_settled(now=T0 + 50, limit=10) == 0  # body TTL (100 s) not reached
    assert ledger.shed_settled(now=T0 + 101, limit=10) == 1
    entry = ledger.get(KEY)
    assert entry is not None and entry.is_tombstone
    assert (entry.version, entry.state, entry.sale_id) == (kept, OrderState.SUBMITTED, 7)
    same = ledger.record(version('{"a":2}'), now=T0 + 200)
    older = ledger.record(version('{"a":1}', at=STAMP - timedelta(days=1)), now=T0 + 200)
    assert (same.outcome, same.publish) == (RecordOutcome.UNCHANGED, False)
    assert (older.outcome, older.publish) == (RecordOutcome.STALE, False)
    assert ledger.rearm(KEY, now=T0 + 201) is False  # nothing left to send


def test_shed_keeps_only_the_tombstone(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Shedding drops the body, the transient fields and the events and attempts lists; the
    tombstone fields stay (reliability review #17: ~2 KB per order for 30 days otherwise)."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    ledger.schedule_retry(
        KEY,
        due_at=T0,
        spend_attempt=True,
        now=T0,
        attempt=Attempt(
            at=T0,
            status=503,
            error_class="JettiUnavailable",
            excerpt="x",
            worker="w1",
            outcome="error",
        ),
    )
    deliver(ledger)
    _submit(ledger)
    assert ledger.events(KEY) and ledger.attempts(KEY)
    ledger.shed_settled(now=T0 + 101, limit=10)
    fields = {f.decode() for f in redis_client.hkeys(keys.order(KEY))}
    assert fields == {
        "state",
        "state_since",
        "v_ts",
        "v_seq",
        "raw_hash",
        "payload_hash",
        "line_ids",
        "sale_id",
        "sent_v_ts",
        "sent_v_seq",
        "submitted_at",
        "first_seen_at",
        "source",
        "stale",
        "shed_at",
        "cancel",
    }
    assert not redis_client.exists(keys.order_events(KEY), keys.order_attempts(KEY))
    entry = ledger.get(KEY)
    assert entry is not None and entry.line_ids == ("l1",) and entry.payload_hash == "ph"


def test_purge_dead_deletes_only_a_dead_entry(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """purge_dead (after `dlq purge`) deletes a DEAD entry with its lists and indexes, and
    leaves any other state alone."""
    ledger.record(version("{}"), now=T0)
    assert ledger.purge_dead(KEY, now=T0) is False  # PENDING
    ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0)
    assert ledger.purge_dead(KEY, now=T0 + 1) is True
    assert ledger.get(KEY) is None and ledger.events(KEY) == []
    assert all(not m for m in index_members(redis_client, keys).values())
    assert not redis_client.zcard(keys.enqueued_index())


def test_newer_version_revives_a_tombstone(ledger: Ledger) -> None:
    """A newer version of a shed order stores its raw again and is published."""
    _settle(ledger, '{"a":1}', now=T0)
    ledger.shed_settled(now=T0 + 101, limit=10)
    result = ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=1)), now=T0 + 200)
    assert (result.outcome, result.publish) == (RecordOutcome.UPDATED, True)
    assert ledger.purge_tombstones(now=T0 + 5000, limit=10) == 0
    entry = ledger.get(KEY)
    assert entry is not None and entry.raw == b'{"a":2}'


def test_purged_tombstone_leaves_no_index_behind(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """After the tombstone TTL a sweep deletes the entry and its index memberships together."""
    _settle(ledger, "{}", now=T0)
    ledger.shed_settled(now=T0 + 101, limit=10)
    ledger.shed_settled(now=T0 + 1000, limit=10)  # tombstone expires at T0 + 1101
    assert ledger.get(KEY) is not None
    ledger.shed_settled(now=T0 + 1101, limit=10)
    assert ledger.get(KEY) is None
    assert all(not m for m in index_members(redis_client, keys).values())
    assert ledger.events(KEY) == []


def test_giving_up_on_an_older_version_leaves_the_newer_one_pending(ledger: Ledger) -> None:
    """mark_dead for the version the worker claimed, while a newer one was coalesced in: no DEAD
    (that would bury the newer version), but PENDING on a fresh budget, answered True so the
    caller re-publishes; giving up on the version stored is DEAD as before."""
    ledger.record(version('{"a":1}'), now=T0)
    ledger.schedule_retry(KEY, due_at=T0, spend_attempt=True, now=T0)
    claimed = deliver(ledger, now=T0 + 1).entry
    assert claimed is not None
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 2)
    newer = ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 3, version=claimed.version)
    entry = ledger.get(KEY)
    assert newer and entry is not None
    assert entry.state is OrderState.PENDING and entry.raw == b'{"a":2}'
    assert (entry.attempts, entry.dead_reason, entry.first_failure_at) == (0, None, None)
    current = deliver(ledger, now=T0 + 4).entry
    assert current is not None
    assert not ledger.mark_dead(
        KEY, reason=DeadReason.REJECTED, now=T0 + 5, version=current.version
    )
    assert ledger.get(KEY).state is OrderState.DEAD  # type: ignore[union-attr]
