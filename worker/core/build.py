"""Raw order bytes to the payload Jetti is sent: the one parse plus transform.

The processor (what to send), the canceller (is the latest version a cancellation?) and the
reconciler (the payload the worker would send today) all start from the bytes the ledger
stored; this module is the one place those bytes are parsed and transformed, with the same
options everywhere (`BuildOptions`, mapped from Settings by `worker.runtime`).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.core.contract import RawOrder, parse_raw_order
from worker.core.errors import InvalidOrder
from worker.core.jsonio import loads_document
from worker.core.limits import DEFAULT_MAX_LINE_ITEMS
from worker.core.records import OrderEntry
from worker.core.rules import DEFAULT_MAX_UNITS_PER_LINE, Rules
from worker.core.transform import Built, transform

__all__ = ["BuildOptions", "Built", "build_payload", "cancellation", "parse_order"]

# A cheap test before parsing anything. Only the key's name: producers store the original
# bytes, so the spacing around the colon (`"cancelled_at" : ...`) is theirs; the parse decides.
_CANCEL_MARKER = b"cancelled_at"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """The transform's knobs, as Settings gives them (see `worker.core.transform.transform`)."""

    max_units_per_line: int = DEFAULT_MAX_UNITS_PER_LINE
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS
    auto_connect_default: bool | None = None


def parse_order(raw: bytes) -> RawOrder:
    """The raw order stored as `raw`. Raises InvalidOrder (every problem, with its path)."""
    return parse_raw_order(loads_document(raw))


def build_payload(
    raw: bytes, order_key: str, rules: Rules, options: BuildOptions | None = None
) -> Built:
    """The payload for the order stored under `order_key` as `raw`.

    The payload's `externalId` is the order key (it carries the producer's id prefix). Raises
    InvalidOrder when `raw` breaks the contract, TransformError when no valid payload can be
    built from it.
    """
    opts = options or BuildOptions()
    return transform(
        parse_order(raw),
        rules,
        max_units_per_line=opts.max_units_per_line,
        max_line_items=opts.max_line_items,
        auto_connect_default=opts.auto_connect_default,
        external_id=order_key,
    )


def cancellation(entry: OrderEntry) -> RawOrder | None:
    """The parsed order when its latest version is cancelled upstream, else None.

    An order that does not parse is not a cancellation: the import path dead-letters it.
    """
    raw = entry.raw
    if raw is None or _CANCEL_MARKER not in raw:
        return None
    try:
        order = parse_order(raw)
    except InvalidOrder:
        return None
    return order if order.cancelled_at is not None else None
