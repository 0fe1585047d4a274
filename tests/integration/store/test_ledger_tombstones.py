"""Retention against a real Redis: shedding settled orders to tombstones, purging tombstones
and dead entries."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from tests.integration.store.ledger_steps import (
    KEY,
    STAMP,
    T0,
    deliver,
    index_members,
    submit,
    version,
)
from worker.core.keys import Keys
from worker.core.records import Attempt, RecordOutcome, Version
from worker.core.states import DeadReason, OrderState
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


# --- tombstones -------------------------------------------------------------------------------


def _settle(ledger: Ledger, body: str, *, now: float) -> Version:
    result = ledger.record(version(body), now=now)
    deliver(ledger, now=now)
    submit(ledger, now=now)
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
    submit(ledger)
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
