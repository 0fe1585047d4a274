"""Jetti's manual-sale payload rules, as the sandbox enforces them (one module, pure).

Every rule the spec states or the facts file marks documented (spec/jetti-api-facts.md §2, §9.3).
Each problem names the field path (`lineItems[2].quantity`) so a failing test points at the field.
Properties may be `{key, value}` or `{name, value}`: the spec shows both.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

ROUTING_MODES = ("automated", "manual", "ignore")
MANUAL_ROUTINGS = ("fulfill", "dropship")


@dataclass(frozen=True)
class Problem:
    """One validation failure: the field path and what is wrong with it."""

    path: str
    message: str

    def text(self) -> str:
        return f"{self.path}: {self.message}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    # The Node sample sends numeric ids; the docs show strings. Both identify an object.
    return (isinstance(value, str) and value.strip() != "") or _is_int(value)


def id_text(value: Any) -> str:
    """The canonical text of an id (`1234` and `"1234"` are the same order)."""
    return str(value)


def validate(doc: Any, *, known_variants: Collection[str] | None) -> list[Problem]:
    """Every problem in a manual-sale payload; an empty list means Jetti would accept it.

    `known_variants` holds the channel's variant externalIds and SKUs; None accepts any variant
    (an open catalogue). A variant not in it is a problem unless
    `options.findOrCreateChannelVariant` is true.
    """
    if not isinstance(doc, dict):
        return [Problem("$", "must be a JSON object")]
    problems: list[Problem] = []
    add = problems.append
    if not _is_id(doc.get("externalId")):
        add(Problem("externalId", "is required (a non-empty string or an integer)"))
    defaults = doc.get("saleDefaults")
    if defaults is not None and not isinstance(defaults, dict):
        add(Problem("saleDefaults", "must be an object"))
    elif isinstance(defaults, dict):
        ref = defaults.get("reference")
        if ref is not None and not isinstance(ref, str | int):
            add(Problem("saleDefaults.reference", "must be a string"))
    customer = doc.get("customer")
    if customer is not None and not isinstance(customer, dict):
        add(Problem("customer", "must be an object"))
    options = doc.get("options")
    find_or_create = False
    if options is not None and not isinstance(options, dict):
        add(Problem("options", "must be an object"))
    elif isinstance(options, dict):
        flag = options.get("findOrCreateChannelVariant")
        if flag is not None and not isinstance(flag, bool):
            add(Problem("options.findOrCreateChannelVariant", "must be a boolean"))
        find_or_create = flag is True
    _check_shipping(doc.get("shipping"), add)
    lines = doc.get("lineItems")
    if not isinstance(lines, list) or not lines:
        add(Problem("lineItems", "must be a non-empty array"))
        return problems
    seen: set[str] = set()
    for index, line in enumerate(lines):
        path = f"lineItems[{index}]"
        if not isinstance(line, dict):
            add(Problem(path, "must be an object"))
            continue
        line_id = line.get("externalId")
        if not _is_id(line_id):
            add(Problem(f"{path}.externalId", "is required (a non-empty string or an integer)"))
        elif id_text(line_id) in seen:
            add(Problem(f"{path}.externalId", f"duplicates another line's externalId {line_id!r}"))
        else:
            seen.add(id_text(line_id))
        _check_line(line, path, add, known_variants=known_variants, find_or_create=find_or_create)
    return problems


def _check_line(
    line: dict[str, Any],
    path: str,
    add: Any,
    *,
    known_variants: Collection[str] | None,
    find_or_create: bool,
) -> None:
    name = line.get("name")
    if not isinstance(name, str) or not name.strip():
        add(Problem(f"{path}.name", "is required (a non-empty string)"))
    quantity = line.get("quantity")
    if not (isinstance(quantity, int) and not isinstance(quantity, bool) and quantity >= 1):
        add(Problem(f"{path}.quantity", f"must be an integer >= 1, got {quantity!r}"))
    if not _is_number(line.get("price")):
        add(Problem(f"{path}.price", f"must be a number, got {line.get('price')!r}"))
    taxable = line.get("taxable")
    if taxable is not None and not isinstance(taxable, bool):
        add(Problem(f"{path}.taxable", "must be a boolean"))
    variant = line.get("variant")
    if not isinstance(variant, dict):
        add(Problem(f"{path}.variant", "is required (an object with externalId or sku)"))
    elif not (_is_id(variant.get("externalId")) or _is_id(variant.get("sku"))):
        add(Problem(f"{path}.variant", "needs an externalId or a sku"))
    elif known_variants is not None and not find_or_create:
        keys = {id_text(variant[k]) for k in ("externalId", "sku") if _is_id(variant.get(k))}
        if not keys & set(known_variants):
            add(
                Problem(
                    f"{path}.variant",
                    "is unknown to the channel (send "
                    "options.findOrCreateChannelVariant: true to connect it by SKU)",
                )
            )
    _check_properties(line.get("properties"), f"{path}.properties", add)
    _check_routing(line, path, add)


def _check_properties(props: Any, path: str, add: Any) -> None:
    if props is None:
        return
    if not isinstance(props, list):
        add(Problem(path, "must be an array of {key, value} objects"))
        return
    for index, prop in enumerate(props):
        item = f"{path}[{index}]"
        if not isinstance(prop, dict):
            add(Problem(item, "must be an object"))
            continue
        label = prop.get("key", prop.get("name"))
        if not isinstance(label, str) or not label:
            add(Problem(f"{item}.key", "is required (a non-empty string; `name` is accepted too)"))
        if "value" not in prop:
            add(Problem(f"{item}.value", "is required"))


def _check_routing(line: dict[str, Any], path: str, add: Any) -> None:
    mode = line.get("orderRouting")
    manual = line.get("manualRouting")
    if mode is not None and mode not in ROUTING_MODES:
        add(Problem(f"{path}.orderRouting", f"must be one of {', '.join(ROUTING_MODES)}"))
        return
    if mode != "manual":
        for field in ("manualRouting", "warehouseId", "dropshipProviderId"):
            if line.get(field) is not None:
                add(Problem(f"{path}.{field}", 'is only allowed with orderRouting "manual"'))
        return
    if manual not in MANUAL_ROUTINGS:
        add(Problem(f"{path}.manualRouting", 'must be "fulfill" or "dropship" with manual routing'))
        return
    needed, other = (
        ("warehouseId", "dropshipProviderId")
        if manual == "fulfill"
        else ("dropshipProviderId", "warehouseId")
    )
    if not _is_int(line.get(needed)):
        add(Problem(f"{path}.{needed}", f'is required (an integer) with manualRouting "{manual}"'))
    if line.get(other) is not None:
        add(Problem(f"{path}.{other}", f'is not allowed with manualRouting "{manual}"'))


def _check_shipping(shipping: Any, add: Any) -> None:
    if shipping is None:
        return
    # The spec: "a single object or an array of objects".
    items = [shipping] if isinstance(shipping, dict) else shipping
    if not isinstance(items, list):
        add(Problem("shipping", "must be an object or an array of objects"))
        return
    for index, item in enumerate(items):
        path = "shipping" if isinstance(shipping, dict) else f"shipping[{index}]"
        if not isinstance(item, dict):
            add(Problem(path, "must be an object"))
            continue
        for field in ("code", "name", "serviceLevel"):
            if item.get(field) is not None and not isinstance(item[field], str):
                add(Problem(f"{path}.{field}", "must be a string"))
        if item.get("price") is not None and not _is_number(item["price"]):
            add(Problem(f"{path}.price", "must be a number"))
