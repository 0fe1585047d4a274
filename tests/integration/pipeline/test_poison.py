"""A poison order ends, alone (issue 12 point 7; reliability #7, #11, L6, L8, L9).

Every delivery that ends without a recorded outcome is a strike toward the crash-loop bound, so
a deterministic failure becomes a `worker_lost` dead letter; the orders that shared its message
are delivered on their own. Real Redis, the real processor and sweeper, the sandbox over HTTP;
the end-to-end test runs a real worker subprocess whose pool process is killed with SIGKILL.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from ops.harness.ports import free_port
from tests.factories import raw_order
from tests.fixtures.exporter import running_exporter, scrape, value
from tests.fixtures.ledger import deliver, finish
from tests.fixtures.pipeline import Harness, PipelineFactory, PipelineProcess, wait_until
from worker.core.contract import parse_raw_order
from worker.core.errors import ClaimFailed
from worker.core.keys import Keys, orders_queue
from worker.core.states import DeadReason, OrderState
from worker.pipeline.maintenance import Maintenance, MaintenanceConfig
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings
from worker.store.leases import Leader, OrderLock
from worker.store.ledger import Ledger, NewVersion
from worker.store.ledger_schema import OrderField
from worker.store.stats import NO_OUTCOME_FIELD, UNKNOWN_ORDER_FIELD

pytestmark = pytest.mark.integration

GOOD = ("good-1", "good-2", "good-3")
POISON = "poison"
# The runtime's key prefix is "poison" too: its Celery queue is that prefix's (issue 14 point 5).
QUEUE = orders_queue("poison")
MAX_UNFINISHED = 3


@pytest.fixture
def runtime(redis_url: str, sandbox: Any) -> Iterator[Runtime]:
    rt = build_runtime(
        Settings(
            redis_url=redis_url,
            broker_url=redis_url,
            key_prefix="poison",
            webhook_hash=sandbox.webhook_hash,
            jetti_async_url=sandbox.webhook_url,
            max_unfinished_deliveries=MAX_UNFINISHED,
        )
    )
    yield rt
    rt.close()


def _record(rt: Runtime, key: str) -> None:
    raw = json.dumps(raw_order(key)).encode()
    updated_at = parse_raw_order(json.loads(raw)).updated_at
    rt.ledger.record(NewVersion(key, raw, updated_at, "test"), now=time.time())


def test_an_exception_for_one_order_strikes_it_until_it_is_dead_lettered(
    runtime: Runtime, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transform bug for one order shape (an exception `_guard` swallows) leaves that order
    without an outcome: no finish marker, a strike. Its message's other orders are delivered.
    After MAX_UNFINISHED such deliveries (the sweeper re-publishing it alone), the next
    one dead-letters it as `worker_lost` instead of looping forever."""
    import worker.core.build as build_module

    real_transform = build_module.transform

    def buggy_transform(order: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("external_id") == POISON:
            raise RuntimeError("a bug for this order shape")
        return real_transform(order, *args, **kwargs)

    monkeypatch.setattr(build_module, "transform", buggy_transform)
    for key in (POISON, *GOOD):
        _record(runtime, key)
    processor = runtime.processor
    processor.handle_batch([POISON, *GOOD], task_id="first")
    for key in GOOD:
        entry = runtime.ledger.get(key)
        assert entry is not None and entry.state is OrderState.SUBMITTED, key
        assert len(sandbox.history(key)) == 1
    for delivery in range(1, MAX_UNFINISHED + 1):
        if delivery > 1:
            processor.handle_batch([POISON], task_id=f"sweep-{delivery}")
        entry = runtime.ledger.get(POISON)
        assert entry is not None and entry.state is OrderState.SUBMITTING
        assert (entry.deliveries_started, entry.deliveries_finished) == (delivery, 0)
        assert runtime.lock.holder(POISON) is None
    processor.handle_batch([POISON], task_id="bounded")
    entry = runtime.ledger.get(POISON)
    assert entry is not None and entry.state is OrderState.DEAD
    assert entry.dead_reason is DeadReason.WORKER_LOST
    letter = runtime.dead_letters.get(POISON)
    assert letter is not None and letter.reason is DeadReason.WORKER_LOST
    assert "without an outcome" in letter.error
    assert sandbox.history(POISON) == []
    assert runtime.stats.fault_counts()[NO_OUTCOME_FIELD] == MAX_UNFINISHED


def test_retryable_answers_spend_attempts_and_are_not_strikes(
    runtime: Runtime, sandbox: Any
) -> None:
    """A 503 is an outcome (a retry that spends an attempt): the delivery gets its finish
    marker, so Jetti's own trouble never counts toward `worker_lost`."""
    _record(runtime, "busy")
    sandbox.set_faults(fail_next=1, fail_next_status=503)
    runtime.processor.handle_batch(["busy"], task_id="t")
    entry = runtime.ledger.get("busy")
    assert entry is not None and entry.state is OrderState.RETRY_WAIT
    assert entry.attempts == 1
    assert entry.deliveries_started == entry.deliveries_finished == 1


def test_a_message_with_a_suspect_order_takes_no_filler(runtime: Runtime) -> None:
    """`fill` tops a small message up with waiting PENDING orders, but never a message holding
    an order with a delivery that ended without an outcome, and never with such an order."""
    ledger, lock = runtime.ledger, runtime.lock
    for key in ("suspect", "waiting-1", "waiting-2"):
        _record(runtime, key)
    now = time.time()
    deliver(ledger, runtime.keys, "suspect", task_id="t", worker="w", now=now)
    claims = _claim(ledger, lock, ["suspect"], fill=5, now=now)
    assert [c.order_key for c in claims] == ["suspect"]
    # A PENDING suspect (a newer version came in after its delivery died) is no filler either.
    _make_pending_suspect(runtime, "suspect-pending", now=now)
    claims = _claim(ledger, lock, ["waiting-1"], fill=5, now=now)
    assert "suspect-pending" not in [c.order_key for c in claims]
    assert "waiting-2" in [c.order_key for c in claims]


def test_a_redelivered_message_sends_its_suspect_alone(runtime: Runtime) -> None:
    """A message whose delivery died (a whole container killed, its locks expired) comes back
    whole: its innocent orders are claimed, the suspect is left untouched and published in a
    message of its own, so it cannot take them down again (reliability #11). Alone, or at the
    crash-loop bound, a suspect is claimed as before."""
    runtime.redis.delete(orders_queue(runtime.settings.key_prefix))
    ledger, lock = runtime.ledger, runtime.lock
    now = time.time()
    for key in (POISON, *GOOD):
        _record(runtime, key)
        deliver(ledger, runtime.keys, key, task_id="t", worker="w", now=now)
    for key in GOOD:  # their delivery was not the one that died: finished with an outcome
        finish(ledger, runtime.keys, key, None, now=now)
    claims = _claim(ledger, lock, [POISON, *GOOD], fill=0, now=now)
    assert [(c.order_key, c.isolate) for c in claims] == [
        (POISON, True),
        *((k, False) for k in GOOD),
    ]
    assert runtime.redis.get(runtime.keys.lock(POISON)) is None
    assert ledger.get(POISON).deliveries_started == 1  # untouched
    assert _claim(ledger, lock, [POISON], fill=0, now=now)[0].isolate is False


def test_the_processor_publishes_an_isolated_suspect_alone(runtime: Runtime) -> None:
    """The processor delivers a redelivered message's innocent orders and sends its suspect
    back in a message of its own, without starting a delivery of it."""
    runtime.redis.delete(orders_queue(runtime.settings.key_prefix))
    for key in (POISON, *GOOD):
        _record(runtime, key)
    deliver(runtime.ledger, runtime.keys, POISON, task_id="t", worker="w", now=time.time())
    runtime.processor.handle_batch([POISON, *GOOD], task_id="redelivered")
    assert _queued_messages(runtime.redis) == [[POISON]]
    assert runtime.ledger.get(POISON).deliveries_started == 1
    for key in GOOD:
        assert runtime.ledger.get(key).state is OrderState.SUBMITTED, key


def _claim(ledger: Ledger, lock: OrderLock, keys: list[str], *, fill: int, now: float) -> list:
    return ledger.begin_batch(
        [(k, lock.make_token()) for k in keys],
        lock_head_tail=lock.key_parts(),
        lock_ttl_s=0.2,
        lock_busy_due_at=now + 1,
        task_id="t",
        worker="w",
        now=now,
        max_unfinished=3,
        fill=fill,
        fill_token=lock.make_token(),
    )


def _make_pending_suspect(rt: Runtime, key: str, *, now: float) -> None:
    """An order whose delivery died, then a newer version: PENDING with a strike."""
    _record(rt, key)
    deliver(rt.ledger, rt.keys, key, task_id="t", worker="w", now=now)
    # PENDING, as record_one leaves it
    rt.redis.hset(rt.keys.order(key), OrderField.STATE, OrderState.PENDING)
    rt.redis.zrem(rt.keys.state_index(OrderState.SUBMITTING), key)
    rt.redis.zadd(rt.keys.state_index(OrderState.PENDING), {key: 0})


def test_a_claim_that_fails_is_not_acked(
    redis_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis failing at the claim: the processor raises ClaimFailed and the task rejects the
    message for redelivery (requeue) instead of acking it (reliability L8)."""
    from celery.exceptions import Reject

    import worker.tasks as tasks

    dead_port = free_port()  # nothing listens there
    rt = build_runtime(
        Settings(
            redis_url=f"redis://127.0.0.1:{dead_port}/0",
            broker_url=redis_url,
            key_prefix="poison-l8",
            webhook_hash=sandbox.webhook_hash,
            jetti_async_url=sandbox.webhook_url,
            failover_retry_s=0.0,  # a Redis that never comes: no failover to ride out
        )
    )
    try:
        with pytest.raises(ClaimFailed):
            rt.processor.handle_batch(["a"], task_id="t")
        monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
        monkeypatch.setattr(tasks, "CLAIM_FAILED_PAUSE_S", 0.0)

        class Request:
            id = "task-l8"

        class Self:
            request = Request()

        with pytest.raises(Reject) as raised:
            tasks._import_orders(Self(), {"v": 1, "keys": ["a"]})  # type: ignore[arg-type]
        assert raised.value.requeue is True
    finally:
        rt.processor.close()


def test_a_message_for_an_unknown_order_is_counted(runtime: Runtime) -> None:
    """`order_unknown` (a message for a key with no ledger entry) shows in the counters that
    `jetti-relay metrics` exports, not only in a log line (reliability L6)."""
    runtime.processor.handle_batch(["ghost-1", "ghost-2"], task_id="t")
    assert runtime.stats.fault_counts()[UNKNOWN_ORDER_FIELD] == 2
    with running_exporter(runtime.settings.redis_url, JETTI_RELAY_KEY_PREFIX="poison") as url:
        samples = scrape(url)
    assert value(samples, "jetti_relay_orders_unknown_total") == 2
    assert value(samples, "jetti_relay_deliveries_without_outcome_total") == 0


# --- the sweeper -----------------------------------------------------------------------------


def _queued_messages(client: redis.Redis[bytes]) -> list[list[str]]:
    """The key lists of the messages waiting in the orders queue (Celery's Redis transport)."""
    out = []
    for raw in client.lrange(QUEUE, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        out.append(body[0][0]["keys"])
    return out


def _maintenance(rt: Runtime, *, clock: Any) -> Maintenance:
    return Maintenance(
        config=MaintenanceConfig(
            holder="test",
            pump_interval_s=1,
            sweep_interval_s=1,
            stuck_after_s=10,
            hard_time_limit_s=5,
        ),
        ledger=rt.ledger,
        leader=Leader(rt.redis, rt.keys),
        publisher=rt.publisher,
        clock=clock,
        queue_length=rt.publisher.queue_length,
    )


def test_the_sweeper_republishes_stuck_deliveries_one_per_message(runtime: Runtime) -> None:
    """Orders stuck SUBMITTING (their delivery died) go back one per message, so a poison
    order's batch is never re-formed with it (reliability #11)."""
    runtime.redis.delete(orders_queue(runtime.settings.key_prefix))
    now = time.time()
    for key in (POISON, *GOOD):
        _record(runtime, key)
        deliver(runtime.ledger, runtime.keys, key, task_id="t", worker="w", now=now)
    report = _maintenance(runtime, clock=lambda: now + 100).sweep_once()
    assert report.republished_submitting == 4
    assert sorted(_queued_messages(runtime.redis)) == sorted([[k] for k in (POISON, *GOOD)])


def test_the_sweeper_does_not_amplify_a_backlog(runtime: Runtime) -> None:
    """While the queue still holds messages, a PENDING order past the stuck threshold is most
    likely queued, not lost: it is re-published only after BACKLOG_STUCK_FACTOR times the
    threshold. With the queue drained it goes back at the threshold (reliability L9)."""
    from worker.pipeline.maintenance import BACKLOG_STUCK_FACTOR

    runtime.redis.delete(orders_queue(runtime.settings.key_prefix))
    now = time.time()
    _record(runtime, "queued")
    runtime.publisher.publish(["someone-else"])  # the backlog
    sweeper = _maintenance(runtime, clock=lambda: now + 11)
    assert sweeper.sweep_once().republished_pending == 0
    late = _maintenance(runtime, clock=lambda: now + 10 * BACKLOG_STUCK_FACTOR + 1)
    assert late.sweep_once().republished_pending == 1
    runtime.redis.delete(orders_queue(runtime.settings.key_prefix))
    runtime.ledger.mark_republished(["queued"], now=now)
    assert sweeper.sweep_once().republished_pending == 1


# --- end to end: a real worker whose pool process dies on the poison order --------------------

# Short limits so a killed delivery's lock expires in seconds (HTTP < soft < hard < lock TTL).
E2E_ENV = {
    "JETTI_RELAY_HTTP_CONNECT_TIMEOUT_S": "0.5",
    "JETTI_RELAY_HTTP_READ_TIMEOUT_S": "3",
    "JETTI_RELAY_HTTP_WRITE_TIMEOUT_S": "0.5",
    "JETTI_RELAY_HTTP_POOL_TIMEOUT_S": "0.5",
    "JETTI_RELAY_SOFT_TIME_LIMIT_S": "5",
    "JETTI_RELAY_HARD_TIME_LIMIT_S": "5.5",
    "JETTI_RELAY_LOCK_TTL_S": "6",
    "JETTI_RELAY_MAX_UNFINISHED_DELIVERIES": str(MAX_UNFINISHED),
}


@pytest.fixture
def harness(redis_url: str) -> Iterator[Harness]:
    h = Harness(redis_url)
    yield h
    h.client.close()


def _kill_pool_when_in_flight(harness: Harness, worker: PipelineProcess, delivery: int) -> None:
    """SIGKILL the worker's pool process while the poison order's `delivery` is in flight."""
    lock = OrderLock(harness.client, harness.keys)

    def in_flight() -> bool:
        entry = harness.ledger.get(POISON)
        return (
            entry is not None
            and entry.deliveries_started == delivery
            and lock.holder(POISON) is not None
        )

    wait_until(in_flight, timeout_s=60, what=f"delivery {delivery} of the poison order")
    for pid in worker.child_pids():
        os.kill(pid, signal.SIGKILL)


def test_a_poison_order_is_dead_lettered_alone_and_its_message_mates_are_delivered(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """One order whose every delivery kills the pool process shares a message with good ones.
    The good ones are delivered once each; the poison one is dead-lettered `worker_lost` after
    MAX_UNFINISHED deaths. Today's sweeper re-forms the batch and takes them all down with it."""
    # Each answer takes 2 s: a wide window to kill the process while the poison is in flight.
    sandbox.set_faults(latency_ms=2000)
    worker = start_pipeline(concurrency=1, pump=False, **E2E_ENV)
    keys = Keys(harness.settings.key_prefix)
    offset = [0.0]
    sweeper = Maintenance(
        config=MaintenanceConfig(
            holder="test",
            pump_interval_s=1,
            sweep_interval_s=1,
            stuck_after_s=3,
            hard_time_limit_s=5.5,
        ),
        ledger=harness.ledger,
        leader=Leader(harness.client, keys),
        publisher=harness.publisher,
        clock=lambda: time.time() + offset[0],
    )
    lock = OrderLock(harness.client, keys)
    harness.enqueue([raw_order(POISON), *(raw_order(k) for k in GOOD)])
    for delivery in range(1, MAX_UNFINISHED + 1):
        _kill_pool_when_in_flight(harness, worker, delivery)
        wait_until(
            lambda: lock.holder(POISON) is None,
            timeout_s=30,
            what="the dead delivery's lock to expire",
        )
        # The sweeper's next pass, as if its threshold (hard limit + 30 s) had passed.
        offset[0] += 100
        sweeper.sweep_once()
    harness.wait_states([POISON], {OrderState.DEAD}, timeout_s=60)
    harness.wait_states(list(GOOD), {OrderState.SUBMITTED}, timeout_s=60)
    entry = harness.ledger.get(POISON)
    assert entry is not None and entry.dead_reason is DeadReason.WORKER_LOST
    for key in GOOD:
        assert len(sandbox.sales(key)) == 1
        assert harness.dead.get(key) is None
