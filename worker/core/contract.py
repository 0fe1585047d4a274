"""The raw-order contract: what upstream systems send, as documented pydantic models.

`parse_raw_order` is the one entry point. It turns every pydantic complaint into a `Problem`
with a field path such as `lines[2].quantity`, and raises them all at once as `InvalidOrder`;
no pydantic `ValidationError` leaves this module.

Type policy:
- Every model forbids unknown fields, so a typo (`quantitiy`) is reported with its path instead
  of being dropped silently.
- Strings must be JSON strings; the only coercion is that the order `id` and a line `id` also
  accept an integer (a common upstream habit) and turn it into its decimal text.
- Money is `Decimal`, never float. `worker.core.jsonio.loads_document` already yields Decimals; a
  Python caller handing in a float gets `Decimal(str(value))` (the float's shortest repr), so
  `12.1` stays 12.1 and never becomes 12.0999...
- Timestamps are ISO 8601 strings (or aware `datetime`s) and must carry a timezone offset.
- An `updated_at` far in the future would make every later copy of the order stale, so the edge
  refuses one further ahead than a clock skew; the clock is an argument (`now_s`), never read here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from worker.core.errors import InvalidOrder, Problem
from worker.core.fields import (
    MAX_QUANTITY,
    CountryCode,
    CurrencyCode,
    Identifier,
    Money,
    Text,
    Timestamp,
    non_blank,
    problem,
)
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S
from worker.core.problems import to_problem


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- parts -------------------------------------------------------------------------------


class Customer(_Model):
    """The buyer. Maps to the payload's top-level `customer`."""

    first_name: Text | None = Field(None, description="Given name.")
    last_name: Text | None = Field(None, description="Family name.")
    email: Text | None = Field(None, description="Email address (not checked beyond being text).")
    phone: Text | None = Field(None, description="Phone number, free text.")


class Address(_Model):
    """A postal address (billing or shipping)."""

    first_name: Text | None = Field(None, description="Given name of the addressee.")
    last_name: Text | None = Field(None, description="Family name of the addressee.")
    company: Text | None = Field(None, description="Company name.")
    line1: Text | None = Field(None, description="Street and number.")
    line2: Text | None = Field(None, description="Second address line.")
    city: Text | None = Field(None, description="City.")
    state: Text | None = Field(None, description="State, province or region.")
    zip: Text | None = Field(None, description="Postal code.")
    country: CountryCode | None = Field(
        None, description="ISO 3166-1 alpha-2 country code, two uppercase letters (DE, US)."
    )
    phone: Text | None = Field(None, description="Phone number, free text.")


def _property_value(value: Any) -> Any:
    """Property values are text; numbers and booleans are written as their JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


class Property(_Model):
    """One customisation, e.g. `{"name": "engraving", "value": "For Ana"}`. Order is kept."""

    name: Annotated[Text, Field(min_length=1)] = Field(description="Property name, non-empty.")
    value: Annotated[
        Text, BeforeValidator(_property_value, json_schema_input_type=str | int | float | bool)
    ] = Field(
        description="Property value as text; a number or boolean is turned into its JSON text."
    )


def _properties_input(value: Any) -> Any:
    """Accept `{"name": value, ...}` or `[{"name": ..., "value": ...}, ...]`; yield the list."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"name": name, "value": item} for name, item in value.items()]
    return value


# The JSON Schema says what is accepted (a mapping too), not only the normalised shape.
Properties = Annotated[
    list[Property],
    BeforeValidator(
        _properties_input,
        json_schema_input_type=list[Property] | dict[str, str | int | float | bool] | None,
    ),
]
"""A mapping name -> value or a list of `{name, value}`; normalised to a list, in input order."""


class Unit(_Model):
    """Customisation of one unit of a line (the line is split into quantity-1 lines)."""

    properties: Properties = Field(
        default_factory=list,
        description="This unit's properties, merged over the line's own when the line is split.",
    )


class FulfillRouting(_Model):
    """Fulfil in-house from one warehouse."""

    mode: Literal["fulfill"] = Field(description='Always "fulfill".')
    warehouse_id: StrictInt = Field(gt=0, description="Jetti warehouse id, an integer > 0.")


class DropshipRouting(_Model):
    """Send the line to one dropship provider."""

    mode: Literal["dropship"] = Field(description='Always "dropship".')
    dropship_provider_id: StrictInt = Field(
        gt=0, description="Jetti dropship provider id, an integer > 0."
    )


class AutoRouting(_Model):
    """Let Jetti route the line itself (overrides any rule from the rules file)."""

    mode: Literal["auto"] = Field(description='Always "auto".')


Routing = Annotated[FulfillRouting | DropshipRouting | AutoRouting, Field(discriminator="mode")]
"""Per-line routing, chosen by `mode`; it wins over the rules file."""


class Line(_Model):
    """One order line. Needs `sku` or `variant_id` (or both)."""

    # The published schema states "sku or variant_id" too (the model validator enforces it).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"anyOf": [{"required": ["sku"]}, {"required": ["variant_id"]}]},
    )

    id: Identifier | None = Field(
        None, description="Upstream line id (string; an integer is accepted and becomes text)."
    )
    # Non-blank, as Jetti checks after a 200 on the async endpoint: a name or SKU of only
    # whitespace ("\r", "\x85") failed in its import log, the order never in Jetti (chaos 9).
    sku: Annotated[Text, Field(min_length=1), AfterValidator(non_blank)] | None = Field(
        None, description="Variant SKU."
    )
    variant_id: Identifier | None = Field(
        None, description="Variant external id (string; an integer is accepted and becomes text)."
    )
    name: Annotated[Text, Field(min_length=1), AfterValidator(non_blank)] = Field(
        description="Product name, required."
    )
    quantity: StrictInt = Field(
        ge=1, le=MAX_QUANTITY, description="Units ordered, an integer from 1 to 2^31 - 1."
    )
    unit_price: Money = Field(
        description='Price of one unit, >= 0: a JSON number or decimal string ("12.10").'
    )
    taxable: StrictBool = Field(True, description="Whether the line is taxable; default true.")
    properties: Properties = Field(
        default_factory=list,
        description="Customisations: a mapping name -> value or a list of {name, value}.",
    )
    units: list[Unit] | None = Field(
        None,
        description="Per-unit customisations; exactly `quantity` entries. Forces a split.",
    )
    routing: Routing | None = Field(
        None, description='{"mode": "fulfill"|"dropship"|"auto", ...}; wins over rules.'
    )
    jetti: dict[str, Any] | None = Field(
        None,
        description="Escape hatch: SaleItem fields merged verbatim into the line item; "
        "contract fields win on a clash.",
    )

    @model_validator(mode="after")
    def _check_line(self) -> Line:
        if self.sku is None and self.variant_id is None:
            raise problem("needs sku or variant_id")
        if self.units is not None and len(self.units) != self.quantity:
            raise PydanticCustomError(
                "contract_field",
                "has {count} entries but quantity is {quantity}; they must be equal",
                {"field": "units", "count": len(self.units), "quantity": self.quantity},
            )
        return self


class Shipping(_Model):
    """One shipping charge / method."""

    code: Text | None = Field(None, description="Carrier or method code.")
    name: Text | None = Field(None, description="Display name of the method.")
    service_level: Text | None = Field(None, description="Service level, e.g. express.")
    price: Money | None = Field(None, description="Shipping price, >= 0, exact decimal.")


def _shipping_input(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return value


class RawOrder(_Model):
    """An order as upstream systems send it. Maps onto one Jetti manual sale."""

    id: Identifier = Field(
        description="Order id, required; becomes `externalId`, the order key everywhere. "
        "String of 1-255 characters; an integer is accepted and becomes text."
    )
    number: Text | None = Field(
        None, description="Human order number; becomes saleDefaults.reference (falls back to id)."
    )
    source: Text | None = Field(None, description="Name of the upstream system.")
    updated_at: Timestamp | None = Field(
        None, description="Version of this order (ISO 8601 with offset); orders later updates."
    )
    placed_at: Timestamp | None = Field(
        None, description="When the order was placed (ISO 8601 with offset); dateOrdered."
    )
    currency: CurrencyCode | None = Field(
        None, description="ISO 4217 code, three uppercase letters (EUR)."
    )
    notes: Text | None = Field(None, description="Free-text order notes.")
    customer: Customer | None = Field(None, description="The buyer.")
    billing_address: Address | None = Field(None, description="Billing address.")
    shipping_address: Address | None = Field(None, description="Shipping address.")
    lines: list[Line] = Field(min_length=1, description="Order lines, at least one.")
    shipping: Annotated[
        list[Shipping],
        BeforeValidator(_shipping_input, json_schema_input_type=list[Shipping] | Shipping | None),
    ] = Field(
        default_factory=list,
        description="Shipping: one object or a list of them; always normalised to a list.",
    )
    auto_connect_by_sku: StrictBool | None = Field(
        None,
        description="Overrides the configured default for options.findOrCreateChannelVariant.",
    )
    cancelled_at: Timestamp | None = Field(
        None, description="Set when the order was cancelled upstream (ISO 8601 with offset)."
    )
    cancel_reason: Text | None = Field(None, description="Why it was cancelled, free text.")
    jetti: dict[str, Any] | None = Field(
        None,
        description="Escape hatch: Sale fields merged verbatim into saleDefaults/options; "
        "contract fields win on a clash.",
    )


# --- parsing -----------------------------------------------------------------------------


def parse_raw_order(
    doc: Any, *, now_s: float | None = None, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> RawOrder:
    """Validate a decoded JSON document as a raw order.

    Raises `InvalidOrder` carrying every problem, each with its path (`lines[2].quantity`).
    With `now_s` (epoch s, the caller's clock: producers pass it, the worker re-reading what the
    ledger holds does not), an `updated_at` more than `max_future_skew_s` ahead of it is a
    problem too (see `future_skew_problem`).
    """
    if not isinstance(doc, dict):
        raise InvalidOrder([Problem("$", "must be a JSON object")])
    try:
        order = RawOrder.model_validate(doc)
    except ValidationError as exc:
        raise InvalidOrder([to_problem(error) for error in exc.errors()]) from exc
    if now_s is not None:
        problem = future_skew_problem(order.updated_at, now_s=now_s, max_skew_s=max_future_skew_s)
        if problem is not None:
            raise InvalidOrder([problem])
    return order


def future_skew_problem(
    updated_at: datetime | None, *, now_s: float, max_skew_s: float
) -> Problem | None:
    """The problem with an `updated_at` more than `max_skew_s` seconds after `now_s`, or None.

    Versions are ordered by `updated_at`: one in 2099 would make every real update stale until
    then, cancellations included, so it is refused at the edge with the value and the limit.
    """
    if updated_at is None:
        return None
    ahead_s = updated_at.timestamp() - now_s
    if ahead_s <= max_skew_s:
        return None
    return Problem(
        "updated_at",
        f"{updated_at.isoformat()} is {ahead_s:.0f} s ahead of the clock, more than the "
        f"{max_skew_s:g} s allowed (JETTI_RELAY_MAX_FUTURE_SKEW_S)",
    )


def raw_order_schema() -> dict[str, Any]:
    """The raw-order contract as a JSON Schema (draft 2020-12) document: what `jetti-relay
    schema` prints, docs/raw-order.schema.json holds and the HTTP intake's OpenAPI references,
    so upstream teams validate before they send."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **RawOrder.model_json_schema(),
    }
