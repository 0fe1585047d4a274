"""The operator's actions on one order against a real Redis: retry now (the retry pump then
publishes it), discard (a dead letter that can be replayed), the refusals for orders in flight,
settled or dead, each audited with the actor; and the index backfill of `reindex`."""

from __future__ import annotations

import pytest
import redis

from tests.fakes import FakePublisher
from tests.integration.store.ledger_steps import KEY, T0, dead, deliver, retry, submit, version
from worker.core.keys import Keys
from worker.core.states import DeadReason, DeadStatus, DiscardReply, OrderState, RetryNowReply
from worker.pipeline.maintenance import Maintenance, MaintenanceConfig
from worker.store.audit import AuditLog
from worker.store.dead_letters import DeadLetters
from worker.store.leases import Leader
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


def _waiting(ledger: Ledger, key: str = KEY, *, due_at: float = T0 + 3600) -> None:
    ledger.record(version('{"a":1}', key=key), now=T0)
    deliver(ledger, key, now=T0 + 1)
    retry(ledger, key, due_at=due_at, now=T0 + 1)


def _pump(ledger: Ledger, client: redis.Redis[bytes], keys: Keys, now: float) -> FakePublisher:
    publisher = FakePublisher()
    config = MaintenanceConfig(
        holder="h1",
        pump_interval_s=1.0,
        sweep_interval_s=1.0,
        stuck_after_s=60.0,
        hard_time_limit_s=30.0,
    )
    Maintenance(
        config=config,
        ledger=ledger,
        leader=Leader(client, keys),
        publisher=publisher,
        clock=lambda: now,
    ).pump_once()
    return publisher


def test_retry_now_makes_a_waiting_order_due_and_the_pump_publishes_it(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """A RETRY_WAIT order due in an hour: retry now sets its due time to now (it stays
    RETRY_WAIT, attempts kept); the pump's next pass publishes it; timeline and audit name the
    actor."""
    _waiting(ledger)
    assert _pump(ledger, redis_client, keys, T0 + 10).published == []

    assert ledger.retry_now(KEY, actor="ada", now=T0 + 10) is RetryNowReply.DUE

    entry = ledger.get(KEY)
    assert entry is not None
    assert (entry.state, entry.next_attempt_at, entry.attempts) == (
        OrderState.RETRY_WAIT,
        T0 + 10,
        1,
    )
    assert redis_client.zscore(keys.retry_schedule(), KEY) == T0 + 10
    assert ledger.events(KEY)[-1] | {"at": 0} == {
        "type": "retry_now",
        "actor": "ada",
        "previous_due_at": T0 + 3600,
        "at": 0,
    }
    assert _pump(ledger, redis_client, keys, T0 + 10.5).published == [([KEY], None)]
    after = ledger.get(KEY)
    assert after is not None and after.state is OrderState.PENDING
    (record,) = AuditLog(redis_client, keys).read()
    assert (record.action, record.actor, record.order_keys) == ("retry_now", "ada", (KEY,))


def test_retry_now_of_a_pending_order_asks_the_caller_to_publish(ledger: Ledger) -> None:
    """PENDING: REPUBLISH, and its time in state restarts (the sweeper counts from there)."""
    ledger.record(version('{"a":1}'), now=T0)
    assert ledger.retry_now(KEY, actor="ada", now=T0 + 30) is RetryNowReply.REPUBLISH
    entry = ledger.get(KEY)
    assert entry is not None and (entry.state, entry.state_since) == (OrderState.PENDING, T0 + 30)


def test_retry_now_refuses_orders_in_flight_settled_dead_or_unknown(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """SUBMITTING, SUBMITTED and DEAD orders are refused, nothing written, nothing audited."""
    for key in ("flying", "sent", "gone"):
        ledger.record(version('{"a":1}', key=key), now=T0)
        deliver(ledger, key, now=T0)
    submit(ledger, "sent", now=T0 + 1)
    dead(ledger, "gone", now=T0 + 1)
    timelines = {key: ledger.events(key) for key in ("flying", "sent", "gone")}

    replies = [ledger.retry_now(k, actor="ada", now=T0 + 2) for k in timelines]
    assert replies == [RetryNowReply.IN_FLIGHT, RetryNowReply.SETTLED, RetryNowReply.DEAD]
    assert ledger.retry_now("nobody", actor="ada", now=T0 + 2) is RetryNowReply.MISSING
    assert {key: ledger.events(key) for key in timelines} == timelines
    assert AuditLog(redis_client, keys).count() == 0


def test_discard_makes_a_waiting_order_dead_with_a_replayable_dead_letter(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """RETRY_WAIT -> DEAD (discarded), out of the retry schedule; the dead letter keeps the raw
    order, the attempts and the operator's reason; the ledger's replay re-arms it."""
    _waiting(ledger)

    reply = ledger.discard(KEY, reason_text="customer cancelled by phone", actor="ada", now=T0 + 5)

    assert reply is DiscardReply.DISCARDED
    entry = ledger.get(KEY)
    assert entry is not None
    assert (entry.state, entry.dead_reason) == (OrderState.DEAD, DeadReason.DISCARDED)
    assert redis_client.zscore(keys.retry_schedule(), KEY) is None
    dead_event = ledger.events(KEY)[-1]
    assert {k: dead_event[k] for k in ("type", "reason", "actor", "note", "previous_state")} == {
        "type": "dead",
        "reason": "discarded",
        "actor": "ada",
        "note": "customer cancelled by phone",
        "previous_state": "retry_wait",
    }
    letter = DeadLetters(redis_client, keys).get(KEY)
    assert letter is not None
    assert (letter.reason, letter.status, letter.raw) == (
        DeadReason.DISCARDED,
        DeadStatus.DEAD,
        b'{"a":1}',
    )
    assert letter.error == "discarded by ada: customer cancelled by phone"
    (record,) = AuditLog(redis_client, keys).read()
    assert (record.action, record.actor, record.details["reason"]) == (
        "discard",
        "ada",
        "customer cancelled by phone",
    )
    assert ledger.replay(KEY, now=T0 + 6) == ("rearmed", "dead")


def test_a_discard_rerun_writes_the_dead_letter_a_stopped_run_did_not(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """The ledger says discarded but no dead letter exists (the caller stopped in between):
    running the discard again answers ALREADY and writes it; a third run writes nothing."""
    ledger.record(version('{"a":1}'), now=T0)
    assert ledger.discard(KEY, reason_text="dup", actor="ada", now=T0 + 1).done
    dead_letters = DeadLetters(redis_client, keys)
    dead_letters.purge([KEY])

    assert ledger.discard(KEY, reason_text="dup", actor="ada", now=T0 + 2) is DiscardReply.ALREADY
    letter = dead_letters.get(KEY)
    assert letter is not None and letter.reason is DeadReason.DISCARDED
    assert ledger.discard(KEY, reason_text="dup", actor="ada", now=T0 + 3) is DiscardReply.ALREADY
    assert AuditLog(redis_client, keys).count() == 2


def test_discard_refuses_orders_in_flight_settled_or_dead_for_another_reason(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """Nothing is written for a refused discard, and a blank reason is a ValueError."""
    for key in ("flying", "sent", "gone"):
        ledger.record(version('{"a":1}', key=key), now=T0)
        deliver(ledger, key, now=T0)
    submit(ledger, "sent", now=T0 + 1)
    dead(ledger, "gone", now=T0 + 1)

    replies = [
        ledger.discard(k, reason_text="no", actor="ada", now=T0 + 2)
        for k in ("flying", "sent", "gone", "nobody")
    ]

    assert replies == [
        DiscardReply.IN_FLIGHT,
        DiscardReply.SETTLED,
        DiscardReply.DEAD,
        DiscardReply.MISSING,
    ]
    assert DeadLetters(redis_client, keys).get("flying") is None
    entry = ledger.get("flying")
    assert entry is not None and entry.state is OrderState.SUBMITTING
    with pytest.raises(ValueError, match="needs a reason"):
        ledger.discard("flying", reason_text="  ", actor="ada", now=T0 + 3)


def test_backfill_indexes_restores_missing_entries_once(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    """Orders whose index entries are missing get them back (received = enqueued_at); keys
    already indexed keep their score; an order whose hash is gone is not indexed."""
    ledger.record(version('{"a":1}', key="a"), now=T0)
    ledger.record(version('{"a":1}', key="b"), now=T0 + 5)
    redis_client.delete(keys.order_key_index(), keys.received_index())
    redis_client.zadd(keys.received_index(), {"b": T0 + 99})

    assert ledger.backfill_indexes(["a", "b", "ghost"], now=T0 + 10) == (2, 1)

    assert dict(redis_client.zrange(keys.received_index(), 0, -1, withscores=True)) == {
        b"a": T0,
        b"b": T0 + 99,
    }
    assert redis_client.zcard(keys.order_key_index()) == 2
    assert ledger.backfill_indexes(["a", "b"], now=T0 + 11) == (0, 0)
