"""Hostile order ids against a real Redis, the real scripts and a real worker (reliability #1).

Ids such as `A:events`, `X:attempts` or `idx:all` used to name another order's events list,
attempts list or the dead-letter index: the scripts then failed half-way (WRONGTYPE), leaving
orders half-recorded and the DLQ unusable. Now every per-order key name holds the encoded id.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import raw_order
from tests.fixtures.pipeline import Harness, PipelineFactory
from tests.fixtures.sandbox import sent_body
from worker.core.keys import Keys
from worker.core.records import Attempt
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.ledger import Finish, Ledger, NewVersion, Retry

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
STAMP = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

hostile_ids = st.one_of(
    st.sampled_from(["A:events", "A", "idx:all", "X:attempts", "{jr}", "a\n*{x}", "é订", "%2"]),
    st.text(min_size=1, max_size=30),
    st.text(min_size=520, max_size=600),
).filter(lambda s: not re.search(r"[\ud800-\udfff]", s))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order_id=hostile_ids)
def test_scripts_build_the_same_key_names_as_python(
    redis_client: redis.Redis[bytes], order_id: str
) -> None:
    """The Lua prelude encodes an id byte for byte like worker.core.keys: the hash, events, attempts
    and lock a script writes are the ones `Keys` names, for any id."""
    keys = Keys("t")
    redis_client.flushall()
    ledger = Ledger(redis_client, keys)
    ledger.record(NewVersion(order_id, b'{"a":1}', STAMP, "test"), now=T0)
    (claim,) = ledger.begin_batch(
        [(order_id, "tok")],
        lock_head_tail=keys.parts(keys.lock),
        lock_ttl_s=60,
        lock_busy_due_at=T0 + 1,
        task_id="t",
        worker="w",
        now=T0,
        max_unfinished=3,
    )
    assert claim.token == "tok"
    assert redis_client.get(keys.lock(order_id)) == b"tok"
    attempt = Attempt(T0, 503, "JettiUnavailable", None, "w", "retry")
    ledger.finish_batch(
        [Finish(order_id, Retry(T0 + 5, True, attempt), True, "tok")],
        lock_head_tail=keys.parts(keys.lock),
        now=T0,
    )
    assert redis_client.type(keys.order(order_id)) == b"hash"
    assert redis_client.type(keys.order_events(order_id)) == b"list"
    assert redis_client.type(keys.order_attempts(order_id)) == b"list"
    assert redis_client.exists(keys.lock(order_id)) == 0
    # Nothing else was written: every key is one `Keys` builds for this id, or an index.
    per_order = {keys.order(order_id), keys.order_events(order_id), keys.order_attempts(order_id)}
    written = {k.decode() for k in redis_client.keys("t:order:*")}
    assert written == per_order
    assert ledger.pop_due_retries(now=T0 + 10, limit=10) == [order_id]
    entry = ledger.get(order_id)
    assert entry is not None and entry.state is OrderState.PENDING


def test_order_a_events_before_order_a_both_reach_jetti(
    start_pipeline: PipelineFactory, sandbox: Any, redis_url: str
) -> None:
    """Issue 12: `A:events` then `A` in one file used to die with WRONGTYPE, half-recording A.
    Both are recorded and delivered, each under its own externalId (the raw id)."""
    harness = Harness(redis_url)
    ids = ["A:events", "A", "A:attempts", "idx:all", "A b{c}*"]
    summary = harness.enqueue([raw_order(i) for i in ids])
    assert summary is not None
    start_pipeline()
    harness.wait_states(ids, {OrderState.SUBMITTED})
    for order_id in ids:
        (sale,) = sandbox.history(order_id)
        assert sent_body(sale)["externalId"] == order_id
        assert len(harness.ledger.events(order_id)) >= 3
    assert harness.dead.list(limit=10) == []


def test_dead_letters_named_like_the_dlq_index_leave_the_dlq_working(
    start_pipeline: PipelineFactory, sandbox: Any, redis_url: str
) -> None:
    """`idx:all`, `X` and `X:attempts` rejected by Jetti on an empty DLQ: each gets its own dead
    letter, the indexes stay sorted sets, and a later order can still be dead-lettered."""
    harness = Harness(redis_url)
    ids = ["idx:all", "X", "X:attempts", "X:history"]
    sandbox.set_faults(fail_next=len(ids), fail_next_status=400)
    harness.enqueue([raw_order(i) for i in ids])
    start_pipeline()
    harness.wait_states(ids, {OrderState.DEAD})
    listed = {e.order_key for e in harness.dead.list(limit=10)}
    assert listed == set(ids)
    for order_id in ids:
        entry = harness.dead.get(order_id)
        assert entry is not None and entry.reason is DeadReason.REJECTED
        assert entry.status is DeadStatus.DEAD and len(entry.attempts) == 1
    assert harness.client.type(harness.keys.dead_index()) == b"zset"
    sandbox.set_faults(fail_next=1, fail_next_status=400)
    harness.enqueue([raw_order("after")])
    harness.wait_states(["after"], {OrderState.DEAD})
    assert harness.dead.stats().total == len(ids) + 1
