"""Pydantic's complaints about a raw order, as `Problem`s with the path the user wrote.

`to_problem` maps one pydantic error to a `Problem("lines[2].quantity", "must be >= 1")`: the
path in the user's terms (a discriminated union's tag removed) and the message in plain words.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

from worker.core.errors import Problem

# The routing modes of a line (`worker.core.contract.Line.routing`): a discriminated union whose
# chosen tag pydantic puts into the error path, where the user never wrote it.
ROUTING_MODES = ("fulfill", "dropship", "auto")


def format_path(loc: tuple[int | str, ...]) -> str:
    """`("lines", 2, "quantity")` -> `lines[2].quantity`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def to_problem(error: ErrorDetails) -> Problem:
    """One pydantic error as a `Problem` with the field path and a plain message."""
    loc = list(error["loc"])
    # A discriminated union puts the chosen tag in the path; the user never wrote it.
    loc = [
        part
        for index, part in enumerate(loc)
        if not (part in ROUTING_MODES and index > 0 and loc[index - 1] == "routing")
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
