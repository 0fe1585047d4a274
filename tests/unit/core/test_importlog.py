"""Defensive reading of undocumented Jetti answers (worker.core.importlog): import-log paging
against scripted servers (page caps, ignored offsets, endless pages) and sale comparison on what
a sale answer actually carries (reliability #5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.core.answers import ImportRow, Sale
from worker.core.importlog import SaleVerdict, compare_sale, read_window

ROWS = [
    ImportRow(
        id=n,
        created_at=float(n),
        status="error",
        external_id=f"K{n}",
        sale_id=None,
        problem="p",
        payload=None,
    )
    for n in range(1, 251)
]


class Server:
    """A scripted import log: `cap` rows a page at most, `offset` honoured or not."""

    def __init__(
        self, rows: list[ImportRow], *, cap: int | None = None, honours_offset: bool = True
    ) -> None:
        self.rows, self.cap, self.honours_offset = rows, cap, honours_offset
        self.calls: list[tuple[int, int]] = []

    def __call__(self, offset: int, limit: int) -> list[ImportRow]:
        self.calls.append((offset, limit))
        size = min(limit, self.cap) if self.cap else limit
        start = offset if self.honours_offset else 0
        return self.rows[start : start + size]


def test_a_server_that_honours_limit_and_offset_is_read_to_the_empty_page() -> None:
    server = Server(ROWS)
    read = read_window(server, limit=100)
    assert [r.id for r in read.rows] == list(range(1, 251))
    assert read.incomplete is None and read.surprises == []
    assert server.calls == [(0, 100), (100, 100), (200, 100), (250, 100)]


def test_a_page_cap_below_the_limit_is_followed_by_the_count_returned() -> None:
    """Jetti caps pages at 100 while we ask 1,000: every row is still read (offsets advance by
    the rows returned) and the short-but-not-last page is reported."""
    server = Server(ROWS, cap=100)
    read = read_window(server, limit=1000)
    assert len(read.rows) == 250 and read.incomplete is None
    assert read.surprises == ["page_short"]
    assert [offset for offset, _ in server.calls] == [0, 100, 200, 250]


def test_an_ignored_offset_ends_the_window_incomplete_never_loops() -> None:
    """Every page is page one: the second read brings nothing new, so the read stops there,
    incomplete, with `offset_ignored` reported (the old loop never ended)."""
    server = Server(ROWS, cap=100, honours_offset=False)
    read = read_window(server, limit=100)
    assert [r.id for r in read.rows] == list(range(1, 101))
    assert read.incomplete is not None and "offset_ignored" in read.surprises
    assert len(server.calls) == 2


def test_a_window_longer_than_the_page_cap_stops_incomplete() -> None:
    read = read_window(Server(ROWS), limit=10, max_pages=5)
    assert len(read.rows) == 50 and read.pages == 5
    assert read.incomplete is not None and read.surprises == ["page_cap_hit"]


def test_rows_repeated_by_a_shifted_page_are_read_once() -> None:
    """A row logged meanwhile shifts the offsets: the repeated row is skipped, the read goes on."""
    pages = [ROWS[0:3], ROWS[2:5], []]
    read = read_window(lambda offset, limit: pages.pop(0), limit=3)
    assert [r.id for r in read.rows] == [1, 2, 3, 4, 5] and read.incomplete is None


PAYLOAD: dict[str, Any] = {
    "externalId": "A",
    "lineItems": [
        {"externalId": "l1", "name": "Mug", "quantity": 2, "price": Decimal("12.105")},
        {"externalId": "l2", "name": "Cup", "quantity": 1, "price": Decimal("3")},
    ],
}


def sale(lines: Any) -> Sale:
    item: dict[str, Any] = {"id": 1, "externalId": "A"}
    if lines is not None:
        item["lineItems"] = lines
    parsed = Sale.parse(item)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("lines", "verdict"),
    [
        (
            [
                {"externalId": "l1", "name": "Mug", "quantity": 2, "price": "12.105"},
                {"externalId": "l2", "name": "Cup", "quantity": 1, "price": 3},
            ],
            SaleVerdict.MATCHES,
        ),
        (None, SaleVerdict.CANNOT_COMPARE),
        ([], SaleVerdict.CANNOT_COMPARE),
        ([{"name": "Mug", "quantity": 2}], SaleVerdict.CANNOT_COMPARE),
        ([{"externalId": "l1"}, {"externalId": "l2"}], SaleVerdict.MATCHES),
        (
            [{"externalId": "l1", "quantity": 2}, {"externalId": "l2", "quantity": 1}],
            SaleVerdict.MATCHES,
        ),
        (
            [
                {"externalId": "l1", "name": "Catalogue MUG-1", "quantity": 2, "price": 12.11},
                {"externalId": "l2", "name": "Cup", "quantity": 1, "price": 3},
            ],
            SaleVerdict.FIELDS_DIFFER,
        ),
        (
            [{"externalId": "l1", "quantity": 1}, {"externalId": "l2", "quantity": 1}],
            SaleVerdict.DIFFERS,
        ),
        ([{"externalId": "l1", "quantity": 2}], SaleVerdict.DIFFERS),
    ],
)
def test_a_sale_is_compared_on_line_ids_and_quantities_only(
    lines: Any, verdict: SaleVerdict
) -> None:
    """reliability #5a: only a missing line or a different quantity is a difference; no lines
    to compare is `cannot_compare`; other names or rounded prices are `fields_differ`."""
    assert compare_sale(sale(lines), PAYLOAD) is verdict
