"""The HTTP intake's group commit (producers.http.writer) on a real Redis: requests waiting
together share one enqueue call and each gets its own outcomes; close() drains; the memory
guard reads INFO at most once per interval."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
import redis

from producers.enqueue import (
    Candidate,
    EnqueueInterrupted,
    EnqueueSummary,
    OnResult,
    enqueue_candidates,
)
from producers.http.writer import (
    GroupCommitWriter,
    IntakeUnavailable,
    MemoryGuard,
    OrderResult,
)
from tests.factories import raw_order
from tests.fixtures.broker import published_keys
from tests.fixtures.pipeline import Harness
from tests.fixtures.redis_server import RedisServer
from worker.core.keys import Keys

pytestmark = pytest.mark.integration


class CountingEnqueue:
    """The real enqueue on the test Redis, remembering how many candidates each call had."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.calls: list[int] = []

    def __call__(self, candidates: list[Candidate], on_result: OnResult) -> EnqueueSummary:
        self.calls.append(len(candidates))
        return enqueue_candidates(
            candidates,
            client=self.harness.client,
            publisher=self.harness.publisher,
            keys=Keys(),
            on_result=on_result,
        )


def request(*order_ids: str, prefix: str = "") -> list[Candidate]:
    """One request's candidates, numbered from 1 as NDJSON lines are; "!" ids are invalid."""
    return [
        Candidate(
            n, json.dumps(raw_order(i.strip("!"), quantity=0 if "!" in i else 1)), id_prefix=prefix
        )
        for n, i in enumerate(order_ids, 1)
    ]


def outcomes(future: Future[list[OrderResult]]) -> list[tuple[int, str | None, str]]:
    return [(r.position, r.key, r.outcome) for r in future.result(timeout=10)]


@pytest.fixture
def counting(harness: Harness) -> CountingEnqueue:
    return CountingEnqueue(harness)


@pytest.fixture
def writer(counting: CountingEnqueue) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(counting, max_orders=4)
    yield w
    w.close()


def test_waiting_requests_share_one_write_and_each_gets_its_own_outcomes(
    writer: GroupCommitWriter, counting: CountingEnqueue, harness: Harness
) -> None:
    """Three requests queued before the writer runs: one enqueue call for the first two (up to
    max_orders), one for the third; every request's outcomes in its own positions and keys."""
    first = writer.submit(request("g-1", "g-2!", prefix="a-"))
    second = writer.submit(request("g-1", "g-3"))
    third = writer.submit(request("g-1", "g-4", prefix="a-"))

    writer.start()

    assert outcomes(first) == [(1, "a-g-1", "accepted"), (2, "a-g-2", "rejected")]
    assert outcomes(second) == [(1, "g-1", "accepted"), (2, "g-3", "accepted")]
    assert outcomes(third) == [(1, "a-g-1", "unchanged"), (2, "a-g-4", "accepted")]
    assert counting.calls == [4, 2]
    assert first.result()[1].problems[0].path == "lines[0].quantity"
    assert set(published_keys(harness.client)) == {"a-g-1", "a-g-4", "g-1", "g-3"}


def test_close_writes_what_was_queued_then_refuses(
    writer: GroupCommitWriter, harness: Harness
) -> None:
    """close() writes every request submitted before it, then stops; a later submit fails at
    once with IntakeUnavailable (a 503), it is never left waiting."""
    queued = writer.submit(request("c-1"))
    writer.start()
    writer.close()

    assert outcomes(queued) == [(1, "c-1", "accepted")]
    assert not writer.alive
    with pytest.raises(IntakeUnavailable, match="shutting down"):
        writer.submit(request("c-2")).result(timeout=1)
    assert harness.ledger.get("c-2") is None


def test_a_withdrawn_request_is_not_written(
    writer: GroupCommitWriter, counting: CountingEnqueue, harness: Harness
) -> None:
    """A request cancelled before the writer took it (its sender went away) writes nothing."""
    gone = writer.submit(request("w-1"))
    kept = writer.submit(request("w-2"))
    assert gone.cancel()

    writer.start()

    assert outcomes(kept) == [(1, "w-2", "accepted")]
    assert counting.calls == [1]
    assert harness.ledger.get("w-1") is None


def test_a_redis_refusal_fails_every_request_of_the_group() -> None:
    """When the one enqueue call of a group is interrupted (here a refusal such as OOM), every
    request of the group gets IntakeUnavailable with a Retry-After, not a partial answer."""

    def refused(candidates: list[Candidate], on_result: OnResult) -> EnqueueSummary:
        raise EnqueueInterrupted(
            EnqueueSummary(), position=0, unreachable=False, detail="OOM command not allowed"
        )

    writer = GroupCommitWriter(refused)
    futures = [writer.submit(request("r-1")), writer.submit(request("r-2"))]
    writer.start()
    try:
        for future in futures:
            with pytest.raises(IntakeUnavailable, match="refused") as caught:
                future.result(timeout=10)
            assert caught.value.retry_after_s > 0
        assert writer.alive  # the writer survives and serves the next group
    finally:
        writer.close()


def test_the_memory_guard_reads_info_at_most_once_per_interval(
    own_redis_server: RedisServer,
) -> None:
    """Over the limit it refuses; the reading is kept for `interval_s`, so memory freed is seen
    at the first check after the interval, not before."""
    client: redis.Redis[bytes] = redis.Redis.from_url(own_redis_server.url)
    now = [100.0]
    guard = MemoryGuard(client, limit=0.5, interval_s=1.0, clock=lambda: now[0])
    client.config_set("maxmemory", str(int(int(client.info("memory")["used_memory"]) * 1.25)))

    with pytest.raises(IntakeUnavailable, match="maxmemory"):
        guard.check()
    client.config_set("maxmemory", "0")
    now[0] += 0.5
    with pytest.raises(IntakeUnavailable):
        guard.check()
    now[0] += 0.5
    guard.check()
    client.close()
