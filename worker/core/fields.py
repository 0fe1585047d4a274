"""The raw order's field types: text, identifiers, money, timestamps and codes, with their bounds.

Each type is an `Annotated` pydantic type whose validators raise a `contract` error with the
message the user reads (`worker.core.problems` turns it into a `Problem` with the field path).
Split from `worker.core.contract` so the models there read as the contract itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from worker.core.jsonio import normalize_exact

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


def problem(message: str) -> PydanticCustomError:
    """A contract error with `message`, reported with the field's path."""
    return PydanticCustomError("contract", message)


# --- field types -------------------------------------------------------------------------


def _id_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise problem("must be a string")
    if isinstance(value, int):
        return str(value)
    return value


def non_blank(value: str) -> str:
    """`value`, refused when it is only whitespace."""
    if not value.strip():
        raise problem("must not be blank")
    return value


Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT_LENGTH)]
"""A JSON string; numbers, booleans and null are refused."""

Identifier = Annotated[
    str,
    BeforeValidator(_id_text),
    Field(strict=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(non_blank),
]
"""A non-blank string of at most 255 characters; an integer is accepted and becomes its text."""


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise problem("must be a decimal number, not true/false")
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
            raise problem("must be a decimal number") from None
    else:
        raise problem("must be a decimal number or a decimal string")
    if not amount.is_finite():
        raise problem("must be a finite number (NaN and Infinity are refused)")
    if amount < 0:
        raise problem("must be >= 0")
    if amount != 0 and amount.adjusted() >= MAX_MONEY_INTEGER_DIGITS:
        raise problem(f"must be below 10^{MAX_MONEY_INTEGER_DIGITS}")
    if -normalize_exact(amount).as_tuple().exponent > MAX_MONEY_DECIMAL_PLACES:  # type: ignore[operator]  # finite checked above, exponent is an int
        raise problem(f"must have at most {MAX_MONEY_DECIMAL_PLACES} decimal places")
    return amount


# What the published JSON Schema says of an amount (the validator above is the final word; the
# schema rejects the same negatives and non-numbers, so upstream can check before sending).
MONEY_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"},
    ]
}
Money = Annotated[Decimal, BeforeValidator(_money), WithJsonSchema(MONEY_JSON_SCHEMA)]
"""An amount >= 0: a JSON number or a decimal string such as "12.10". Never a float inside."""


def _timestamp_input(value: Any) -> Any:
    if isinstance(value, datetime | str):
        return value
    raise problem("must be an ISO 8601 timestamp string with a timezone offset")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise problem("must include a timezone offset")
    return value


# ISO 8601 date and time with an offset (Z or +hh:mm): the schema refuses a naive timestamp too.
TIMESTAMP_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}.*([Zz]|[+-]\d{2}(:?\d{2})?)$",
}
Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp_input),
    AfterValidator(_aware),
    WithJsonSchema(TIMESTAMP_JSON_SCHEMA),
]
"""An ISO 8601 timestamp with a timezone offset, e.g. "2024-05-01T12:00:00+02:00" or "...Z"."""


def _currency(value: str) -> str:
    if not _CURRENCY_RE.fullmatch(value):
        raise problem("must be an ISO 4217 code of three uppercase letters, e.g. EUR")
    return value


def _country(value: str) -> str:
    if not _COUNTRY_RE.fullmatch(value):
        raise problem("must be an ISO 3166 alpha-2 code of two uppercase letters, e.g. DE")
    return value


CurrencyCode = Annotated[str, Field(strict=True), AfterValidator(_currency)]
CountryCode = Annotated[str, Field(strict=True), AfterValidator(_country)]
