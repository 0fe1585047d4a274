"""The fleet token bucket and the 429 block against a real Redis."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import pytest
import redis

from worker import wiring
from worker.core.keys import Keys
from worker.settings import Settings
from worker.store.rate_limit import RateLimiter

# So slow that no token refills while a test runs: one per 1000 s.
_TRICKLE_PER_S = 0.001


def _limiter(client: redis.Redis[bytes], *, rate_per_s: float, burst: int) -> RateLimiter:
    return RateLimiter(client, Keys(), rate_per_s=rate_per_s, burst=burst)


def test_a_fresh_bucket_grants_its_burst_then_refuses_with_a_wait(
    redis_client: redis.Redis[bytes],
) -> None:
    """A full bucket grants `burst` tokens at once; the next acquire gets a positive wait."""
    limiter = _limiter(redis_client, rate_per_s=_TRICKLE_PER_S, burst=3)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait_s = limiter.acquire()
    assert 0 < wait_s <= 1 / _TRICKLE_PER_S


def test_a_block_makes_acquire_return_the_remaining_block(
    redis_client: redis.Redis[bytes],
) -> None:
    """While blocked, acquire takes no token and returns the time left until the block ends."""
    limiter = _limiter(redis_client, rate_per_s=100.0, burst=5)
    assert limiter.block(until=time.time() + 120) is True
    wait_s = limiter.acquire()
    assert 60 < wait_s <= 120


def test_a_block_only_moves_later(redis_client: redis.Redis[bytes]) -> None:
    """A shorter block after a longer one leaves the longer one in force."""
    limiter = _limiter(redis_client, rate_per_s=100.0, burst=5)
    far = time.time() + 600
    assert limiter.block(until=far) is True
    assert limiter.block(until=far - 300) is False
    assert limiter.blocked_until() == pytest.approx(far, abs=0.001)


def test_a_block_in_the_past_is_ignored(redis_client: redis.Redis[bytes]) -> None:
    """Blocking until a time already past changes nothing: tokens are still granted."""
    limiter = _limiter(redis_client, rate_per_s=100.0, burst=5)
    assert limiter.block(until=time.time() - 5) is False
    assert limiter.blocked_until() is None
    assert limiter.acquire() == 0.0


@pytest.mark.parametrize("until", [float("inf"), float("nan")])
def test_a_non_finite_block_is_ignored_not_a_script_error(
    redis_client: redis.Redis[bytes], until: float
) -> None:
    """reliability #8: `PXAT inf` would be a script error that loops the order; a non-finite
    `until` is ignored (the client already bounds Retry-After) and acquire still works."""
    limiter = _limiter(redis_client, rate_per_s=100.0, burst=5)
    assert limiter.block(until=until) is False
    assert limiter.blocked_until() is None
    assert limiter.acquire() == 0.0


def test_the_block_key_expires_when_the_block_ends(
    redis_client: redis.Redis[bytes],
) -> None:
    """The blocked_until key carries an expiry at the block's end, so it never lingers."""
    keys = Keys()
    _limiter(redis_client, rate_per_s=100.0, burst=5).block(until=time.time() + 60)
    # PXAT is the block's end rounded UP to the millisecond (the key must not expire before the
    # block ends), so within the same millisecond the TTL can read 60 001 ms: not a lingering key.
    assert 0 < redis_client.pttl(keys.blocked_until()) <= 60_001


def test_the_wired_limiter_uses_the_modes_effective_rate() -> None:
    """Sync mode's documented 1 write per second, no burst, reaches the limiter."""
    client: redis.Redis[bytes] = redis.Redis()  # never connected: scripts register lazily
    limiter = wiring.limiter(client, Keys(), Settings(jetti_mode="sync"))
    assert (limiter.rate_per_s, limiter.burst) == (1.0, 1)


def _hammer(
    url: str, rate_per_s: float, burst: int, start: Event, stop: Event, out: Queue[int]
) -> None:
    """Child process: take tokens until told to stop, then report how many were granted."""
    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    limiter = RateLimiter(client, Keys(), rate_per_s=rate_per_s, burst=burst)
    granted = 0
    start.wait()
    while not stop.is_set():
        if limiter.acquire() == 0.0:
            granted += 1
    out.put(granted)
    client.close()


def test_two_processes_together_stay_within_rate_and_burst(redis_url: str) -> None:
    """Two OS processes hammering one bucket for ~2 s are granted at most rate*elapsed + burst."""
    rate_per_s, burst = 50.0, 5
    ctx = multiprocessing.get_context("spawn")
    start, stop = ctx.Event(), ctx.Event()
    out: Queue[int] = ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(redis_url, rate_per_s, burst, start, stop, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    # Elapsed is measured around the whole run, so it over-counts: the bound only gets looser.
    began = time.monotonic()
    start.set()
    time.sleep(2.0)
    stop.set()
    grants = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    elapsed_s = time.monotonic() - began
    assert all(g > 0 for g in grants), "both processes must have been granted tokens"
    assert sum(grants) <= rate_per_s * elapsed_s + burst + 2
