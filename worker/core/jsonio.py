"""JSON in and out, safely and exactly.

`loads_document` refuses hostile input before it costs anything (size, depth, invalid Unicode,
NaN/Infinity) and reads every number with a fraction or exponent as `Decimal`, so money never
passes through float. `dumps_canonical` writes deterministic bytes with each Decimal as its
shortest exact number. The stdlib parser is used on the way in because orjson cannot yield
Decimals; orjson is used on the way out because it is fast and takes raw number fragments.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import orjson

from worker.core.errors import InvalidOrder, Problem

# Default size cap of one document: a real order is a few kilobytes.
DEFAULT_MAX_BYTES = 1_048_576
# Default nesting cap: the contract itself nests four levels deep.
DEFAULT_MAX_DEPTH = 32
# Largest decimal exponent (either sign) a number may have; 1e999999999 would otherwise become
# a gigabyte of digits once written out in plain notation.
MAX_NUMBER_EXPONENT = 100

_ROOT = "$"
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
# loads_document's marker for "orjson refused it: check the slow way".
_UNCHECKED = object()


class _Refused(ValueError):
    """A literal the parser must not accept; carries the user-facing message."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a valid JSON number (NaN and Infinity are refused)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins ({"quantity": 1, "quantity": 900}), so an
    # upstream system and we could read different orders from the same bytes: refuse.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key[:40]!r} in one object")
            seen.add(key)
    return obj


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        # An exponent beyond what Decimal holds at all (1e999123456789012345678901234567890):
        # it raises ArithmeticError, which no caller expects from a parser.
        raise _Refused(
            f"number {text[:40]} is out of range (exponent beyond ±{MAX_NUMBER_EXPONENT})"
        ) from None
    if value and abs(value.adjusted()) > MAX_NUMBER_EXPONENT:
        raise _Refused(
            f"number {text[:40]} is out of range (exponent beyond ±{MAX_NUMBER_EXPONENT})"
        )
    return value


def loads_document(
    data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> Any:
    """Parse one JSON document; numbers with a fraction or exponent become `Decimal`.

    Raises `InvalidOrder` (path `$`) for a document over `max_bytes` (UTF-8 bytes), invalid
    UTF-8, lone surrogates (raw or as `\\ud800` escapes), NaN/Infinity literals, nesting deeper
    than `max_depth` arrays/objects, numbers with an absurd exponent, duplicate keys in one
    object, or invalid JSON (with line and column).
    """
    if isinstance(data, str):
        if len(data) > max_bytes:
            raise _invalid(f"document is larger than {max_bytes} bytes")
        try:
            encoded = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _invalid(f"invalid Unicode at character {exc.start}: lone surrogate") from exc
        if len(encoded) > max_bytes:  # characters, checked above, can be up to 4 bytes each
            raise _invalid(f"document is larger than {max_bytes} bytes")
        text = data
    else:
        # Bytes were measured as given: decoding valid UTF-8 and encoding it again gives them
        # back, so the size needs no second look (this is every intake's hot path).
        if len(data) > max_bytes:
            raise _invalid(f"document is {len(data)} bytes, larger than {max_bytes} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid(f"invalid UTF-8 at byte {exc.start}") from exc
    # Fast path (every intake's hot path): orjson, in C, refuses invalid UTF-8, every lone
    # surrogate (raw or escaped), NaN/Infinity and nesting past 1024; the depth cap is then
    # checked on its tree and the string scan is not needed. A document orjson refuses (or
    # cannot hold: an integer beyond 64 bits) takes the slow path, which finds the precise
    # reason. The stdlib parser still reads the document: only it yields Decimals and sees
    # duplicate keys.
    try:
        shape: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        shape = _UNCHECKED
    if shape is _UNCHECKED:
        # Measured before parsing: the stdlib parser recurses, so a deep document never
        # reaches it.
        _check_depth(text, max_depth)
    elif isinstance(shape, dict | list):
        _check_tree_depth(shape, max_depth)
    try:
        doc = json.loads(
            text,
            parse_float=_decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object,
        )
    except _Refused as exc:
        raise _invalid(str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise _invalid(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:
        # e.g. an integer longer than Python's int/str conversion limit
        raise _invalid(f"invalid JSON: {exc}") from exc
    if shape is _UNCHECKED:
        _check_strings(doc)
    return doc


def _invalid(message: str) -> InvalidOrder:
    return InvalidOrder([Problem(_ROOT, message)])


def _check_tree_depth(doc: Any, max_depth: int) -> None:
    """`_check_depth` on a parsed tree: the same count, arrays and objects only."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise _invalid(f"document is nested deeper than {max_depth} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise _invalid(f"document is nested deeper than {max_depth} levels")
        else:
            depth -= 1


def _check_strings(doc: Any) -> None:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                _check_text(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The string is never echoed: it may be personal data (reliability L3).
        raise _invalid(
            f"invalid Unicode in a string at character {exc.start}: lone surrogate (\\u escape)"
        ) from exc


def decimal_text(value: Decimal) -> str:
    """The shortest exact plain-notation text of a finite Decimal: 12.10 -> 12.1, 1E+2 -> 100."""
    if not value.is_finite():
        raise ValueError(f"cannot write {value} as JSON")
    if value.is_zero():
        return "0"
    exponent = value.adjusted()
    if abs(exponent) > MAX_NUMBER_EXPONENT:
        raise ValueError(f"refusing to write {value}: exponent beyond ±{MAX_NUMBER_EXPONENT}")
    return format(normalize_exact(value), "f")


def normalize_exact(value: Decimal) -> Decimal:
    """`value` without trailing zeros, never rounded (plain `normalize()` rounds to 28 digits)."""
    digits = len(value.as_tuple().digits)
    return value.normalize(Context(prec=max(digits, 1)))


def dumps_canonical(obj: Any) -> bytes:
    """Deterministic compact JSON bytes: dict insertion order kept, no spaces.

    Each Decimal is written as its shortest exact number in plain notation (never an exponent,
    never via float); integers of any size are written exactly. Raises ValueError for NaN or
    infinite values and TypeError for unsupported types.
    """
    return orjson.dumps(_prepare(obj))


# orjson writes integers only within 64 bits; beyond that they go out as raw number text.
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _prepare(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(decimal_text(obj))
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj if _INT64_MIN <= obj <= _UINT64_MAX else orjson.Fragment(str(obj))
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {obj} as JSON")
        return obj
    if isinstance(obj, dict):
        return {key: _prepare(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_prepare(value) for value in obj]
    return obj


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of the exact bytes sent."""
    return hashlib.sha256(body).hexdigest()
