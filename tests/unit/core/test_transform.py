"""The transform: raw order in, Jetti manual-sale payload out, byte for byte."""

from __future__ import annotations

import json
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.core.contract import RawOrder, parse_raw_order
from worker.core.errors import TransformError
from worker.core.jsonio import dumps_canonical, loads_document, payload_hash
from worker.core.payload import validate_payload
from worker.core.rules import Route, Rules, load_rules
from worker.core.transform import line_item_count, transform

DATA = Path(__file__).resolve().parents[2] / "data"
GOLDEN = sorted((DATA / "golden").glob("*.raw.json"))
EXAMPLE_RULES = load_rules(DATA / "rules" / "example.toml")


def order(**fields: Any) -> RawOrder:
    """A valid one-line raw order, with `fields` replacing the defaults."""
    doc: dict[str, Any] = {
        "id": "o-1",
        "lines": [{"id": "l-1", "sku": "SKU", "name": "Thing", "quantity": 1, "unit_price": 1}],
    }
    doc.update(fields)
    return parse_raw_order(doc)


def line(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"sku": "SKU", "name": "Thing", "quantity": 1, "unit_price": 1}
    doc.update(fields)
    return doc


def problems(exc: pytest.ExceptionInfo[TransformError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


# --- golden files ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", GOLDEN, ids=[p.name.removesuffix(".raw.json") for p in GOLDEN])
def test_golden_payload_matches_byte_for_byte(raw: Path) -> None:
    """Each golden raw order, with the example rules, gives exactly the bytes on file."""
    expected = raw.with_name(raw.name.replace(".raw.json", ".expected.json")).read_bytes()
    built = transform(parse_raw_order(loads_document(raw.read_bytes())), EXAMPLE_RULES)
    assert built.body + b"\n" == expected
    assert built.payload_hash == payload_hash(built.body)
    assert dumps_canonical(built.payload) == built.body


def test_golden_files_exist_for_every_rule() -> None:
    """The golden set covers the spec example, splitting, both routings and the escape hatch."""
    names = {p.name.removesuffix(".raw.json") for p in GOLDEN}
    assert {"spec_example", "split_units_engraving", "split_by_rule", "routing_by_rules"} <= names
    assert {"routing_per_line", "escape_hatch"} <= names


# --- mapping -----------------------------------------------------------------------------


def test_reference_falls_back_to_the_order_id() -> None:
    """Without a number, saleDefaults.reference is the order id."""
    assert transform(order(), Rules.empty()).payload["saleDefaults"]["reference"] == "o-1"


def test_external_id_is_the_order_key_when_given() -> None:
    """The worker passes the order key (a producer's prefix included) as externalId; the
    reference stays the order's own number or id."""
    plain = transform(order(), Rules.empty())
    keyed = transform(order(), Rules.empty(), external_id="shop-a:o-1")
    assert plain.payload["externalId"] == "o-1"
    assert keyed.payload["externalId"] == "shop-a:o-1"
    assert keyed.payload["saleDefaults"]["reference"] == "o-1"
    assert keyed.payload_hash != plain.payload_hash


def test_empty_fields_are_omitted() -> None:
    """Empty strings and missing values never reach the payload."""
    built = transform(order(notes="", customer={"first_name": "", "email": ""}), Rules.empty())
    assert "notes" not in built.payload["saleDefaults"]
    assert "customer" not in built.payload
    assert "shipping" not in built.payload
    assert "options" not in built.payload


def test_money_is_sent_as_the_shortest_exact_number() -> None:
    """12.10 goes out as 12.1, never through a float."""
    built = transform(order(lines=[line(unit_price="12.10")]), Rules.empty())
    assert b'"price":12.1,' in built.body


def test_line_external_id_falls_back_to_sku_then_variant_id() -> None:
    """An unsplit line's id is its id, else its SKU, else its variant id."""
    built = transform(order(lines=[line(sku="A"), line(sku=None, variant_id="V")]), Rules.empty())
    assert built.line_ids == ("A", "V")


@pytest.mark.parametrize(
    ("order_flag", "default", "rule", "expected"),
    [
        (False, True, True, False),
        (None, True, False, True),
        (None, None, False, False),
        (None, None, None, None),
    ],
)
def test_auto_connect_precedence(
    order_flag: bool | None, default: bool | None, rule: bool | None, expected: bool | None
) -> None:
    """The order's flag beats the configured default, which beats the rules file."""
    built = transform(
        order(auto_connect_by_sku=order_flag),
        Rules(auto_connect_by_sku=rule),
        auto_connect_default=default,
    )
    assert built.payload.get("options", {}).get("findOrCreateChannelVariant") == expected


def test_first_matching_route_wins() -> None:
    """Routes are tried in file order."""
    rules = Rules(routes=(Route("A*", "dropship", dropship_provider_id=1), Route("*", "auto")))
    item = transform(order(lines=[line(sku="AB")]), rules).payload["lineItems"][0]
    assert item["dropshipProviderId"] == 1


def test_escape_hatch_cannot_override_contract_fields() -> None:
    """A clash between `jetti` and a contract field keeps the contract's value."""
    built = transform(
        order(
            number="N", jetti={"reference": "X", "currencyId": 2}, lines=[line(jetti={"name": "X"})]
        ),
        Rules.empty(),
    )
    assert built.payload["saleDefaults"] == {"reference": "N", "currencyId": 2}
    assert built.payload["lineItems"][0]["name"] == "Thing"


# --- bad input ---------------------------------------------------------------------------


def test_split_over_the_cap_is_refused_before_building() -> None:
    """A split beyond max_units_per_line is a TransformError naming the line's quantity."""
    rules = Rules(split_skus=("SKU",))
    with pytest.raises(TransformError) as exc:
        transform(order(lines=[line(quantity=10**9)]), rules, max_units_per_line=1000)
    assert problems(exc) == [
        "lines[0].quantity: 1000000000 units cannot be split into lines (limit 1000 per line)"
    ]


def test_rules_cap_also_applies() -> None:
    """The stricter of the argument and the rules file's cap wins."""
    rules = Rules(split_skus=("SKU",), max_units_per_line=2)
    with pytest.raises(TransformError):
        transform(order(lines=[line(quantity=3)]), rules)


def test_colliding_emitted_line_ids_are_refused() -> None:
    """A split id that equals another line's id is an error, not a silent overwrite."""
    lines = [line(id="A_1"), line(id="A", quantity=2, units=[{}, {}])]
    with pytest.raises(TransformError) as exc:
        transform(order(lines=lines), Rules.empty())
    assert problems(exc) == ["lines[1].id: line id 'A_1' is also emitted by lines[0]"]


def test_duplicate_line_ids_are_refused() -> None:
    """Two lines with the same id cannot both go to Jetti."""
    with pytest.raises(TransformError) as exc:
        transform(order(lines=[line(id="x"), line(id="x")]), Rules.empty())
    assert problems(exc) == ["lines[1].id: line id 'x' is also emitted by lines[0]"]


def test_escape_hatch_options_must_be_an_object() -> None:
    """`jetti.options` is merged into options, so it must be an object."""
    with pytest.raises(TransformError) as exc:
        transform(order(jetti={"options": 3}), Rules.empty())
    assert problems(exc) == ["jetti.options: must be an object"]


def _valid_payload() -> dict[str, Any]:
    return {
        "externalId": "1",
        "lineItems": [{"externalId": "a", "quantity": 1, "price": 1, "variant": {"sku": "S"}}],
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.pop("externalId"), "externalId: Field required"),
        (lambda p: p.update(lineItems=[]), "lineItems: List should have at least 1 item"),
        (
            lambda p: p["lineItems"].append(dict(p["lineItems"][0])),
            "lineItems[1].externalId: duplicates lineItems[0].externalId 'a'",
        ),
        (
            lambda p: p["lineItems"][0].update(variant={}),
            "lineItems[0].variant: needs an externalId or a sku",
        ),
        (
            lambda p: p["lineItems"][0].update(quantity=0),
            "lineItems[0].quantity: Input should be greater than or equal to 1",
        ),
        (
            lambda p: p["lineItems"][0].update(orderRouting="manual", manualRouting="fulfill"),
            "lineItems[0].warehouseId: required with manualRouting fulfill",
        ),
        (
            lambda p: p["lineItems"][0].update(
                orderRouting="manual", manualRouting="dropship", dropshipProviderId="7"
            ),
            "lineItems[0].dropshipProviderId: Input should be a valid integer",
        ),
        (
            lambda p: p["lineItems"][0].update(warehouseId=3),
            'lineItems[0].orderRouting: must be "manual" when routing fields are set',
        ),
    ],
)
def test_payload_model_mirrors_jetti_rules(change: Any, expected: str) -> None:
    """Each documented Jetti rule is enforced on the payload, with a path."""
    payload = _valid_payload()
    validate_payload(payload)
    change(payload)
    with pytest.raises(TransformError) as exc:
        validate_payload(payload)
    assert any(p.startswith(expected) for p in problems(exc)), problems(exc)


# --- properties --------------------------------------------------------------------------

_money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
_line = st.fixed_dictionaries(
    {
        "sku": st.sampled_from(["A", "B", "ENGRAVE-1", "ENGRAVE-2", "DS-1", "WH-1"]),
        "name": st.just("n"),
        "quantity": st.integers(min_value=1, max_value=20),
        "unit_price": _money.map(str),
        "properties": st.dictionaries(st.sampled_from(["x", "y"]), st.text(max_size=3)),
    }
)


@st.composite
def raw_orders(draw: st.DrawFn) -> RawOrder:
    lines = draw(st.lists(_line, min_size=1, max_size=6))
    for index, ln in enumerate(lines):
        ln["id"] = f"line{index}"
        if draw(st.booleans()):
            ln["units"] = [
                {
                    "properties": draw(
                        st.dictionaries(st.sampled_from(["x", "z"]), st.text(max_size=3))
                    )
                }
                for _ in range(ln["quantity"])
            ]
    return parse_raw_order({"id": "o", "lines": lines})


@given(raw_orders())
@settings(max_examples=60, deadline=None)
def test_transform_is_deterministic(raw: RawOrder) -> None:
    """The same order always yields the same bytes and hash."""
    first, second = transform(raw, EXAMPLE_RULES), transform(raw, EXAMPLE_RULES)
    assert first.body == second.body
    assert first.payload_hash == second.payload_hash


@given(raw_orders())
@settings(max_examples=60, deadline=None)
def test_split_lines_sum_to_the_original_quantity(raw: RawOrder) -> None:
    """Splitting never changes how many units are ordered."""
    items = transform(raw, EXAMPLE_RULES).payload["lineItems"]
    assert sum(i["quantity"] for i in items) == sum(ln.quantity for ln in raw.lines)


@given(raw_orders())
@settings(max_examples=60, deadline=None)
def test_emitted_line_ids_are_unique(raw: RawOrder) -> None:
    """Every line externalId in the payload is distinct."""
    built = transform(raw, EXAMPLE_RULES)
    assert len(set(built.line_ids)) == len(built.line_ids)


@given(raw_orders())
@settings(max_examples=60, deadline=None)
def test_totals_are_preserved_to_the_cent(raw: RawOrder) -> None:
    """sum(price * quantity) of the payload, read back from its bytes, equals the raw total."""
    items = json.loads(transform(raw, EXAMPLE_RULES).body, parse_float=Decimal)["lineItems"]
    sent = sum(Decimal(i["price"]) * i["quantity"] for i in items)
    assert sent == sum(ln.unit_price * ln.quantity for ln in raw.lines)


def test_escape_hatch_cannot_smuggle_an_invalid_payload() -> None:
    """Fields merged from `jetti` are still checked against Jetti's rules."""
    with pytest.raises(TransformError) as exc:
        transform(order(lines=[line(jetti={"orderRouting": "manual"})]), Rules.empty())
    assert problems(exc) == [
        'lineItems[0].manualRouting: must be "fulfill" or "dropship" with orderRouting manual'
    ]


# --- amplification cap (reliability #12) -------------------------------------------------------


def engraved(count: int, quantity: int) -> list[dict[str, Any]]:
    """`count` lines of `quantity` units whose SKU the example rules split."""
    return [line(id=f"l{n}", sku="ENGRAVE-1", quantity=quantity) for n in range(count)]


def test_an_order_over_the_line_item_cap_is_refused_with_the_count_and_the_limit() -> None:
    """20 lines of 1,000 split units would be 20,000 line items: a transform error naming both
    numbers and the setting, not a 20,000-item payload."""
    with pytest.raises(TransformError) as exc:
        transform(order(lines=engraved(20, 1000)), EXAMPLE_RULES)
    assert problems(exc) == [
        "lines: the order would become 20000 line items after splitting, more than the limit "
        "of 10000 (JETTI_RELAY_MAX_LINE_ITEMS)"
    ]


def test_the_cap_counts_split_units_plus_unsplit_lines() -> None:
    """A split line counts its units, any other line one; exactly at the cap goes through.
    Without the rules only lines with `units` are known to split (a lower bound)."""
    mixed = order(lines=[line(id="a", sku="ENGRAVE-1", quantity=3), line(id="b", quantity=50)])
    assert line_item_count(mixed, EXAMPLE_RULES) == 4
    assert len(transform(mixed, EXAMPLE_RULES, max_line_items=4).line_ids) == 4
    with pytest.raises(TransformError):
        transform(mixed, EXAMPLE_RULES, max_line_items=3)
    assert line_item_count(mixed, None) == 2
    units = order(lines=[line(id="u", quantity=2, units=[{}, {}])])
    assert line_item_count(units, None) == 2


def test_a_one_mebibyte_order_of_split_lines_is_refused_without_allocating_it() -> None:
    """About 1 MiB of raw order whose every line splits into 1,000 units (over 10 M line items
    uncapped) is refused while the transform allocates almost nothing."""
    lines = engraved(13_000, 1000)
    assert len(json.dumps({"id": "huge", "lines": lines})) > 900_000
    huge = order(lines=lines)
    tracemalloc.start()
    try:
        with pytest.raises(TransformError) as exc:
            transform(huge, EXAMPLE_RULES)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "13000000 line items" in problems(exc)[0]
    assert peak_bytes < 1_000_000
