"""The sync-API client's sale and import-log lookups over httpx.MockTransport: the channel filter
and row check (reliability #4a), the cancellation signals (#4c) and sales without lines (#5a)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from worker.jetti.client import JettiClient, Sale
from worker.settings import Settings
from worker.wiring import build_jetti_client

CHANNEL = 7


def client(
    rows: list[dict[str, Any]], seen: list[httpx.Request], channel_id: int | None = CHANNEL
) -> JettiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=rows)

    settings = Settings(
        jetti_api_url="https://api.example", api_token="t", webhook_hash="h", channel_id=channel_id
    )
    return build_jetti_client(settings, httpx.Client(transport=httpx.MockTransport(handler)))


def sale_row(sale_id: int, channel: int | None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": sale_id, "externalId": "A-1", **extra}
    if channel is not None:
        row["channelId"] = channel
    return row


def test_the_sale_lookup_filters_by_channel_and_skips_other_channels_rows() -> None:
    """The query carries where[channelId]; a row of another channel (the filter ignored) is
    skipped and counted, and our channel's row is the answer."""
    seen: list[httpx.Request] = []
    lookup = client([sale_row(1, 99), sale_row(2, CHANNEL)], seen).find_sale("A-1")
    assert lookup.sale is not None and lookup.sale.id == 2 and lookup.others == 1
    query = parse_qs(seen[0].url.query.decode())
    assert query == {"where[externalId]": ["A-1"], "where[channelId]": [str(CHANNEL)]}


def test_a_row_without_a_channel_id_is_not_taken_as_ours() -> None:
    """With a channel configured, a row that does not name it cannot be proven ours."""
    seen: list[httpx.Request] = []
    lookup = client([sale_row(1, None)], seen).find_sale("A-1")
    assert lookup.sale is None and (lookup.others, lookup.unverified) == (0, 1)


def test_without_a_channel_id_any_matching_row_is_taken() -> None:
    """No CHANNEL_ID (async mode): no filter to send or check (the reconciler's lookups)."""
    seen: list[httpx.Request] = []
    lookup = client([sale_row(1, 99)], seen, channel_id=None).find_sale("A-1")
    assert lookup.sale is not None and lookup.sale.id == 1
    assert "where[channelId]" not in parse_qs(seen[0].url.query.decode())


@pytest.mark.parametrize(
    ("fields", "cancelled"),
    [
        ({"cancelled": False, "cancellationStatus": "none"}, False),
        ({"cancelled": False, "cancellationStatus": "partial"}, True),
        ({"cancelled": False, "cancellationStatus": "full"}, True),
        ({"cancellationStatus": "full"}, True),
        ({"cancelled": True}, True),
        ({"cancelled": "yes", "cancellationStatus": 3}, False),
        ({}, False),
    ],
)
def test_a_sale_is_cancelled_by_its_flag_or_its_cancellation_status(
    fields: dict[str, Any], cancelled: bool
) -> None:
    """reliability #4c: cancellationStatus partial/full (the documented signal) or the
    `cancelled` flag mean a cancel already took effect."""
    sale = Sale.parse({"id": 1, **fields})
    assert sale is not None and sale.cancelled is cancelled


@pytest.mark.parametrize(
    ("lines", "has_lines"),
    [(None, False), ("x", False), ([], True), ([{"externalId": "l1"}], True)],
)
def test_a_sale_without_a_line_items_array_has_no_lines_to_compare(
    lines: Any, has_lines: bool
) -> None:
    """An answer without `lineItems` (undocumented whether Jetti embeds them) is told apart from
    a sale with no lines."""
    item: dict[str, Any] = {"id": 1}
    if lines is not None:
        item["lineItems"] = lines
    sale = Sale.parse(item)
    assert sale is not None and sale.has_lines is has_lines


def test_imports_of_one_order_filter_by_external_id_and_channel() -> None:
    """The cancel path's evidence read: rows of that externalId in our channel only."""
    seen: list[httpx.Request] = []
    rows = [
        {"id": 1, "createdAt": "2026-11-27T08:00:00Z", "status": "error", "externalId": "A-1"},
        {"id": 2, "createdAt": "2026-11-27T08:00:00Z", "status": "error", "externalId": "B"},
    ]
    found = client(rows, seen).imports_of("A-1")
    assert [r.id for r in found] == [1]
    query = parse_qs(seen[0].url.query.decode())
    assert query["where[externalId]"] == ["A-1"] and query["where[channelId]"] == [str(CHANNEL)]
    assert seen[0].url.path == "/api/sale-imports.json"
