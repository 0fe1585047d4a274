"""Pure parts of the reconciler and the sync API client: payload matching, sale comparison,
import-row parsing, the import-log query and cancel requests (httpx MockTransport)."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs

import httpx
import pytest

from worker.core.errors import ConfigurationError, RateLimited, Rejected
from worker.core.jsonio import dumps_canonical, payload_hash
from worker.jetti.client import ImportRow, JettiClient, Sale, build_jetti_client
from worker.pipeline.reconciler import ReconcileStatus, canonical_hash, sale_matches
from worker.settings import Settings

TOKEN = "token-s3cret"


def client(handler: httpx.MockTransport) -> JettiClient:
    settings = Settings(jetti_api_url="https://api.example", api_token=TOKEN, webhook_hash="h")
    return build_jetti_client(settings, httpx.Client(transport=handler))


PAYLOAD = {
    "externalId": "A-1",
    "lineItems": [{"externalId": "l1", "name": "Mug", "quantity": 2, "price": Decimal("12.1")}],
}


def test_a_logged_payload_hashes_like_the_body_we_sent() -> None:
    body = dumps_canonical(PAYLOAD)
    logged = json.loads(body, parse_float=Decimal)  # as the client parses Jetti's answer
    assert canonical_hash(logged) == payload_hash(body)
    changed = json.loads(body.replace(b'"quantity":2', b'"quantity":3'), parse_float=Decimal)
    assert canonical_hash(changed) != payload_hash(body)


def test_sale_matches_differs_only_on_a_missing_line_or_quantity() -> None:
    """reliability #5a: only line ids and quantities decide; a price or name Jetti shows
    differently, or a sale without lines to compare, is not a difference."""

    def sale(quantity: int, price: str) -> Sale:
        return Sale(
            id=1,
            external_id="A-1",
            cancelled_flag=False,
            line_items=(
                {
                    "id": 9,
                    "externalId": "l1",
                    "name": "Mug",
                    "quantity": quantity,
                    "price": Decimal(price),
                },
            ),
        )

    assert sale_matches(sale(2, "12.10"), PAYLOAD)
    assert not sale_matches(sale(1, "12.1"), PAYLOAD)
    assert sale_matches(sale(2, "12.11"), PAYLOAD)
    assert sale_matches(Sale(1, "A-1", False, (), has_lines=False), PAYLOAD)
    assert not sale_matches(Sale(1, "A-1", False, ({"externalId": "l9", "quantity": 2},)), PAYLOAD)


def test_import_rows_parse_and_skip_what_is_not_a_row() -> None:
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
    jetti = client(httpx.MockTransport(lambda r: httpx.Response(status, text=f"no {TOKEN}")))
    with pytest.raises(error) as caught:
        jetti.cancel_sale(5)
    assert TOKEN not in str(caught.value)


def test_cancel_posts_to_the_sales_cancel_route() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 5, "externalId": "A", "cancelled": True})

    sale = client(httpx.MockTransport(handler)).cancel_sale(5)
    assert sale is not None and sale.cancelled
    assert seen[0].method == "POST" and seen[0].url.path == "/api/sales/5/cancel.json"


def test_status_is_behind_after_three_intervals_without_success() -> None:
    status = ReconcileStatus(
        checkpoint=100.0,
        last_run_at=100.0,
        last_ok_at=100.0,
        last_error=None,
        holder="h",
        interval_s=30.0,
        grace_s=60.0,
        counts={},
    )
    assert not status.behind(189.0) and status.behind(191.0)
    assert status.lag_s(130.0) == 30.0
