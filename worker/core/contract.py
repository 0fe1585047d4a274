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

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
from pydantic_core import ErrorDetails, PydanticCustomError

from worker.core.errors import InvalidOrder, Problem
from worker.core.jsonio import normalize_exact
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S

# Largest amount accepted: twelve integer digits is far beyond any real order line.
MAX_MONEY_INTEGER_DIGITS = 12
# Finest amount accepted: money below a nano-unit is noise, and a bounded exponent keeps
# a hostile "1e-999999" from becoming a megabyte of zeros when written out.
MAX_MONEY_DECIMAL_PLACES = 9
# Largest quantity of one line. Jetti stores it as an integer (facts §2) and its parsers read
# JSON numbers as doubles: 10^30 arrived as the float 1e+30 and was rejected in Jetti's import
# log after a 200, and 10^400 could not be parsed at all (chaos scenario 9). 2^31 - 1 is a
# database integer and far beyond any real order line.
MAX_QUANTITY = 2**31 - 1
# Longest id we accept; Jetti's externalId is a short string.
MAX_ID_LENGTH = 255
# Longest free-text field we accept (names, notes, property values).
MAX_TEXT_LENGTH = 10_000

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("contract", message)


# --- field types -------------------------------------------------------------------------


def _id_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise _problem("must be a string")
    if isinstance(value, int):
        return str(value)
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise _problem("must not be blank")
    return value


Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT_LENGTH)]
"""A JSON string; numbers, booleans and null are refused."""

Identifier = Annotated[
    str,
    BeforeValidator(_id_text),
    Field(strict=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_non_blank),
]
"""A non-blank string of at most 255 characters; an integer is accepted and becomes its text."""


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _problem("must be a decimal number, not true/false")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        # str() gives the float's shortest repr, so 12.1 stays 12.1 and no binary noise leaks in.
        amount = Decimal(str(value))
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise _problem("must be a decimal number") from None
    else:
        raise _problem("must be a decimal number or a decimal string")
    if not amount.is_finite():
        raise _problem("must be a finite number (NaN and Infinity are refused)")
    if amount < 0:
        raise _problem("must be >= 0")
    if amount != 0 and amount.adjusted() >= MAX_MONEY_INTEGER_DIGITS:
        raise _problem(f"must be below 10^{MAX_MONEY_INTEGER_DIGITS}")
    if -normalize_exact(amount).as_tuple().exponent > MAX_MONEY_DECIMAL_PLACES:  # type: ignore[operator]  # finite checked above, exponent is an int
        raise _problem(f"must have at most {MAX_MONEY_DECIMAL_PLACES} decimal places")
    return amount


Money = Annotated[Decimal, BeforeValidator(_money)]
"""An amount >= 0: a JSON number or a decimal string such as "12.10". Never a float inside."""


def _timestamp_input(value: Any) -> Any:
    if isinstance(value, datetime | str):
        return value
    raise _problem("must be an ISO 8601 timestamp string with a timezone offset")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _problem("must include a timezone offset")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_input), AfterValidator(_aware)]
"""An ISO 8601 timestamp with a timezone offset, e.g. "2024-05-01T12:00:00+02:00" or "...Z"."""


def _currency(value: str) -> str:
    if not _CURRENCY_RE.fullmatch(value):
        raise _problem("must be an ISO 4217 code of three uppercase letters, e.g. EUR")
    return value


def _country(value: str) -> str:
    if not _COUNTRY_RE.fullmatch(value):
        raise _problem("must be an ISO 3166 alpha-2 code of two uppercase letters, e.g. DE")
    return value


CurrencyCode = Annotated[str, Field(strict=True), AfterValidator(_currency)]
CountryCode = Annotated[str, Field(strict=True), AfterValidator(_country)]


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
    value: Annotated[Text, BeforeValidator(_property_value)] = Field(
        description="Property value as text; a number or boolean is turned into its JSON text."
    )


def _properties_input(value: Any) -> Any:
    """Accept `{"name": value, ...}` or `[{"name": ..., "value": ...}, ...]`; yield the list."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"name": name, "value": item} for name, item in value.items()]
    return value


Properties = Annotated[list[Property], BeforeValidator(_properties_input)]
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

_ROUTING_MODES = ("fulfill", "dropship", "auto")


class Line(_Model):
    """One order line. Needs `sku` or `variant_id` (or both)."""

    id: Identifier | None = Field(
        None, description="Upstream line id (string; an integer is accepted and becomes text)."
    )
    # Non-blank, as Jetti checks after a 200 on the async endpoint: a name or SKU of only
    # whitespace ("\r", "\x85") failed in its import log, the order never in Jetti (chaos 9).
    sku: Annotated[Text, Field(min_length=1), AfterValidator(_non_blank)] | None = Field(
        None, description="Variant SKU."
    )
    variant_id: Identifier | None = Field(
        None, description="Variant external id (string; an integer is accepted and becomes text)."
    )
    name: Annotated[Text, Field(min_length=1), AfterValidator(_non_blank)] = Field(
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
            raise _problem("needs sku or variant_id")
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
    shipping: Annotated[list[Shipping], BeforeValidator(_shipping_input)] = Field(
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
        raise InvalidOrder([_to_problem(error) for error in exc.errors()]) from exc
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


def format_path(loc: tuple[int | str, ...]) -> str:
    """`("lines", 2, "quantity")` -> `lines[2].quantity`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _to_problem(error: ErrorDetails) -> Problem:
    loc = list(error["loc"])
    # A discriminated union puts the chosen tag in the path; the user never wrote it.
    loc = [
        part
        for index, part in enumerate(loc)
        if not (part in _ROUTING_MODES and index > 0 and loc[index - 1] == "routing")
    ]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "contract_field":
        loc.append(str(ctx["field"]))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("mode")
    # A strict-mode string reports its length like a list does; say it in string terms.
    if kind in ("too_short", "too_long") and isinstance(error.get("input"), str):
        kind = f"string_{kind}"
    return Problem(format_path(tuple(loc)), _message(kind, ctx, error["msg"]))


def _message(kind: str, ctx: dict[str, Any], default: str) -> str:
    simple = {
        "missing": "is required",
        "extra_forbidden": "unknown field",
        "string_type": "must be a string",
        "int_type": "must be an integer",
        "int_from_float": "must be an integer",
        "int_parsing": "must be an integer",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "datetime_parsing": "must be an ISO 8601 timestamp with a timezone offset",
        "datetime_type": "must be an ISO 8601 timestamp with a timezone offset",
        "datetime_from_date_parsing": "must be an ISO 8601 timestamp with a timezone offset",
        "union_tag_not_found": "is required (one of 'fulfill', 'dropship', 'auto')",
        "union_tag_invalid": "must be one of 'fulfill', 'dropship', 'auto'",
    }
    if kind in simple:
        return simple[kind]
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item(s)"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    return default
