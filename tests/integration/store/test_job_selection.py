"""`worker.store.jobs.select_dead_keys`: what a replay job snapshots, read from the dead-letter
indexes alone, is what walking the entries with the same filter selects."""

from __future__ import annotations

import pytest
import redis

from worker.core.keys import Keys
from worker.core.records import Attempt
from worker.core.states import DeadReason, DeadStatus
from worker.store.dead_letters import DeadLetters
from worker.store.dead_query import DeadFilter, iter_entries
from worker.store.jobs import select_dead_keys

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def _walk(dead: DeadLetters, flt: DeadFilter, until: float) -> list[str]:
    return [
        e.order_key
        for e in iter_entries(dead, flt.bounded(until))
        if e.status is not DeadStatus.RESOLVED
    ]


@pytest.fixture
def dead(redis_client: redis.Redis[bytes]) -> DeadLetters:
    """Twelve entries a second apart: shop-a / shop-b keys, rejected / retries_exhausted, two
    of them resolved, one replayed."""
    store = DeadLetters(redis_client, Keys())
    for n in range(12):
        at = T0 + n
        attempt = Attempt(
            at=at, status=422, error_class="Rejected", excerpt="x", worker="w", outcome="dead"
        )
        store.put(
            f"shop-{'ab'[n % 2]}:{n}",
            reason=DeadReason.REJECTED if n % 3 else DeadReason.RETRIES_EXHAUSTED,
            raw=b"{}",
            payload=None,
            attempts=[attempt],
            source="shop",
            error="rejected",
            now=at,
        )
    store.mark_resolved("shop-a:4", now=T0 + 20)
    store.mark_resolved("shop-b:5", now=T0 + 20)
    store.mark_replayed("shop-a:6", now=T0 + 20)
    return store


@pytest.mark.parametrize(
    "flt",
    [
        DeadFilter(),
        DeadFilter(reason=DeadReason.REJECTED),
        DeadFilter(key_glob="shop-a:*", since=T0 + 2),
        DeadFilter(reason=DeadReason.RETRIES_EXHAUSTED, until=T0 + 6),
        DeadFilter(status=DeadStatus.REPLAYED),
        DeadFilter(reason=DeadReason.REJECTED, status=DeadStatus.DEAD),
    ],
    ids=["every entry", "reason", "glob and since", "reason and until", "status", "both"],
)
def test_the_index_selection_is_the_walk_of_the_entries(
    dead: DeadLetters, redis_client: redis.Redis[bytes], flt: DeadFilter
) -> None:
    """Same keys, same order (newest first), resolved entries left out, the upper bound kept."""
    until = T0 + 9.5

    selected = select_dead_keys(redis_client, Keys(), flt, until=until)

    assert selected == _walk(dead, flt, until)
    assert selected and "shop-a:4" not in selected and "shop-b:10" not in selected


def test_a_filter_on_what_only_the_entries_hold_is_left_to_the_walk(
    dead: DeadLetters, redis_client: redis.Redis[bytes]
) -> None:
    """Error text, HTTP status and source are not indexed: None, the caller walks entries."""
    for flt in (
        DeadFilter(error_contains="rej"),
        DeadFilter(http_status=422),
        DeadFilter(source="shop"),
    ):
        assert select_dead_keys(redis_client, Keys(), flt, until=T0 + 100) is None
