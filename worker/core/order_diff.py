"""What changed between two versions of a raw order, and the payload the current code builds
from a stored one: the console's order page ("diff against the previous version", "the payload
that would be sent").

Pure: the stored bytes in, JSON-able values out; no clock, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.core.build import BuildOptions, build_payload
from worker.core.errors import InvalidOrder, TransformError
from worker.core.jsonio import loads_document
from worker.core.records import OrderEntry
from worker.core.rules import Rules

# A version that is not a JSON document is compared as a whole under this path.
WHOLE = "$"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: `path` like `lines[1].quantity` (`$` for the whole document); `before`
    and `after` are JSON-able values, None where the path is absent on that side (an absent
    value and a JSON null both show as None; `added`/`removed` tell them apart)."""

    path: str
    before: Any
    after: Any
    added: bool = False
    removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "added": self.added,
            "removed": self.removed,
        }


def _jsonable(value: Any) -> Any:
    """`value` with every Decimal as its exact text (JSON has no Decimal; a float may round)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _document(raw: bytes) -> Any:
    try:
        return loads_document(raw)
    except (InvalidOrder, ValueError):
        # Not JSON (a body stored past the producer's checks): show the text itself.
        return raw.decode("utf-8", "replace")


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]" if path != WHOLE else f"[{key}]"
    return key if path == WHOLE else f"{path}.{key}"


def _walk(path: str, before: Any, after: Any, out: list[Change]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in list(before) + [k for k in after if k not in before]:
            sub = _child(path, str(key))
            if key not in after:
                out.append(Change(sub, _jsonable(before[key]), None, removed=True))
            elif key not in before:
                out.append(Change(sub, None, _jsonable(after[key]), added=True))
            else:
                _walk(sub, before[key], after[key], out)
        return
    if isinstance(before, list) and isinstance(after, list):
        for i in range(max(len(before), len(after))):
            sub = _child(path, i)
            if i >= len(after):
                out.append(Change(sub, _jsonable(before[i]), None, removed=True))
            elif i >= len(before):
                out.append(Change(sub, None, _jsonable(after[i]), added=True))
            else:
                _walk(sub, before[i], after[i], out)
        return
    # Compare types too: 1 and 1.0, or 1 and True, are different bytes to Jetti.
    if type(before) is not type(after) or before != after:
        out.append(Change(path, _jsonable(before), _jsonable(after)))


def diff_raw(before: bytes | None, after: bytes) -> list[Change]:
    """The changes from the raw order `before` (None: no earlier version kept, every top-level
    field is added) to `after`, in document order (removed keys where they were, added keys
    after). Lists compare by position, so a line inserted in the middle shows as changes to
    the lines after it. Numbers compare by value and JSON type (`12.10` equals `12.1`, `1`
    differs from `1.0`); a fractional number is given as its exact text."""
    new = _document(after)
    if before is None:
        if isinstance(new, dict):
            return [Change(str(k), None, _jsonable(v), added=True) for k, v in new.items()]
        return [Change(WHOLE, None, _jsonable(new), added=True)]
    out: list[Change] = []
    _walk(WHOLE, _document(before), new, out)
    return out


@dataclass(frozen=True, slots=True)
class PayloadPreview:
    """The payload the current code and rules build from a stored raw order, or why none can
    be built (`error`, the problems with their paths)."""

    payload: dict[str, Any] | None  # as the worker would send it (Decimals as exact text)
    payload_hash: str | None
    error: str | None


def payload_preview(
    entry: OrderEntry, rules: Rules, options: BuildOptions | None = None
) -> PayloadPreview:
    """What the worker would send for `entry` now: `worker.core.build.build_payload` on the
    stored raw order, with the rules and options the worker uses. A tombstone (body shed)
    has nothing to build from; an invalid or untransformable order gives its problems."""
    if entry.raw is None:
        return PayloadPreview(None, None, "the raw order was shed (settled long ago)")
    try:
        built = build_payload(entry.raw, entry.order_key, rules, options)
    except (InvalidOrder, TransformError) as exc:
        return PayloadPreview(None, None, str(exc))
    return PayloadPreview(_jsonable(built.payload), built.payload_hash, None)
