"""Specification of the raw-order contract: what passes, and the path and message of what fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from worker.core.contract import (
    AutoRouting,
    DropshipRouting,
    FulfillRouting,
    Property,
    RawOrder,
    parse_raw_order,
)
from worker.core.errors import InvalidOrder, Problem
from worker.core.jsonio import loads_document

Doc = dict[str, Any]


@pytest.fixture
def order() -> Callable[..., Doc]:
    """A factory of valid raw orders; keyword arguments replace top-level fields."""

    def make(**fields: Any) -> Doc:
        doc: Doc = {
            "id": "A-1",
            "lines": [{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "12.10"}],
        }
        doc.update(fields)
        return doc

    return make


def line(**fields: Any) -> Doc:
    doc: Doc = {"sku": "MUG", "name": "Mug", "quantity": 1, "unit_price": "1.00"}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


def problems(doc: Any) -> list[Problem]:
    with pytest.raises(InvalidOrder) as caught:
        parse_raw_order(doc)
    return caught.value.problems


def only_problem(doc: Any) -> str:
    [problem] = problems(doc)
    return str(problem)


# --- what passes ----------------------------------------------------------------------------


def test_minimal_order_parses(order: Callable[..., Doc]) -> None:
    """An id and one line with sku, name, quantity and unit price is a whole order."""
    parsed = parse_raw_order(order())
    assert parsed.id == "A-1"
    assert parsed.lines[0].unit_price == Decimal("12.10")
    assert parsed.lines[0].taxable is True
    assert parsed.shipping == []


def test_full_order_from_json_parses() -> None:
    """Every documented field is accepted from a JSON document."""
    doc = loads_document(
        json.dumps(
            {
                "id": "A-2",
                "number": "#1002",
                "source": "shop",
                "updated_at": "2024-05-01T12:00:00+02:00",
                "placed_at": "2024-05-01T10:00:00Z",
                "currency": "EUR",
                "notes": "gift",
                "customer": {"first_name": "Ana", "last_name": "B", "email": "a@b.c", "phone": "1"},
                "billing_address": {"line1": "Str 1", "city": "Berlin", "country": "DE"},
                "shipping_address": {"company": "ACME", "zip": "10115", "country": "DE"},
                "lines": [
                    {
                        "id": "L1",
                        "variant_id": "V1",
                        "name": "Mug",
                        "quantity": 1,
                        "unit_price": 3.5,
                        "taxable": False,
                        "jetti": {"discount": 1},
                    }
                ],
                "auto_connect_by_sku": True,
                "cancelled_at": "2024-05-02T00:00:00Z",
                "cancel_reason": "customer",
                "jetti": {"paymentStatus": "paid"},
            }
        )
    )
    parsed = parse_raw_order(doc)
    assert parsed.updated_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parsed.lines[0].unit_price == Decimal("3.5")
    assert parsed.jetti == {"paymentStatus": "paid"}


def test_integer_ids_become_text(order: Callable[..., Doc]) -> None:
    """Order and line ids may arrive as integers; they are kept as their decimal text."""
    parsed = parse_raw_order(order(id=1001, lines=[line(id=7)]))
    assert (parsed.id, parsed.lines[0].id) == ("1001", "7")


def test_python_float_money_goes_through_its_repr(order: Callable[..., Doc]) -> None:
    """A float from a Python caller becomes Decimal(str(f)): 12.1 stays 12.1, no binary noise."""
    assert parse_raw_order(order(lines=[line(unit_price=12.1)])).lines[0].unit_price == Decimal(
        "12.1"
    )


def test_properties_mapping_form_becomes_ordered_list(order: Callable[..., Doc]) -> None:
    """A mapping name -> value is normalised to a list in input order; values become text."""
    parsed = parse_raw_order(order(lines=[line(properties={"b": "x", "a": 2, "c": True})]))
    assert parsed.lines[0].properties == [
        Property(name="b", value="x"),
        Property(name="a", value="2"),
        Property(name="c", value="true"),
    ]


def test_properties_list_form_is_kept_in_order(order: Callable[..., Doc]) -> None:
    """A list of {name, value} is kept as is, duplicates and order included."""
    props = [{"name": "z", "value": "1"}, {"name": "a", "value": "2"}, {"name": "z", "value": "3"}]
    parsed = parse_raw_order(order(lines=[line(properties=props)]))
    assert [(p.name, p.value) for p in parsed.lines[0].properties] == [
        ("z", "1"),
        ("a", "2"),
        ("z", "3"),
    ]


def test_shipping_object_becomes_a_list(order: Callable[..., Doc]) -> None:
    """A single shipping object is normalised to a one-element list."""
    parsed = parse_raw_order(order(shipping={"code": "DHL", "price": "4.90"}))
    assert len(parsed.shipping) == 1
    assert parsed.shipping[0].price == Decimal("4.90")


def test_shipping_list_is_kept(order: Callable[..., Doc]) -> None:
    """A list of shipping objects is kept in order."""
    parsed = parse_raw_order(order(shipping=[{"code": "A"}, {"code": "B", "service_level": "x"}]))
    assert [s.code for s in parsed.shipping] == ["A", "B"]


def test_units_matching_quantity_pass(order: Callable[..., Doc]) -> None:
    """units with exactly quantity entries pass, each with its own properties."""
    units = [{"properties": {"n": "1"}}, {"properties": [{"name": "n", "value": "2"}]}]
    parsed = parse_raw_order(order(lines=[line(quantity=2, units=units)]))
    assert parsed.lines[0].units is not None
    assert [u.properties[0].value for u in parsed.lines[0].units] == ["1", "2"]


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ({"mode": "fulfill", "warehouse_id": 3}, FulfillRouting(mode="fulfill", warehouse_id=3)),
        (
            {"mode": "dropship", "dropship_provider_id": 9},
            DropshipRouting(mode="dropship", dropship_provider_id=9),
        ),
        ({"mode": "auto"}, AutoRouting(mode="auto")),
    ],
)
def test_routing_modes_parse(order: Callable[..., Doc], routing: Doc, expected: object) -> None:
    """Each routing mode parses to its own model, chosen by `mode`."""
    assert parse_raw_order(order(lines=[line(routing=routing)])).lines[0].routing == expected


def test_schema_is_exportable() -> None:
    """The model exports a JSON Schema with descriptions (for `jetti-relay schema`)."""
    schema = RawOrder.model_json_schema()
    assert "description" in schema["properties"]["id"]
    json.dumps(schema)


# --- what fails, with its path and message --------------------------------------------------


@pytest.mark.parametrize("doc", [[], "order", 3, None])
def test_non_object_document_is_refused(doc: Any) -> None:
    """Anything but a JSON object is refused at the root."""
    assert problems(doc) == [Problem("$", "must be a JSON object")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"id": ""}, "id: must not be empty"),
        ({"id": "   "}, "id: must not be blank"),
        ({"id": "x" * 256}, "id: must be at most 255 characters"),
        ({"id": True}, "id: must be a string"),
        ({"id": None}, "id: must be a string"),
        ({"number": 12}, "number: must be a string"),
        (
            {"currency": "eur"},
            "currency: must be an ISO 4217 code of three uppercase letters, e.g. EUR",
        ),
        ({"lines": []}, "lines: must have at least 1 item(s)"),
        ({"lines": {}}, "lines: must be a list"),
        ({"customer": "Ana"}, "customer: must be an object"),
        ({"customer": {"mail": "a@b.c"}}, "customer.mail: unknown field"),
        ({"idd": "x"}, "idd: unknown field"),
        ({"auto_connect_by_sku": "yes"}, "auto_connect_by_sku: must be true or false"),
        (
            {"billing_address": {"country": "DEU"}},
            "billing_address.country: must be an ISO 3166 alpha-2 code of two uppercase letters,"
            " e.g. DE",
        ),
        ({"jetti": []}, "jetti: must be an object"),
    ],
)
def test_order_field_rules(order: Callable[..., Doc], fields: Doc, expected: str) -> None:
    """Each order-level rule reports its path and a human message."""
    assert only_problem(order(**fields)) == expected


def test_missing_id_is_required() -> None:
    """A missing id is reported as required."""
    assert only_problem({"lines": [line()]}) == "id: is required"


@pytest.mark.parametrize("field", ["updated_at", "placed_at", "cancelled_at"])
def test_naive_timestamps_are_refused(order: Callable[..., Doc], field: str) -> None:
    """A timestamp without an offset is ambiguous and refused."""
    assert only_problem(order(**{field: "2024-05-01T12:00:00"})) == (
        f"{field}: must include a timezone offset"
    )


def test_naive_datetime_from_python_is_refused(order: Callable[..., Doc]) -> None:
    """A naive datetime object is refused like a naive string."""
    assert only_problem(order(updated_at=datetime(2024, 1, 1))) == (
        "updated_at: must include a timezone offset"
    )


def test_aware_timestamp_keeps_its_offset(order: Callable[..., Doc]) -> None:
    """An offset timestamp is kept with its offset."""
    parsed = parse_raw_order(order(placed_at="2024-05-01T12:00:00+02:00"))
    assert parsed.placed_at is not None
    assert parsed.placed_at.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, "must be an ISO 8601 timestamp string with a timezone offset"),
        ("yesterday", "must be an ISO 8601 timestamp with a timezone offset"),
    ],
)
def test_non_timestamps_are_refused(order: Callable[..., Doc], value: Any, expected: str) -> None:
    """Numbers and free text are not timestamps."""
    assert only_problem(order(updated_at=value)) == f"updated_at: {expected}"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"sku": ..., "variant_id": None}, "lines[1]: needs sku or variant_id"),
        ({"name": ...}, "lines[1].name: is required"),
        ({"name": ""}, "lines[1].name: must not be empty"),
        # Regression (chaos scenario 9): Jetti refuses blank names and SKUs after a 200.
        ({"name": "\r"}, "lines[1].name: must not be blank"),
        ({"name": "\x85 "}, "lines[1].name: must not be blank"),
        ({"sku": " \t"}, "lines[1].sku: must not be blank"),
        ({"quantity": 0}, "lines[1].quantity: must be >= 1"),
        ({"quantity": -3}, "lines[1].quantity: must be >= 1"),
        # Regression (chaos scenario 9): Jetti reads 10^30 as a float and rejects it after a 200.
        ({"quantity": 10**30}, "lines[1].quantity: must be <= 2147483647"),
        ({"quantity": 2**31}, "lines[1].quantity: must be <= 2147483647"),
        ({"quantity": True}, "lines[1].quantity: must be an integer"),
        ({"quantity": 1.5}, "lines[1].quantity: must be an integer"),
        ({"quantity": Decimal("2.0")}, "lines[1].quantity: must be an integer"),
        ({"quantity": "3"}, "lines[1].quantity: must be an integer"),
        ({"quantity": ...}, "lines[1].quantity: is required"),
        ({"unit_price": "-0.01"}, "lines[1].unit_price: must be >= 0"),
        ({"unit_price": Decimal("-1")}, "lines[1].unit_price: must be >= 0"),
        ({"unit_price": "abc"}, "lines[1].unit_price: must be a decimal number"),
        (
            {"unit_price": "NaN"},
            "lines[1].unit_price: must be a finite number (NaN and Infinity are refused)",
        ),
        (
            {"unit_price": "Infinity"},
            "lines[1].unit_price: must be a finite number (NaN and Infinity are refused)",
        ),
        ({"unit_price": True}, "lines[1].unit_price: must be a decimal number, not true/false"),
        (
            {"unit_price": [1]},
            "lines[1].unit_price: must be a decimal number or a decimal string",
        ),
        ({"unit_price": "1e20"}, "lines[1].unit_price: must be below 10^12"),
        ({"unit_price": "0.0000000001"}, "lines[1].unit_price: must have at most 9 decimal places"),
        ({"taxable": "no"}, "lines[1].taxable: must be true or false"),
        ({"qty": 1}, "lines[1].qty: unknown field"),
        ({"properties": {"a": None}}, "lines[1].properties[0].value: must be a string"),
        ({"properties": [{"name": "a"}]}, "lines[1].properties[0].value: is required"),
        (
            {"properties": [{"name": "", "value": "1"}]},
            "lines[1].properties[0].name: must not be empty",
        ),
        ({"properties": "a=b"}, "lines[1].properties: must be a list"),
        (
            {"quantity": 3, "units": [{}, {}]},
            "lines[1].units: has 2 entries but quantity is 3; they must be equal",
        ),
        ({"units": [{"props": {}}]}, "lines[1].units[0].props: unknown field"),
        (
            {"routing": {"mode": "ship"}},
            "lines[1].routing.mode: must be one of 'fulfill', 'dropship', 'auto'",
        ),
        (
            {"routing": {"warehouse_id": 1}},
            "lines[1].routing.mode: is required (one of 'fulfill', 'dropship', 'auto')",
        ),
        ({"routing": {"mode": "fulfill"}}, "lines[1].routing.warehouse_id: is required"),
        (
            {"routing": {"mode": "fulfill", "warehouse_id": 0}},
            "lines[1].routing.warehouse_id: must be > 0",
        ),
        (
            {"routing": {"mode": "fulfill", "warehouse_id": "3"}},
            "lines[1].routing.warehouse_id: must be an integer",
        ),
        (
            {"routing": {"mode": "dropship", "dropship_provider_id": -1}},
            "lines[1].routing.dropship_provider_id: must be > 0",
        ),
        (
            {"routing": {"mode": "auto", "warehouse_id": 1}},
            "lines[1].routing.warehouse_id: unknown field",
        ),
    ],
)
def test_line_rules(order: Callable[..., Doc], fields: Doc, expected: str) -> None:
    """Each line rule reports its path (with the line index) and a human message."""
    assert only_problem(order(lines=[line(), line(**fields)])) == expected


def test_variant_id_alone_is_enough(order: Callable[..., Doc]) -> None:
    """A line with variant_id and no sku is valid; the integer id becomes text."""
    (parsed,) = parse_raw_order(order(lines=[line(sku=..., variant_id=42)])).lines
    assert parsed.sku is None and parsed.variant_id == "42"


def test_shipping_price_rules(order: Callable[..., Doc]) -> None:
    """Shipping prices follow the money rules, with the shipping index in the path."""
    assert only_problem(order(shipping=[{"price": "1"}, {"price": "-1"}])) == (
        "shipping[1].price: must be >= 0"
    )


def test_every_problem_is_reported_at_once(order: Callable[..., Doc]) -> None:
    """All problems come back together, each with its own path."""
    doc = order(
        id="",
        currency="eu",
        lines=[line(quantity=0), line(unit_price="x", extra=1)],
        shipping={"price": "NaN"},
    )
    assert [p.path for p in problems(doc)] == [
        "id",
        "currency",
        "lines[0].quantity",
        "lines[1].unit_price",
        "lines[1].extra",
        "shipping[0].price",
    ]


def test_invalid_order_is_chained_not_leaked(order: Callable[..., Doc]) -> None:
    """The pydantic error is kept as the cause only; the raised type is InvalidOrder."""
    with pytest.raises(InvalidOrder) as caught:
        parse_raw_order(order(id=""))
    assert "pydantic" not in str(caught.value)
    assert caught.value.__cause__ is not None
