"""The sandbox's in-memory Jetti: sales upserted by (channel, externalId), the import log, history.

Every read the tests and the benchmark make is O(1) or O(result): counters are kept as imports
are applied, history and import rows are indexed by externalId, and import rows are appended in
creation order so a time window is a bisection, never a scan of 100k sales.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ops.sandbox.validation import Problem, id_text, validate

STATUSES = ("success", "error", "skipped")


def iso(ts: float) -> str:
    """Epoch seconds as the ISO-8601 UTC text Jetti's API uses."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ImportRow:
    """One row of the import log (Jetti's `sale-imports` resource)."""

    id: int
    created_ts: float
    channel_id: int
    external_id: str | None
    status: str
    problem: str | None
    sale_id: int | None
    endpoint: str
    body: bytes | None = None  # the import's body as received (Jetti's `payload` field)

    def public(self) -> dict[str, Any]:
        payload: Any = None
        if self.body is not None:
            try:
                payload = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                payload = self.body.decode("utf-8", "replace")
        return {
            "id": self.id,
            "channelId": self.channel_id,
            "externalId": self.external_id,
            "saleId": self.sale_id,
            "status": self.status,
            "problem": self.problem,
            "createdAt": iso(self.created_ts),
            "endpoint": self.endpoint,
            "read": False,
            "emailSent": False,
            "payload": payload,
        }


@dataclass
class Receipt:
    """One version of an order as received (history keeps them in arrival order)."""

    seq: int
    received_ts: float
    endpoint: str
    payload_hash: str
    duplicate: bool
    status: str
    body: bytes

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "receivedAt": iso(self.received_ts),
            "endpoint": self.endpoint,
            "payloadHash": self.payload_hash,
            "duplicate": self.duplicate,
            "status": self.status,
            "body": self.body.decode("utf-8", "replace"),
        }


@dataclass
class Store:
    """All state of one channel. Not thread-safe: the event loop is its only user."""

    channel_id: int
    known_variants: set[str] | None
    auto_finalize: bool = True
    sales: dict[str, dict[str, Any]] = field(default_factory=dict)
    sales_by_id: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[Receipt]] = field(default_factory=dict)
    hashes: dict[str, set[str]] = field(default_factory=dict)
    rows: list[ImportRow] = field(default_factory=list)
    row_ts: list[float] = field(default_factory=list)
    rows_by_external_id: dict[str, list[ImportRow]] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    line_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    # Sales of other channels of the same account, by externalId (the lookup is account-wide).
    foreign: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # True once a row's createdAt was moved before its arrival (imports_backdate_s): the
    # arrival index then bounds a window's start only.
    backdated: bool = False
    _next_sale_id: int = 1001
    _next_item_id: int = 50001
    _seq: int = 0

    def receive(
        self, doc: Any, body: bytes, *, endpoint: str, now: float, reject: str | None = None
    ) -> tuple[ImportRow, dict[str, Any] | None, list[Problem]]:
        """Validate and upsert one payload; always logs one import row and, with an id, a receipt.

        `reject` (an injected fault) logs the import as an error with that problem text.
        Returns the row, the sale (None on error) and the problems found.
        """
        variants: Collection[str] | None = self.known_variants
        problems = validate(doc, known_variants=variants)
        if reject is not None and not problems:
            path, _, message = reject.partition(": ")
            problems = [Problem(path, message) if message else Problem("$", reject)]
        raw_id = doc.get("externalId") if isinstance(doc, dict) else None
        external_id = id_text(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else None
        sale: dict[str, Any] | None = None
        problem_text: str | None = None
        if problems:
            status = "error"
            problem_text = "; ".join(p.text() for p in problems)
        else:
            assert external_id is not None  # validate() required it
            existing = self.sales.get(external_id)
            if existing is not None and existing["cancellationStatus"] != "none":
                # A cancelled sale is not re-opened by an update: Jetti logs the import as skipped.
                status, problem_text, sale = "skipped", "sale is cancelled", existing
            else:
                status, sale = "success", self._upsert(external_id, doc, now=now)
        if external_id is not None:
            self._remember(external_id, body, endpoint=endpoint, status=status, now=now)
        row = self._log(
            external_id, status, problem_text, sale, endpoint=endpoint, now=now, body=body
        )
        return row, (sale if status != "error" else None), problems

    def log_unreadable(self, reason: str, *, endpoint: str, now: float) -> ImportRow:
        """An import row for a body that is not JSON at all (no externalId to file it under)."""
        return self._log(None, "error", reason, None, endpoint=endpoint, now=now)

    def _remember(
        self, external_id: str, body: bytes, *, endpoint: str, status: str, now: float
    ) -> None:
        digest = hashlib.sha256(body).hexdigest()
        seen = self.hashes.setdefault(external_id, set())
        duplicate = digest in seen
        seen.add(digest)
        self._seq += 1
        self.history.setdefault(external_id, []).append(
            Receipt(self._seq, now, endpoint, digest, duplicate, status, body)
        )
        self.counters["versions_received"] += 1
        if duplicate:
            self.counters["duplicates"] += 1

    def _log(
        self,
        external_id: str | None,
        status: str,
        problem: str | None,
        sale: dict[str, Any] | None,
        *,
        endpoint: str,
        now: float,
        body: bytes | None = None,
    ) -> ImportRow:
        row = ImportRow(
            len(self.rows) + 1,
            now,
            self.channel_id,
            external_id,
            status,
            problem,
            sale["id"] if sale else None,
            endpoint,
            body,
        )
        self.rows.append(row)
        # Arrival order is creation order; max() keeps the list sorted if the clock steps back.
        self.row_ts.append(max(now, self.row_ts[-1]) if self.row_ts else now)
        if external_id is not None:
            self.rows_by_external_id.setdefault(external_id, []).append(row)
        self.counters[f"imports_{status}"] += 1
        return row

    def _upsert(self, external_id: str, doc: dict[str, Any], *, now: float) -> dict[str, Any]:
        sale = self.sales.get(external_id)
        if sale is None:
            sale = {
                "id": self._next_sale_id,
                "channelId": self.channel_id,
                "externalId": external_id,
                "cancelled": False,
                "cancellationStatus": "none",
                "paymentStatus": "notPaid",
                "inventoryStatus": "notFulfilled",
                "invoiceStatus": "notInvoiced",
                "returnStatus": "notReturned",
                "finalized": self.auto_finalize,
                "locked": False,
                "createdAt": iso(now),
                "dateOrdered": iso(now),
                "importCount": 0,
            }
            self._next_sale_id += 1
            self.sales[external_id] = sale
            self.sales_by_id[sale["id"]] = sale
        defaults = doc.get("saleDefaults") or {}
        sale.update({k: v for k, v in defaults.items() if k not in ("id", "externalId")})
        sale["reference"] = defaults.get("reference", sale.get("reference"))
        sale["customer"] = doc.get("customer", sale.get("customer"))
        shipping = doc.get("shipping")
        sale["shipping"] = [shipping] if isinstance(shipping, dict) else (shipping or [])
        sale["lineItems"] = [self._line(sale["id"], line) for line in doc["lineItems"]]
        sale["quantity"] = sum(int(line["quantity"]) for line in doc["lineItems"])
        sale["updatedAt"] = iso(now)
        sale["importCount"] += 1
        if (
            self.known_variants is not None
            and (doc.get("options") or {}).get("findOrCreateChannelVariant") is True
        ):
            for line in doc["lineItems"]:
                variant = line["variant"]
                self.known_variants.update(
                    id_text(variant[k]) for k in ("externalId", "sku") if variant.get(k) is not None
                )
        return sale

    def _line(self, sale_id: int, line: dict[str, Any]) -> dict[str, Any]:
        # Lines match by externalId: an update keeps the sale item's id.
        key = (sale_id, id_text(line["externalId"]))
        item_id = self.line_ids.get(key)
        if item_id is None:
            item_id = self.line_ids[key] = self._next_item_id
            self._next_item_id += 1
        props = [
            {"key": p.get("key", p.get("name")), "value": p.get("value")}
            for p in line.get("properties") or []
        ]
        return {
            **line,
            "id": item_id,
            "externalId": id_text(line["externalId"]),
            "properties": props,
        }

    def cancel(self, sale_id: int, *, now: float, set_flag: bool = True) -> dict[str, Any] | None:
        """Cancel every item of a sale (`cancellationStatus` full); None for an unknown sale.

        Every POST counts in `cancel_posts` (Jetti creates sale-return objects on each call,
        facts §5); `cancellations` counts sales that became cancelled. `set_flag=False` leaves
        the `cancelled` flag alone (whether Jetti sets it is undocumented).
        """
        sale = self.sales_by_id.get(sale_id)
        if sale is None:
            return None
        self.counters["cancel_posts"] += 1
        sale["cancelPosts"] = sale.get("cancelPosts", 0) + 1
        if sale["cancellationStatus"] != "full":
            sale.update(cancellationStatus="full", cancelledAt=iso(now), updatedAt=iso(now))
            if set_flag:
                sale["cancelled"] = True
            self.counters["cancellations"] += 1
        return sale

    def add_foreign_sale(self, external_id: str, channel_id: int, *, now: float) -> dict[str, Any]:
        """A sale of another channel with this externalId (a test fixture)."""
        sale: dict[str, Any] = {
            "id": self._next_sale_id,
            "channelId": channel_id,
            "externalId": external_id,
            "cancelled": False,
            "cancellationStatus": "none",
            "createdAt": iso(now),
            "lineItems": [],
        }
        self._next_sale_id += 1
        self.foreign.setdefault(external_id, []).append(sale)
        self.sales_by_id[int(sale["id"])] = sale
        return sale

    def cancellations(self) -> dict[str, dict[str, Any]]:
        """Every sale that is cancelled or received a cancel request, by externalId: its id,
        `cancelled`, `cancellationStatus` and `cancelCalls` (requests that reached it)."""
        out: dict[str, dict[str, Any]] = {}
        for external_id, sale in self.sales.items():
            calls = int(sale.get("cancelPosts", 0))
            if calls or sale["cancelled"] or sale["cancellationStatus"] != "none":
                out[external_id] = {
                    "saleId": sale["id"],
                    "cancelled": sale["cancelled"],
                    "cancellationStatus": sale["cancellationStatus"],
                    "cancelCalls": calls,
                }
        return out

    def find_imports(
        self,
        *,
        external_id: str | None = None,
        status: str | None = None,
        created_from: float | None = None,
        created_before: float | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[ImportRow]:
        """Import rows oldest first, filtered; the window is [created_from, created_before)."""
        if external_id is not None:
            rows = self.rows_by_external_id.get(external_id, [])
            lo, hi = 0, len(rows)
            if created_from is not None:
                lo = bisect.bisect_left([r.created_ts for r in rows], created_from)
            candidates = rows[lo:hi]
        else:
            lo = 0 if created_from is None else bisect.bisect_left(self.row_ts, created_from)
            hi = (
                len(self.rows)
                if created_before is None or self.backdated
                else (bisect.bisect_left(self.row_ts, created_before))
            )
            candidates = self.rows[lo:hi]
        out: list[ImportRow] = []
        skipped = 0
        for row in candidates:
            if status is not None and row.status != status:
                continue
            if created_before is not None and row.created_ts >= created_before:
                continue
            if created_from is not None and row.created_ts < created_from:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(row)
            if len(out) >= limit:
                break
        return out

    def summary(self) -> dict[str, Any]:
        """Counters for `GET /_sandbox/stats` (no scan)."""
        return {
            "sales": len(self.sales),
            "versions_received": self.counters["versions_received"],
            "duplicates": self.counters["duplicates"],
            "cancellations": self.counters["cancellations"],
            "cancel_posts": self.counters["cancel_posts"],
            "imports": {s: self.counters[f"imports_{s}"] for s in STATUSES},
        }
