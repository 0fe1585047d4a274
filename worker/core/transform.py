"""Raw order in, Jetti manual-sale payload out. Pure: no IO, no clock, no randomness.

The same RawOrder and Rules always give the same bytes, so `payload_hash` can tell a real change
from a resend. The full field mapping is in docs/contract.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from worker.core.contract import Line, Property, RawOrder
from worker.core.errors import Problem, TransformError
from worker.core.jsonio import dumps_canonical, payload_hash
from worker.core.limits import DEFAULT_MAX_LINE_ITEMS
from worker.core.payload import validate_payload
from worker.core.rules import DEFAULT_MAX_UNITS_PER_LINE, Rules

# Raw address field -> suffix after "billing"/"shipping" in saleDefaults (facts file §2.2).
# company and phone have no documented Sale field, so they are dropped.
_ADDRESS_FIELDS: tuple[tuple[str, str], ...] = (
    ("first_name", "FirstName"),
    ("last_name", "LastName"),
    ("line1", "AddressLineOne"),
    ("line2", "AddressLineTwo"),
    ("city", "City"),
    ("state", "State"),
    ("zip", "Zip"),
    ("country", "Country"),
)


@dataclass(frozen=True)
class Built:
    """A payload ready to send: the dict, its canonical bytes, their sha256 and the line ids."""

    payload: dict[str, Any]
    body: bytes
    payload_hash: str
    line_ids: tuple[str, ...]


def _present(value: object) -> bool:
    return value is not None and value != ""


def _compact(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A dict of the pairs whose value is neither None nor the empty string."""
    return {k: v for k, v in pairs if _present(v)}


def _merge_escape(contract: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """`extra` (an escape hatch) under `contract`: contract fields win on a clash."""
    if not extra:
        return contract
    merged = dict(contract)
    merged.update((k, v) for k, v in extra.items() if k not in contract)
    return merged


def _timestamp(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _properties(props: Iterable[Property]) -> list[tuple[str, str]]:
    return [(p.name, p.value) for p in props]


def _merge_properties(
    line: list[tuple[str, str]], unit: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Line properties then unit-only ones, in order; the unit's value wins on the same name."""
    unit_values = dict(unit)
    merged = [(name, unit_values.pop(name, value)) for name, value in line]
    merged.extend((name, value) for name, value in unit if name in unit_values)
    return merged


def _property_list(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"key": name, "value": value} for name, value in pairs]


def _sale_defaults(order: RawOrder) -> dict[str, Any]:
    pairs: list[tuple[str, Any]] = [("reference", order.number or order.id)]
    for prefix, address in (
        ("billing", order.billing_address),
        ("shipping", order.shipping_address),
    ):
        if address is not None:
            pairs.extend(
                (prefix + suffix, getattr(address, raw)) for raw, suffix in _ADDRESS_FIELDS
            )
    pairs.append(("notes", order.notes))
    pairs.append(("dateOrdered", _timestamp(order.placed_at)))
    return _compact(pairs)


def _line_key(line: Line) -> str:
    """The line's own id, else its SKU, else its variant id."""
    key = line.id or line.sku or line.variant_id
    if key is None:  # the contract requires sku or variant_id; a hand-built Line may not
        raise TransformError([Problem("lines", "a line has neither id, sku nor variant_id")])
    return key


def _routing(line: Line, rules: Rules) -> dict[str, Any]:
    """Per-line routing wins, then the first matching rule; mode auto means no routing fields."""
    routing = line.routing if line.routing is not None else rules.route_for(line.sku)
    if routing is None or routing.mode == "auto":
        return {}
    if routing.mode == "fulfill":
        return {
            "orderRouting": "manual",
            "manualRouting": "fulfill",
            "warehouseId": routing.warehouse_id,
        }
    return {
        "orderRouting": "manual",
        "manualRouting": "dropship",
        "dropshipProviderId": routing.dropship_provider_id,
    }


def _line_items(
    order: RawOrder, rules: Rules, cap: int, problems: list[Problem]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    origin: dict[str, int] = {}
    for index, line in enumerate(order.lines):
        where = f"lines[{index}]"
        base = _compact(
            [
                ("price", line.unit_price),
                ("taxable", line.taxable),
                ("variant", _compact([("externalId", line.variant_id), ("sku", line.sku)])),
            ]
        )
        base.update(_routing(line, rules))
        props = _properties(line.properties)
        split = line.units is not None or rules.splits(line.sku)
        if split and line.quantity > cap:
            # Checked before building anything: a hostile quantity must not cost memory.
            problems.append(
                Problem(
                    f"{where}.quantity",
                    f"{line.quantity} units cannot be split into lines (limit {cap} per line)",
                )
            )
            continue
        emitted: list[tuple[str, int, list[tuple[str, str]]]]
        if split:
            stem = _line_key(line)
            units = line.units
            emitted = [
                (
                    f"{stem}_{n}",
                    1,
                    _merge_properties(props, _properties(units[n - 1].properties))
                    if units is not None
                    else props,
                )
                for n in range(1, line.quantity + 1)
            ]
        else:
            emitted = [(_line_key(line), line.quantity, props)]
        for external_id, quantity, item_props in emitted:
            if external_id in origin:
                problems.append(
                    Problem(
                        f"{where}.id",
                        f"line id {external_id!r} is also emitted by lines[{origin[external_id]}]",
                    )
                )
                continue
            origin[external_id] = index
            item = {"externalId": external_id, "name": line.name, "quantity": quantity, **base}
            if item_props:
                item["properties"] = _property_list(item_props)
            items.append(_merge_escape(item, line.jetti))
    return items


def line_item_count(order: RawOrder, rules: Rules | None, *, units_cap: int | None = None) -> int:
    """How many line items `order` becomes: one per unit for a split line, one for any other.

    Computed from the quantities alone, so an order of any size costs nothing to count. Without
    `rules` (a producer that does not know the worker's rules file) only lines with `units` are
    known to split: the count is then a lower bound, and the worker's check is the final one.
    Split lines above `units_cap` are left out (the per-line cap refuses them on their own).
    """
    count = 0
    for line in order.lines:
        if line.units is not None or (rules is not None and rules.splits(line.sku)):
            if units_cap is None or line.quantity <= units_cap:
                count += line.quantity
        else:
            count += 1
    return count


def line_items_problem(
    order: RawOrder, rules: Rules | None, cap: int, *, units_cap: int | None = None
) -> Problem | None:
    """The problem when `order` would become more than `cap` line items, else None."""
    count = line_item_count(order, rules, units_cap=units_cap)
    if count <= cap:
        return None
    return Problem(
        "lines",
        f"the order would become {count} line items after splitting, more than the limit of "
        f"{cap} (JETTI_RELAY_MAX_LINE_ITEMS)",
    )


def transform(
    order: RawOrder,
    rules: Rules,
    *,
    max_units_per_line: int = DEFAULT_MAX_UNITS_PER_LINE,
    auto_connect_default: bool | None = None,
    external_id: str | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> Built:
    """Build the manual-sale payload for `order`.

    `externalId` is `external_id` when given (the worker passes the order key, which carries a
    producer's id prefix: Jetti upserts by it, so two sources' colliding ids must not meet
    there), else the order's own `id`.

    A line is split into one line per unit when it has `units` or a split rule matches its SKU;
    the stricter of `max_units_per_line` and `rules.max_units_per_line` caps such a split, and
    `max_line_items` caps the whole order; both are checked before anything is built, so a
    hostile order never allocates its expansion (reliability #12).
    `options.findOrCreateChannelVariant` is the order's `auto_connect_by_sku`, else
    `auto_connect_default`, else the rules default, and is omitted when all three are None.
    Raises TransformError with every problem (paths such as `lines[2].quantity`).
    """
    problems: list[Problem] = []
    cap = min(max_units_per_line, rules.max_units_per_line)
    too_many = line_items_problem(order, rules, max_line_items, units_cap=cap)
    if too_many is not None:
        raise TransformError([too_many])
    line_items = _line_items(order, rules, cap, problems)

    order_extra = dict(order.jetti or {})
    extra_options = order_extra.pop("options", None)
    if extra_options is not None and not isinstance(extra_options, Mapping):
        problems.append(Problem("jetti.options", "must be an object"))
        extra_options = None
    if problems:
        raise TransformError(problems)

    auto_connect = order.auto_connect_by_sku
    if auto_connect is None:
        auto_connect = auto_connect_default
    if auto_connect is None:
        auto_connect = rules.auto_connect_by_sku
    options = _merge_escape(_compact([("findOrCreateChannelVariant", auto_connect)]), extra_options)

    payload: dict[str, Any] = {"externalId": order.id if external_id is None else external_id}
    payload["saleDefaults"] = _merge_escape(_sale_defaults(order), order_extra)
    if order.customer is not None:
        customer = _compact(
            [
                ("firstName", order.customer.first_name),
                ("lastName", order.customer.last_name),
                ("email", order.customer.email),
            ]
        )
        if customer:
            payload["customer"] = customer
    payload["lineItems"] = line_items
    shipping = [
        _compact(
            [
                ("code", s.code),
                ("name", s.name),
                ("serviceLevel", s.service_level),
                ("price", s.price),
            ]
        )
        for s in order.shipping
    ]
    if shipping:
        payload["shipping"] = shipping
    if options:
        payload["options"] = options

    validate_payload(payload)
    body = dumps_canonical(payload)
    return Built(
        payload=payload,
        body=body,
        payload_hash=payload_hash(body),
        line_ids=tuple(item["externalId"] for item in line_items),
    )
