"""What the console reads from the ledger, against a real Redis: the order-key and received
indexes (kept in step by every script that creates or deletes an order), the version an update
replaced, the producer's trace context, and the per-minute counters."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from tests.integration.store.ledger_steps import KEY, T0, dead, deliver, submit, version
from worker.core.keys import Keys
from worker.core.states import DeadReason
from worker.store.ledger import Ledger
from worker.store.minute_stats import MinuteStats
from worker.store.stats import Stats

pytestmark = pytest.mark.integration

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _members(client: redis.Redis[bytes], name: str) -> dict[str, float]:
    return {m.decode(): s for m, s in client.zrange(name, 0, -1, withscores=True)}


def test_every_recorded_order_is_in_both_indexes_until_its_entry_is_deleted(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    ledger.record(version('{"a":1}'), now=T0)
    ledger.record(version('{"b":1}', key="a:b c/é"), now=T0 + 1)
    ledger.record(version('{"a":2}'), now=T0 + 5)  # an update moves the received time
    assert _members(redis_client, keys.order_key_index()) == {KEY: 0.0, "a:b c/é": 0.0}
    assert _members(redis_client, keys.received_index()) == {KEY: T0 + 5, "a:b c/é": T0 + 1}
    # prefix search by ZRANGEBYLEX sees the raw key, not its encoded key name
    found = redis_client.zrangebylex(keys.order_key_index(), "[a:", "[a:\xff")
    assert found == ["a:b c/é".encode()]

    # a dead order whose dead letter is purged leaves both indexes with its hash
    deliver(ledger, now=T0 + 6)
    dead(ledger, now=T0 + 6, reason=DeadReason.REJECTED)
    assert ledger.purge_dead(KEY, now=T0 + 7)
    assert KEY not in _members(redis_client, keys.order_key_index())
    assert KEY not in _members(redis_client, keys.received_index())


def test_a_purged_tombstone_leaves_both_indexes(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger, now=T0)
    submit(ledger, now=T0)
    assert ledger.shed_settled(now=T0 + 101, limit=10) == 1
    assert KEY in _members(redis_client, keys.order_key_index())  # a tombstone is still found
    assert ledger.purge_tombstones(now=T0 + 2000, limit=10) == 1
    assert _members(redis_client, keys.order_key_index()) == {}
    assert _members(redis_client, keys.received_index()) == {}


def test_an_update_keeps_the_version_it_replaced_and_the_trace_of_the_latest(
    ledger: Ledger,
) -> None:
    ledger.record(replace(version('{"a":1}'), trace=TRACE), now=T0)
    first = ledger.get(KEY)
    assert first is not None and (first.prev_raw, first.trace) == (None, TRACE)
    ledger.record(version('{"a":2}'), now=T0 + 1)
    second = ledger.get(KEY)
    assert second is not None
    assert (second.raw, second.prev_raw) == (b'{"a":2}', b'{"a":1}')
    assert second.trace == TRACE  # a copy without a trace keeps the last one known


def test_minute_counters_count_records_outcomes_and_latency_per_minute(
    ledger: Ledger, keys: Keys, redis_client: redis.Redis[bytes]
) -> None:
    ledger.record(version('{"a":1}'), now=T0)
    ledger.record(version('{"b":1}', key="other"), now=T0 + 60)
    deliver(ledger, now=T0 + 60)
    submit(ledger, now=T0 + 60)
    tally = Stats(redis_client, keys).tally()
    tally.count_submission("accepted", 200)
    tally.count_submission("retry", 503)
    tally.observe_latency(0.3)
    pipe = redis_client.pipeline()
    tally.queue(pipe, now=T0 + 60)
    pipe.execute()

    minutes = MinuteStats(redis_client, keys).last(3, now=T0 + 60)
    assert [m.start for m in minutes] == [
        (int(T0 // 60) - 1) * 60,
        int(T0 // 60) * 60,
        (int(T0 // 60) + 1) * 60,
    ]
    before, first, second = minutes
    assert before.counts == {}
    assert (first.received, first.submitted) == (1, 0)
    assert (second.received, second.submitted, second.retries) == (1, 1, 1)
    assert second.get("submissions|accepted") == 1
    assert second.latency_count == 1 and second.latency_quantile_s(0.95) == 0.5
    ttl = redis_client.ttl(keys.minute_counters(int(T0 // 60) + 1))
    assert 3 * 3600 < ttl <= 3 * 3600 + 60
