"""Plain test data, in one place: raw orders as producers send them, the payload the worker
builds from one, ledger records, and Jetti sale payloads for the sandbox.

Every function here is pure (no Redis, no processes, no clock); service harnesses that hold
connections live in `tests/fixtures/`. Test modules import from here, never from each other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from worker.core.contract import parse_raw_order
from worker.core.jsonio import dumps_canonical
from worker.core.records import NewVersion, OrderEntry, Version
from worker.core.rules import Rules
from worker.core.states import OrderState
from worker.core.transform import transform
from worker.store.ledger import raw_hash

EMAIL = "ada@example.com"
STAMP = "2026-11-27T10:00:00+00:00"


def raw_order(
    order_id: str,
    *,
    updated_at: str = STAMP,
    lines: int = 2,
    quantity: int = 1,
    note: str = "",
    email: str = EMAIL,
) -> dict[str, Any]:
    """A realistic raw order: customer, address, shipping and `lines` lines of known SKUs
    (`{id}-l{n}`, `SKU-{n}`); `quantity` < 1 makes it invalid."""
    return {
        "id": order_id,
        "number": f"#{order_id}",
        "updated_at": updated_at,
        "currency": "EUR",
        "notes": note,
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": email},
        "shipping_address": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "line1": "1 Main St",
            "city": "London",
            "zip": "N1",
            "country": "GB",
        },
        "lines": [
            {
                "id": f"{order_id}-l{n}",
                "sku": f"SKU-{n}",
                "name": f"Item {n}",
                "quantity": quantity,
                "unit_price": "12.10",
            }
            for n in range(1, lines + 1)
        ],
        "shipping": {"code": "std", "name": "Standard", "price": "4.95"},
        "auto_connect_by_sku": True,
    }


def one_line_order(
    order_id: str, *, quantity: int = 1, note: str = "", email: str = EMAIL
) -> dict[str, Any]:
    """`raw_order` with a single line `{id}-l1`: the dead-letter tests count and edit lines."""
    return raw_order(order_id, lines=1, quantity=quantity, note=note, email=email)


def minimal_order(
    order_id: str, *, updated_at: str = "2026-11-27T12:00:00Z", quantity: int = 1
) -> dict[str, Any]:
    """A valid raw order with only the required fields and one line; `quantity` < 1 makes it
    invalid. The producer tests use it: what they check never reaches the transform."""
    return {
        "id": order_id,
        "number": f"#{order_id}",
        "updated_at": updated_at,
        "currency": "EUR",
        "lines": [
            {"id": "l1", "sku": "MUG-1", "name": "Mug", "quantity": quantity, "unit_price": "12.50"}
        ],
    }


def built(order: dict[str, Any], **changes: Any) -> bytes:
    """The payload the current code builds for `order`, with `saleDefaults` changes."""
    payload = transform(parse_raw_order(order), Rules.empty()).payload
    payload["saleDefaults"].update(changes)
    return dumps_canonical(payload)


def new_version(
    order: dict[str, Any],
    *,
    key: str | None = None,
    source: str | None = "test",
    stamped: bool = True,
) -> NewVersion:
    """`order` as a producer hands it to the ledger, under `key` (default: its id); `stamped`
    False leaves `updated_at` out, so the ledger orders it by arrival."""
    updated_at = datetime.fromisoformat(order["updated_at"]) if stamped else None
    return NewVersion(key or order["id"], orjson.dumps(order), updated_at, source)


def order_entry(raw: bytes | None, **changes: Any) -> OrderEntry:
    """A ledger entry for `raw` (order key "o-1", version 0.1, PENDING), as `Ledger.get` returns
    it; `changes` override any field."""
    fields: dict[str, Any] = {
        "order_key": "o-1",
        "raw": raw,
        "raw_hash": raw_hash(raw) if raw is not None else "",
        "version": Version(0, 1),
        "state": OrderState.PENDING,
        "state_since": 1.0,
        "first_seen_at": 1.0,
        "enqueued_at": 1.0,
        "submitted_at": None,
        "source": None,
        "payload_hash": None,
        "sent_version": None,
        "line_ids": (),
        "sale_id": None,
        "attempts": 0,
        "first_failure_at": None,
        "next_attempt_at": None,
        "deliveries_started": 0,
        "deliveries_finished": 0,
        "dead_reason": None,
        "last_error": None,
        "stale_arrivals": 0,
    }
    return OrderEntry(**{**fields, **changes})


def sale_payload(external_id: str = "1001", lines: int = 2, **extra: Any) -> dict[str, Any]:
    """A valid Jetti manual-sale payload (what the worker posts), for driving the sandbox."""
    return {
        "externalId": external_id,
        "saleDefaults": {"reference": f"#{external_id}", "shippingCountry": "IT"},
        "customer": {"firstName": "Ada", "lastName": "L", "email": EMAIL},
        "lineItems": [
            {
                "externalId": f"L{i}",
                "name": f"Mug {i}",
                "quantity": 1 + i,
                "price": 9.5,
                "taxable": True,
                "variant": {"sku": "MUG-RED"},
                "properties": [{"key": "engraving", "value": f"n{i}"}],
            }
            for i in range(lines)
        ],
        "shipping": [{"code": "std", "name": "Standard", "serviceLevel": "ground", "price": 4}],
        "options": {},
        **extra,
    }
