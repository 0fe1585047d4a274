"""`OrderQuery` against a real Redis: search by key prefix (raw keys, whatever their encoding),
state and received time, cursors that continue a search without skipping or repeating, a bound
on the members one call examines, and the backlog's order."""

from __future__ import annotations

import pytest
import redis

from tests.integration.store.ledger_steps import T0, deliver, retry, submit, version
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.store import order_query
from worker.store.ledger import Ledger
from worker.store.order_query import BadCursor, OrderPage, OrderQuery

pytestmark = pytest.mark.integration


@pytest.fixture
def query(redis_client: redis.Redis[bytes], keys: Keys) -> OrderQuery:
    return OrderQuery(redis_client, keys)


def _record(ledger: Ledger, *order_keys: str, at: float = T0) -> None:
    for n, key in enumerate(order_keys):
        ledger.record(version(f'{{"n":{n}}}', key=key), now=at)


def _keys(page: OrderPage) -> list[str]:
    return [row.order_key for row in page.rows]


def _all_pages(query: OrderQuery, **search: object) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = query.search(cursor=cursor, **search)  # type: ignore[arg-type]
        pages.append(_keys(page))
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_prefix_search_matches_raw_keys_with_spaces_slashes_and_non_ascii(
    ledger: Ledger, query: OrderQuery
) -> None:
    """Key names are percent-encoded, the index holds raw keys: a prefix with a space, a '/'
    or 'é' finds exactly the keys that start with it, in lexicographic order; an exact key is
    a prefix that matches it."""
    _record(ledger, "shop a/2", "shop a/1", "shop é/1", "shop b", "shopx", "shop a")

    assert _keys(query.search(prefix="shop a/")) == ["shop a/1", "shop a/2"]
    assert _keys(query.search(prefix="shop é")) == ["shop é/1"]
    assert _keys(query.search(prefix="shop b")) == ["shop b"]
    assert _keys(query.search(prefix="shop ")) == [
        "shop a",
        "shop a/1",
        "shop a/2",
        "shop b",
        "shop é/1",
    ]
    assert query.search(prefix="nope").rows == []


def test_without_a_prefix_orders_come_newest_received_first_with_their_fields(
    ledger: Ledger, query: OrderQuery
) -> None:
    """No prefix: newest received first; a row carries state, times, attempts and source."""
    _record(ledger, "old", at=T0)
    _record(ledger, "new", at=T0 + 10)
    _record(ledger, "middle", at=T0 + 5)
    page = query.search()
    assert _keys(page) == ["new", "middle", "old"]
    assert page.next_cursor is None
    row = page.rows[0]
    assert (row.state, row.state_since, row.received_at, row.attempts, row.source) == (
        OrderState.PENDING,
        T0 + 10,
        T0 + 10,
        0,
        "test",
    )


def test_search_by_state_and_received_time(ledger: Ledger, query: OrderQuery) -> None:
    """States are any-of; since/until bound the received time, inclusive."""
    _record(ledger, "p1", at=T0)
    _record(ledger, "w1", at=T0 + 1)
    _record(ledger, "s1", at=T0 + 2)
    _record(ledger, "w2", at=T0 + 3)
    for key in ("w1", "w2"):
        deliver(ledger, key, now=T0 + 4)
        retry(ledger, key, due_at=T0 + 100, now=T0 + 4)
    deliver(ledger, "s1", now=T0 + 4)
    submit(ledger, "s1", now=T0 + 4)

    assert _keys(query.search(states=[OrderState.RETRY_WAIT])) == ["w2", "w1"]
    both = query.search(states=[OrderState.RETRY_WAIT, OrderState.SUBMITTED])
    assert _keys(both) == ["w2", "s1", "w1"]
    assert _keys(query.search(since=T0 + 1, until=T0 + 2)) == ["s1", "w1"]
    in_window = query.search(states=[OrderState.RETRY_WAIT], since=T0 + 2)
    assert _keys(in_window) == ["w2"]
    assert in_window.rows[0].next_attempt_at == T0 + 100


@pytest.mark.parametrize("small_state_sets", [True, False])
def test_cursor_pages_cover_every_match_once_even_with_equal_received_times(
    ledger: Ledger, query: OrderQuery, monkeypatch: pytest.MonkeyPatch, small_state_sets: bool
) -> None:
    """Pages of 3 over 11 orders, 5 of them received at the same second, read 2 members per
    round trip: every order once, newest first (ties by key, descending). Whether a state
    filter reads the state indexes whole or walks the received index, the order is the same."""
    monkeypatch.setattr(order_query, "WALK_CHUNK", 2)
    if not small_state_sets:
        monkeypatch.setattr(order_query, "EXAMINE_LIMIT", 4)
    _record(ledger, *(f"tie-{n}" for n in range(5)), at=T0)
    for n in range(6):
        _record(ledger, f"k-{n}", at=T0 + 1 + n)
    expected = [f"k-{n}" for n in reversed(range(6))] + [f"tie-{n}" for n in reversed(range(5))]

    pages = _all_pages(query, states=[OrderState.PENDING], limit=3)

    assert [key for page in pages for key in page] == expected
    unfiltered = _all_pages(query, limit=3)
    assert unfiltered == [expected[i : i + 3] for i in range(0, 11, 3)]


def test_prefix_cursor_continues_after_the_last_key(ledger: Ledger, query: OrderQuery) -> None:
    """A prefix search pages in key order, and its cursor is refused by a time search."""
    _record(ledger, *(f"a/{n}" for n in range(5)), "b/0")
    first = query.search(prefix="a/", limit=2)
    assert _keys(first) == ["a/0", "a/1"] and first.next_cursor is not None
    assert _all_pages(query, prefix="a/", limit=2) == [["a/0", "a/1"], ["a/2", "a/3"], ["a/4"]]
    with pytest.raises(BadCursor):
        query.search(cursor=first.next_cursor)


def test_a_rare_filter_examines_a_bounded_number_of_members_per_call(
    ledger: Ledger, query: OrderQuery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With at most 4 members examined per call and the 5 SUBMITTED orders received before 8
    PENDING ones, the first calls answer no rows and a cursor; later calls find them all."""
    monkeypatch.setattr(order_query, "EXAMINE_LIMIT", 4)
    for n in range(5):
        _record(ledger, f"sub-{n}", at=T0 + n)
        deliver(ledger, f"sub-{n}", now=T0 + 9)
        submit(ledger, f"sub-{n}", now=T0 + 9)
    for n in range(8):
        _record(ledger, f"pend-{n}", at=T0 + 10 + n)

    first = query.search(states=[OrderState.SUBMITTED], limit=10)
    assert (first.rows, first.examined) == ([], 4) and first.next_cursor is not None
    pages = _all_pages(query, states=[OrderState.SUBMITTED], limit=10)
    assert pages == [[], [], ["sub-4", "sub-3", "sub-2", "sub-1"], ["sub-0"]]
    # a prefix narrows the walk to the keys that start with it
    assert _keys(query.search(prefix="sub-0", states=[OrderState.SUBMITTED])) == ["sub-0"]


def test_backlog_orders_retry_wait_by_next_attempt_and_pending_by_time_in_state(
    ledger: Ledger, query: OrderQuery
) -> None:
    """RETRY_WAIT follows the retry schedule (soonest due first), not the time in state;
    PENDING and SUBMITTING are oldest in state first."""
    _record(ledger, "p-new", at=T0 + 5)
    _record(ledger, "p-old", at=T0)
    _record(ledger, "w-late", "w-soon", at=T0)
    deliver(ledger, "w-late", now=T0 + 1)
    retry(ledger, "w-late", due_at=T0 + 500, now=T0 + 1)
    deliver(ledger, "w-soon", now=T0 + 2)
    retry(ledger, "w-soon", due_at=T0 + 50, now=T0 + 2)

    assert _keys(query.backlog(OrderState.RETRY_WAIT)) == ["w-soon", "w-late"]
    assert _keys(query.backlog(OrderState.PENDING)) == ["p-old", "p-new"]
    page = query.backlog(OrderState.RETRY_WAIT, limit=1)
    assert page.next_cursor is not None
    rest = query.backlog(OrderState.RETRY_WAIT, cursor=page.next_cursor)
    assert _keys(rest) == ["w-late"] and rest.next_cursor is None
    with pytest.raises(ValueError, match="no backlog for submitted"):
        query.backlog(OrderState.SUBMITTED)


def test_counts_and_indexed(
    ledger: Ledger, query: OrderQuery, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """`indexed` below the sum of the counts is the console's hint that a reindex is due."""
    _record(ledger, "a", "b", "c")
    redis_client.zrem(keys.order_key_index(), "c")
    assert query.counts()[OrderState.PENDING] == 3
    assert query.indexed() == 2
