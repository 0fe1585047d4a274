"""The worker's per-message path against a real Redis: claim and flush scripts, bulk tokens, the
breaker's batch admission, the counters tally. The same guarantees as one order at a time: the
lock and its token, no attempt spent on a taken lock, a newer version re-published, the fleet
rate and the single probe."""

from __future__ import annotations

import time

import pytest
import redis

from tests.fixtures.ledger import hold_lock, submit
from worker.core.keys import Keys
from worker.core.states import DeadReason, OrderState
from worker.store.breaker import Breaker
from worker.store.leases import OrderLock
from worker.store.ledger import (
    Attempt,
    Dead,
    DeliveryAction,
    Finish,
    Ledger,
    NewVersion,
    Retry,
    Submitted,
)
from worker.store.rate_limit import RateLimiter
from worker.store.stats import Stats

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


@pytest.fixture
def keys() -> Keys:
    return Keys("bp")


@pytest.fixture
def ledger(redis_client: redis.Redis[bytes], keys: Keys) -> Ledger:
    return Ledger(redis_client, keys)


@pytest.fixture
def lock(redis_client: redis.Redis[bytes], keys: Keys) -> OrderLock:
    return OrderLock(redis_client, keys)


def record(ledger: Ledger, key: str, body: str = '{"a":1}', *, now: float = T0) -> None:
    ledger.record(NewVersion(key, body.encode(), None, "test"), now=now)


def claim(ledger: Ledger, lock: OrderLock, pairs: list[tuple[str, str]], **kw: object) -> list:
    return ledger.begin_batch(
        pairs,
        lock_head_tail=lock.key_parts(),
        lock_ttl_s=60,
        lock_busy_due_at=T0 + 2,
        task_id="task",
        worker="w",
        now=T0,
        max_unfinished=3,
        **kw,
    )


def test_claim_locks_begins_and_reschedules_a_taken_order(
    ledger: Ledger, lock: OrderLock, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Free orders are locked with the caller's token and SUBMITTING; a taken one is put back
    without spending an attempt; an unknown key and a settled order hold no lock."""
    for key in ("a", "b", "done"):
        record(ledger, key)
    submit(ledger, keys, "done", payload_hash="h", line_ids=(), sale_id=None, now=T0)
    other = hold_lock(redis_client, keys, "b", ttl_s=60)
    claims = claim(ledger, lock, [("a", "ta"), ("b", "tb"), ("nope", "tn"), ("done", "td")])
    a, b, nope, done = claims
    assert a.token == "ta" and a.delivery.action is DeliveryAction.PROCEED
    assert lock.holder("a") == "ta" and a.delivery.entry.state is OrderState.SUBMITTING
    assert b.locked and b.token is None and lock.holder("b") == other
    entry_b = ledger.get("b")
    assert entry_b is not None and entry_b.state is OrderState.RETRY_WAIT
    assert entry_b.attempts == 0 and entry_b.next_attempt_at == T0 + 2
    assert nope.delivery.action is DeliveryAction.UNKNOWN and lock.holder("nope") is None
    assert done.delivery.action is DeliveryAction.NOTHING_TO_DO and done.token is None
    assert lock.holder("done") is None


def test_claim_fills_from_pending_and_never_touches_a_locked_one(
    ledger: Ledger, lock: OrderLock, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """A short message takes on the oldest PENDING orders; one locked elsewhere stays as it is."""
    for n, key in enumerate(("m", "p1", "p2", "p3")):
        record(ledger, key, now=T0 + n)
    held = hold_lock(redis_client, keys, "p1", ttl_s=60)
    claims = claim(ledger, lock, [("m", "tm")], fill=5, fill_token="F")
    assert [c.order_key for c in claims] == ["m", "p2", "p3"]
    assert [c.token for c in claims] == ["tm", "F:2", "F:3"]
    assert all(c.delivery.action is DeliveryAction.PROCEED for c in claims)
    assert lock.holder("p2") == "F:2"
    p1 = ledger.get("p1")
    assert p1 is not None and p1.state is OrderState.PENDING and lock.holder("p1") == held


def test_flush_writes_outcomes_finish_markers_and_releases_only_its_own_locks(
    ledger: Ledger, lock: OrderLock, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Submitted / retry / dead land as the single-order scripts write them; a newer version
    that arrived mid-submit answers 1 (re-publish) and leaves the order PENDING; a lock that
    another worker now holds is not released; counters ride the same round trip."""
    for key in ("ok", "newer", "retry", "dead"):
        record(ledger, key)
    claims = claim(ledger, lock, [(k, f"t-{k}") for k in ("ok", "newer", "retry", "dead")])
    sent = {c.order_key: c.delivery.entry.version for c in claims}
    record(ledger, "newer", '{"a":2}', now=T0 + 1)  # arrives while "newer" is in flight
    redis_client.set(keys.lock("dead"), "someone-else")  # our lock expired and was retaken
    attempt = Attempt(
        at=T0, status=503, error_class="JettiUnavailable", excerpt="x", worker="w", outcome="error"
    )
    tally = Stats(redis_client, keys).tally()
    tally.count_submission("accepted", 200)
    tally.observe_latency(0.2)
    replies = ledger.finish_batch(
        [
            Finish("ok", Submitted(sent["ok"], "h1", ("l1",), None), True, "t-ok"),
            Finish("newer", Submitted(sent["newer"], "h2", ("l1",), None), True, "t-newer"),
            Finish("retry", Retry(T0 + 5, True, attempt), True, "t-retry"),
            Finish("dead", Dead(DeadReason.REJECTED), True, "t-dead"),
        ],
        lock_head_tail=lock.key_parts(),
        now=T0 + 2,
        also=tally.queue,
    )
    assert replies == [0, 1, 1, 1]
    states = {k: ledger.get(k).state for k in ("ok", "newer", "retry", "dead")}
    assert states == {
        "ok": OrderState.SUBMITTED,
        "newer": OrderState.PENDING,
        "retry": OrderState.RETRY_WAIT,
        "dead": OrderState.DEAD,
    }
    retry = ledger.get("retry")
    assert retry is not None and retry.attempts == 1 and retry.deliveries_finished == 1
    assert [a.status for a in ledger.attempts("retry")] == [503]
    assert lock.holder("ok") is None and lock.holder("newer") is None
    assert lock.holder("dead") == "someone-else"
    assert Stats(redis_client, keys).submissions() == {("accepted", "200"): 1}
    assert Stats(redis_client, keys).latency_histogram()[1] == 1


def test_bulk_tokens_keep_the_bucket(redis_client: redis.Redis[bytes], keys: Keys) -> None:
    """acquire_many takes only whole tokens the bucket holds and says how long until the next;
    a fleet block gives none."""
    limiter = RateLimiter(redis_client, keys, rate_per_s=10.0, burst=5)
    taken, wait_s = limiter.acquire_many(8)
    assert taken == 5 and 0 < wait_s <= 0.1 + 1e-6
    assert limiter.acquire_many(3)[0] == 0
    limiter.block(until=time.time() + 30)
    taken, wait_s = limiter.acquire_many(1)
    assert taken == 0 and wait_s > 25


def test_admission_lets_one_probe_through(redis_client: redis.Redis[bytes], keys: Keys) -> None:
    """Closed: the whole batch. Open: none until the probe time, then exactly one caller gets
    a probe. Paused: none."""
    breaker = Breaker(redis_client, keys, probe_s=10.0)
    assert breaker.admit(now=T0) == "all"
    breaker.trip(reason="401", status=401, now=T0)
    assert breaker.admit(now=T0 + 5) == "none"
    assert [breaker.admit(now=T0 + 10 + i) for i in range(3)] == ["probe", "none", "none"]
    breaker.record_success()
    assert breaker.admit(now=T0 + 20) == "all"
    breaker.pause()
    assert breaker.admit(now=T0 + 1000) == "none"


def test_soft_time_limit_stops_the_batch_and_still_flushes(
    redis_url: str, redis_client: redis.Redis[bytes]
) -> None:
    """Celery's SoftTimeLimitExceeded (an Exception) is not swallowed as one order's failure:
    the batch stops sending, and the flush still releases every lock before the hard limit
    would kill the process. Orders it stopped before an outcome get no finish marker: each such
    delivery is a strike toward the crash-loop bound (reliability #7), not a free loop.

    The runtime's stores on a real Redis; Jetti and the cancel check (which raises the soft
    limit while the first order is decided) are injected fakes."""
    from celery.exceptions import SoftTimeLimitExceeded

    from ops.chaos.flow import raw_order
    from tests.fakes import FakeCanceller, FakeJetti, InlineExecutor
    from worker.core.contract import parse_raw_order
    from worker.core.jsonio import loads_document
    from worker.core.rules import Rules
    from worker.pipeline.processor import OrderProcessor, ProcessorConfig
    from worker.runtime import build_runtime
    from worker.settings import Settings
    from worker.wiring import retry_policy

    rt = build_runtime(
        Settings(
            redis_url=redis_url,
            key_prefix="soft",
            webhook_hash="h",
            jetti_async_url="http://127.0.0.1:9/never",
        )
    )
    assert SoftTimeLimitExceeded in rt.processor.stop_exceptions, "the runtime must inject it"
    jetti = FakeJetti()
    canceller = FakeCanceller(raises=SoftTimeLimitExceeded())
    processor = OrderProcessor(
        config=ProcessorConfig(
            worker_id="w",
            lock_ttl_s=60.0,
            lock_busy_retry_s=2.0,
            max_unfinished_deliveries=3,
            max_token_wait_s=1.0,
            breaker_probe_s=1.0,
            allow_line_changes=False,
            retry=retry_policy(rt.settings),
        ),
        ledger=rt.ledger,
        dead_letters=rt.dead_letters,
        lock=rt.lock,
        limiter=rt.limiter,
        breaker=rt.breaker,
        jetti=jetti,
        publisher=rt.publisher,
        rules=Rules.empty(),
        stats=rt.stats,
        executor=InlineExecutor(),
        canceller=canceller,
        stop_exceptions=rt.processor.stop_exceptions,
    )
    try:
        for key in ("a", "b"):
            raw = raw_order(key, 1)
            rt.ledger.record(
                NewVersion(key, raw, parse_raw_order(loads_document(raw)).updated_at, "test"),
                now=time.time(),
            )
        processor.handle_batch(["a", "b"], task_id="task")
        assert canceller.seen == ["a"], "the batch went on deciding after the soft time limit"
        assert jetti.sent == [], "the batch sent orders after the soft time limit"
        for key in ("a", "b"):
            entry = rt.ledger.get(key)
            assert entry is not None
            assert (entry.deliveries_started, entry.deliveries_finished) == (1, 0)
            assert entry.state is OrderState.SUBMITTING
            assert rt.lock.holder(key) is None
    finally:
        rt.close()
