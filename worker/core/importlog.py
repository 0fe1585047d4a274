"""Reading Jetti's undocumented answers defensively: import-log paging and sale comparison.

Pure functions over what the client returns (no Redis, no clock), used by the reconciler. Each
guard names the assumption it protects (docs/reconciler.md, "Assumptions about undocumented Jetti
behaviour"); when an answer contradicts one, the name is reported so the caller counts it
(`worker.store.stats.ASSUMPTIONS`, metric `jetti_relay_jetti_assumption_violations_total`).

Paging (reliability #5b). `limit`, `offset` and `where[createdAt]` on `sale-imports.json` are
undocumented. So: a page shorter than asked is not taken as the last one (Jetti may cap pages
below `limit`); the next offset is the count actually returned; reading stops at an empty page.
A page that brings no row not already read means `offset` is ignored: the window ends there,
incomplete (never an endless loop), and so does a window that needs more than `max_pages`.

Sale comparison (reliability #5a). Whether `sales.json` embeds `lineItems`, and whether lines keep
the name and price we sent, are undocumented. Only line ids and quantities decide a difference;
a sale without lines (or lines without ids) cannot be compared; names and prices that differ
while ids and quantities match are a Jetti presentation, not an out-of-order application.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from worker.core.answers import ImportRow, Sale

# Pages one window read may take before it stops (incomplete): bounds the run's time and memory
# whatever the server does (200 pages: 200,000 rows at 1,000 a page, 20,000 at a cap of 100).
MAX_PAGES_PER_WINDOW = 200

Fetch = Callable[[int, int], list[ImportRow]]


@dataclass
class WindowRead:
    """The rows of one window read, and why it stopped before its end (None: read to its end)."""

    rows: list[ImportRow] = field(default_factory=list)
    pages: int = 0
    incomplete: str | None = None
    surprises: list[str] = field(default_factory=list)


def read_window(fetch: Fetch, *, limit: int, max_pages: int = MAX_PAGES_PER_WINDOW) -> WindowRead:
    """Every row `fetch(offset, limit)` pages out, oldest first, each row once.

    Stops at the first empty page (complete), at a page of rows all read already (incomplete:
    `offset_ignored`), or after `max_pages` pages (incomplete: `page_cap_hit`). A non-empty page
    after a short one means the server caps pages below `limit` (`page_short`, counted once; the
    read goes on). Rows repeated by a page that also brings new ones (rows logged meanwhile
    shifted the offsets) are skipped.
    """
    out = WindowRead()
    seen: set[int] = set()
    offset = 0
    short = False
    while out.pages < max_pages:
        page = fetch(offset, limit)
        out.pages += 1
        if not page:
            return out
        if short and "page_short" not in out.surprises:
            out.surprises.append("page_short")
        fresh = [row for row in page if row.id not in seen]
        if not fresh:
            out.surprises.append("offset_ignored")
            out.incomplete = f"page {out.pages} repeated rows already read (offset ignored?)"
            return out
        out.rows.extend(fresh)
        seen.update(row.id for row in fresh)
        short = len(page) < limit
        offset += len(page)
    out.surprises.append("page_cap_hit")
    out.incomplete = f"stopped after {max_pages} pages"
    return out


class SaleVerdict(StrEnum):
    """How Jetti's sale compares with the payload last sent."""

    MATCHES = "matches"  # every line id on the sale with the quantity sent
    CANNOT_COMPARE = "cannot_compare"  # no lineItems (or no line ids) in the answer
    FIELDS_DIFFER = "fields_differ"  # ids and quantities match; names or prices shown differ
    DIFFERS = "differs"  # a line missing or a quantity different: an older version applied


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def compare_sale(sale: Sale, payload: dict[str, Any]) -> SaleVerdict:
    """Compare a sale with the payload last sent, on what the answer actually carries."""
    if not sale.has_lines:
        return SaleVerdict.CANNOT_COMPARE
    lines = {
        str(item["externalId"]): item
        for item in sale.line_items
        if item.get("externalId") is not None
    }
    if not lines:
        return SaleVerdict.CANNOT_COMPARE
    cosmetic = False
    for line in payload.get("lineItems") or []:
        got = lines.get(str(line.get("externalId")))
        if got is None:
            return SaleVerdict.DIFFERS
        quantity = _number(got.get("quantity"))
        if quantity is not None and quantity != _number(line.get("quantity")):
            return SaleVerdict.DIFFERS
        if "name" in got and got.get("name") != line.get("name"):
            cosmetic = True
        if "price" in got and _number(got.get("price")) != _number(line.get("price")):
            cosmetic = True
    return SaleVerdict.FIELDS_DIFFER if cosmetic else SaleVerdict.MATCHES
