"""The sync API client's reconciler and cancel calls: import-row parsing, the import-log query,
error classification and cancel requests (httpx MockTransport)."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from worker.core.answers import ImportRow
from worker.core.errors import ConfigurationError, RateLimited, Rejected
from worker.jetti.client import JettiClient
from worker.settings import Settings
from worker.wiring import build_jetti_client

TOKEN = "token-s3cret"


def client(handler: httpx.MockTransport) -> JettiClient:
    settings = Settings(jetti_api_url="https://api.example", api_token=TOKEN, webhook_hash="h")
    return build_jetti_client(settings, httpx.Client(transport=handler))


def test_import_rows_parse_and_skip_what_is_not_a_row() -> None:
    """A row needs an integer id and a parseable time; anything else is skipped (None)."""
    row = ImportRow.parse(
        {
            "id": 7,
            "createdAt": "2026-11-27T08:00:00.250Z",
            "status": "error",
            "externalId": 1234,
            "problem": "p",
            "payload": {"a": 1},
        }
    )
    assert row is not None and row.external_id == "1234" and row.created_at % 1 == 0.25
    assert ImportRow.parse({"id": True, "createdAt": "2026-11-27T08:00:00Z"}) is None
    assert ImportRow.parse({"id": 1, "createdAt": "yesterday"}) is None
    assert ImportRow.parse("nope") is None


def test_list_imports_filters_by_status_and_window_with_the_bearer_token() -> None:
    """The import-log read filters by status and a half-open creation window, pages by offset
    and limit, and sends the Bearer token."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json=[
                {"id": 1, "createdAt": "2026-11-27T08:00:00Z", "status": "error", "externalId": "A"}
            ],
        )

    rows = client(httpx.MockTransport(handler)).list_imports(
        status="error", created_from=0.0, created_before=1.5, offset=1000, limit=1000
    )
    assert [r.id for r in rows] == [1]
    request = seen[0]
    assert request.url.path == "/api/sale-imports.json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    query = parse_qs(request.url.query.decode())
    assert query["where[status]"] == ["error"]
    assert query["where[createdAt][gte]"] == ["1970-01-01T00:00:00.000Z"]
    assert query["where[createdAt][lt]"] == ["1970-01-01T00:00:01.500Z"]
    assert query["offset"] == ["1000"] and query["limit"] == ["1000"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimited),
        (401, ConfigurationError),
        (404, Rejected),
    ],
)
def test_sync_api_errors_are_classified_like_imports(status: int, error: type) -> None:
    """429, 401/403 and another 4xx on a sync call raise the import path's errors, without
    the token in the text."""
    jetti = client(httpx.MockTransport(lambda r: httpx.Response(status, text=f"no {TOKEN}")))
    with pytest.raises(error) as caught:
        jetti.cancel_sale(5)
    assert TOKEN not in str(caught.value)


def test_cancel_posts_to_the_sales_cancel_route() -> None:
    """A cancel is a POST to the sale's cancel route; the answer is parsed as the sale."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 5, "externalId": "A", "cancelled": True})

    sale = client(httpx.MockTransport(handler)).cancel_sale(5)
    assert sale is not None and sale.cancelled
    assert seen[0].method == "POST" and seen[0].url.path == "/api/sales/5/cancel.json"
