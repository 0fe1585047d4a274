"""The sandbox behaves like Jetti: auth, validation, upsert, history, reads, cancel, throttle."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories import sale_payload
from tests.fixtures.sandbox import Sandbox, bearer, send_async

pytestmark = pytest.mark.integration

VARIANTS = Path(__file__).parents[3] / "ops" / "sandbox" / "variants.example.json"


@pytest.mark.parametrize("headers", [{}, {"jetti-webhook-hash": "wrong"}])
def test_async_rejects_a_missing_or_wrong_hash_without_echoing_it(
    sandbox: Sandbox, headers: dict[str, str]
) -> None:
    """The async endpoint answers 401 to a bad hash, imports nothing, and never echoes secrets."""
    response = sandbox.client.post(sandbox.webhook_url, json=sale_payload(), headers=headers)
    assert response.status_code == 401
    assert sandbox.webhook_hash not in response.text and "wrong" not in response.text
    assert sandbox.stats()["versions_received"] == 0


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Token x"])
def test_sync_rejects_a_missing_or_bad_token(sandbox: Sandbox, auth: str | None) -> None:
    """The sync endpoint answers 401 without a valid Bearer token and imports nothing."""
    headers = {"Authorization": auth} if auth else {}
    response = sandbox.client.post(sandbox.sync_url, json=sale_payload(), headers=headers)
    assert response.status_code == 401
    assert sandbox.api_token not in response.text
    assert sandbox.sales("1001") == []


def test_sync_unknown_channel_is_404(sandbox: Sandbox) -> None:
    """A valid token on another channel's URL is 404."""
    url = sandbox.sync_url.replace(f"/{sandbox.channel_id}/", "/999/")
    assert sandbox.client.post(url, json=sale_payload(), headers=bearer(sandbox)).status_code == 404


def test_sync_success_returns_the_sale_with_jetti_defaults(sandbox: Sandbox) -> None:
    """A valid sync import returns 200 and the sale object with Jetti's default statuses."""
    response = sandbox.client.post(sandbox.sync_url, json=sale_payload(), headers=bearer(sandbox))
    assert response.status_code == 200
    sale = response.json()
    assert isinstance(sale["id"], int) and sale["externalId"] == "1001"
    assert sale["reference"] == "#1001" and sale["channelId"] == sandbox.channel_id
    assert (
        sale["cancelled"],
        sale["cancellationStatus"],
        sale["paymentStatus"],
        sale["finalized"],
    ) == (False, "none", "notPaid", True)


def _mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return apply


DELETE = object()
INVALID = [
    ("externalId", DELETE, "externalId"),
    ("externalId", "", "externalId"),
    ("lineItems", [], "lineItems"),
    ("lineItems", {"a": 1}, "lineItems"),
    ("lineItems[1].externalId", "L0", "lineItems[1].externalId"),
    ("lineItems[0].externalId", DELETE, "lineItems[0].externalId"),
    ("lineItems[0].name", DELETE, "lineItems[0].name"),
    ("lineItems[0].quantity", 0, "lineItems[0].quantity"),
    ("lineItems[0].quantity", 1.5, "lineItems[0].quantity"),
    ("lineItems[0].quantity", "2", "lineItems[0].quantity"),
    ("lineItems[1].price", "9.50", "lineItems[1].price"),
    ("lineItems[0].taxable", "yes", "lineItems[0].taxable"),
    ("lineItems[0].variant", DELETE, "lineItems[0].variant"),
    ("lineItems[0].variant", {"title": "x"}, "lineItems[0].variant"),
    ("lineItems[0].properties", [{"value": "x"}], "lineItems[0].properties[0].key"),
    ("lineItems[0].properties", [{"key": "x"}], "lineItems[0].properties[0].value"),
    ("lineItems[0].orderRouting", "sometimes", "lineItems[0].orderRouting"),
    ("lineItems[0].manualRouting", "fulfill", "lineItems[0].manualRouting"),
    ("shipping", "free", "shipping"),
    ("shipping", [{"price": "4"}], "shipping[0].price"),
    ("options", [], "options"),
]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    INVALID,
    ids=[f"{p}={v!r}"[:40] for p, v, _ in INVALID],
)
def test_sync_validation_error_names_the_field(
    sandbox: Sandbox, path: str, value: Any, named: str
) -> None:
    """Each documented rule: the sync endpoint answers 422 with an error naming the field path."""
    doc = sale_payload()
    _mutate(path, value)(doc)
    response = sandbox.client.post(sandbox.sync_url, json=doc, headers=bearer(sandbox))
    assert response.status_code == 422
    assert named in [error["path"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    INVALID[:8],
    ids=[p for p, _, _ in INVALID[:8]],
)
def test_async_validation_error_goes_to_the_import_log(
    sandbox: Sandbox, path: str, value: Any, named: str
) -> None:
    """The async endpoint answers 200 to an invalid order; the import log holds the problem."""
    doc = sale_payload()
    _mutate(path, value)(doc)
    assert send_async(sandbox, doc).status_code == 200
    rows = sandbox.imports()
    assert [row["status"] for row in rows] == ["error"]
    assert named in rows[0]["problem"]
    assert rows[0]["saleId"] is None


def test_async_unreadable_json_is_logged_as_an_error(sandbox: Sandbox) -> None:
    """A body that is not JSON still gets 200 and an error row naming `$`."""
    assert send_async(sandbox, b"{not json").status_code == 200
    (row,) = sandbox.imports(status="error")
    assert row["problem"].startswith("$: invalid JSON") and row["externalId"] is None


@pytest.mark.parametrize(
    "routing",
    [
        {"orderRouting": "manual", "manualRouting": "fulfill", "warehouseId": 3},
        {"orderRouting": "manual", "manualRouting": "dropship", "dropshipProviderId": 4},
    ],
)
def test_consistent_manual_routing_is_accepted(sandbox: Sandbox, routing: dict[str, Any]) -> None:
    """Manual routing with its matching id passes; with the other mode's id it fails."""
    doc = sale_payload()
    doc["lineItems"][0].update(routing)
    accepted = sandbox.client.post(sandbox.sync_url, json=doc, headers=bearer(sandbox))
    assert accepted.status_code == 200
    wrong = "dropshipProviderId" if routing["manualRouting"] == "fulfill" else "warehouseId"
    doc["lineItems"][0][wrong] = 9
    response = sandbox.client.post(sandbox.sync_url, json=doc, headers=bearer(sandbox))
    assert [e["path"] for e in response.json()["errors"]] == [f"lineItems[0].{wrong}"]


def test_shipping_object_and_name_properties_are_accepted(sandbox: Sandbox) -> None:
    """Shipping as one object and properties as {name, value} are valid (the spec shows both)."""
    doc = sale_payload(shipping={"code": "x", "name": "X", "serviceLevel": "s", "price": 1})
    doc["lineItems"][0]["properties"] = [{"name": "Gift Note", "value": "hi"}]
    response = sandbox.client.post(sandbox.sync_url, json=doc, headers=bearer(sandbox))
    assert response.status_code == 200
    assert response.json()["shipping"] == [doc["shipping"]]
    assert response.json()["lineItems"][0]["properties"] == [{"key": "Gift Note", "value": "hi"}]


def test_upsert_keeps_the_sale_id_and_matches_lines_by_external_id(sandbox: Sandbox) -> None:
    """A second import of one externalId updates the same sale; a kept line keeps its item id."""
    headers = bearer(sandbox)
    first = sandbox.client.post(
        sandbox.sync_url, json=sale_payload(lines=2), headers=headers
    ).json()
    update = sale_payload(lines=3)
    update["lineItems"][0]["quantity"] = 9
    second = sandbox.client.post(sandbox.sync_url, json=update, headers=bearer(sandbox)).json()
    assert second["id"] == first["id"]
    assert second["lineItems"][0]["id"] == first["lineItems"][0]["id"]
    assert second["lineItems"][0]["quantity"] == 9 and len(second["lineItems"]) == 3
    assert sandbox.stats()["sales"] == 1


def test_history_lists_versions_in_arrival_order_and_counts_identical_duplicates(
    sandbox: Sandbox,
) -> None:
    """History keeps every version received in order; a byte-identical resend is a duplicate."""
    v1, v2 = sale_payload(lines=1), sale_payload(lines=2)
    for doc in (v1, v2, v1):
        send_async(sandbox, doc)
    history = sandbox.history("1001")
    assert [json.loads(h["body"]) for h in history] == [v1, v2, v1]
    assert [h["duplicate"] for h in history] == [False, False, True]
    stats = sandbox.stats()
    assert (stats["versions_received"], stats["duplicates"], stats["sales"]) == (3, 1, 1)


def test_public_reads_return_sales_and_import_log(sandbox: Sandbox) -> None:
    """GET /api/sales.json and /api/sale-imports.json filter by where[externalId] (Bearer auth)."""
    send_async(sandbox, sale_payload("A"))
    send_async(sandbox, sale_payload("B"))
    sandbox.wait_applied()
    sales = sandbox.client.get(
        "/api/sales.json", params={"where[externalId]": "B"}, headers=bearer(sandbox)
    )
    assert [s["externalId"] for s in sales.json()] == ["B"]
    assert len(sales.json()[0]["lineItems"]) == 2
    rows = sandbox.client.get(
        "/api/sale-imports.json", params={"where[externalId]": "A"}, headers=bearer(sandbox)
    ).json()
    assert [(r["externalId"], r["status"]) for r in rows] == [("A", "success")]
    assert sandbox.client.get("/api/sales.json").status_code == 401


def test_import_log_filters_by_status_window_and_paginates(sandbox: Sandbox) -> None:
    """Status, a [gte, lt) creation window and offset/limit pagination select import rows."""
    for i in range(5):
        send_async(sandbox, sale_payload(f"ok{i}"))
    send_async(sandbox, {"externalId": "bad", "lineItems": []})
    rows = sandbox.imports()
    assert len(rows) == 6
    assert [r["externalId"] for r in sandbox.imports(status="error")] == ["bad"]
    page = sandbox.imports(offset=1, limit=2)
    assert [r["id"] for r in page] == [rows[1]["id"], rows[2]["id"]]
    window = sandbox.imports(created_from=rows[2]["createdAt"], created_before=rows[5]["createdAt"])
    assert {r["id"] for r in window} >= {rows[2]["id"]}
    assert rows[5]["id"] not in {r["id"] for r in window}
    odd = sandbox.client.get("/_sandbox/imports", params={"where[status]": "odd"})
    assert odd.status_code == 400


def test_cancel_sets_full_cancellation_and_later_imports_are_skipped(sandbox: Sandbox) -> None:
    """POST /api/sales/{id}/cancel.json cancels; a later import of it is logged as skipped."""
    sale = sandbox.client.post(
        sandbox.sync_url, json=sale_payload(), headers=bearer(sandbox)
    ).json()
    cancelled = sandbox.client.post(f"/api/sales/{sale['id']}/cancel.json", headers=bearer(sandbox))
    assert cancelled.status_code == 200
    assert (cancelled.json()["cancelled"], cancelled.json()["cancellationStatus"]) == (True, "full")
    send_async(sandbox, sale_payload())
    assert [r["status"] for r in sandbox.imports(external_id="1001")] == ["success", "skipped"]
    missing = sandbox.client.post("/api/sales/424242/cancel.json", headers=bearer(sandbox))
    assert missing.status_code == 404


def test_cancellations_count_every_cancel_request_that_reached_a_sale(sandbox: Sandbox) -> None:
    """`GET /_sandbox/cancellations` lists cancelled sales with the cancel requests that reached
    them, repeats included (the chaos books count a second one as a harmful duplicate)."""
    sale = sandbox.client.post(
        sandbox.sync_url, json=sale_payload(), headers=bearer(sandbox)
    ).json()
    sandbox.client.post(sandbox.sync_url, json=sale_payload("1002"), headers=bearer(sandbox))
    assert sandbox.client.get("/_sandbox/cancellations").json() == {}
    for _ in range(2):
        sandbox.client.post(f"/api/sales/{sale['id']}/cancel.json", headers=bearer(sandbox))
    assert sandbox.client.get("/_sandbox/cancellations").json() == {
        "1001": {
            "saleId": sale["id"],
            "cancelled": True,
            "cancellationStatus": "full",
            "cancelCalls": 2,
        }
    }


def test_variants_file_rejects_unknown_variants_unless_find_or_create(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """With a variants file an unknown variant is an error; findOrCreateChannelVariant adds it."""
    sb = sandbox_factory(throttle=False, variants=VARIANTS)
    known = sb.client.post(sb.sync_url, json=sale_payload(), headers=bearer(sb))
    assert known.status_code == 200
    doc = sale_payload("2")
    doc["lineItems"][0]["variant"] = {"sku": "NEW-SKU"}
    unknown = sb.client.post(sb.sync_url, json=doc, headers=bearer(sb))
    assert [e["path"] for e in unknown.json()["errors"]] == ["lineItems[0].variant"]
    created = copy.deepcopy(doc)
    created["options"] = {"findOrCreateChannelVariant": True}
    assert sb.client.post(sb.sync_url, json=created, headers=bearer(sb)).status_code == 200
    assert sb.client.post(sb.sync_url, json=doc, headers=bearer(sb)).status_code == 200


def test_sync_throttle_allows_one_write_and_two_reads_per_second(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """With the throttle on (the default), writes beyond 1/s and reads beyond 2/s get 429."""
    sb = sandbox_factory()
    # Several requests in one burst land in at most two one-second windows.
    writes = [
        sb.client.post(sb.sync_url, json=sale_payload(), headers=bearer(sb)).status_code
        for _ in range(5)
    ]
    reads = [sb.client.get("/api/sales.json", headers=bearer(sb)).status_code for _ in range(7)]
    assert 1 <= writes.count(200) <= 2 and writes.count(429) >= 3
    assert 2 <= reads.count(200) <= 4 and reads.count(429) >= 3
    throttled = sb.client.post(sb.sync_url, json=sale_payload(), headers=bearer(sb))
    if throttled.status_code == 429:
        assert "retry-after" not in throttled.headers  # Jetti documents none
    assert sb.stats()["requests"]["sync"]["429"] >= 3
