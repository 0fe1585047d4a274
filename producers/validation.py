"""One raw order checked at the edge: the contract, the clock skew, the line-item cap and the
key limits, with every problem's field path (`validate`, used by `producers.enqueue`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.core.contract import parse_raw_order
from worker.core.errors import InvalidOrder, Problem
from worker.core.jsonio import DEFAULT_MAX_BYTES, dumps_canonical, loads_document
from worker.core.keys import order_key_problem
from worker.core.limits import MAX_ID_PREFIX_CHARS, MAX_SOURCE_CHARS
from worker.core.rules import Rules
from worker.core.transform import line_items_problem
from worker.store.ledger import NewVersion

RawInput = Mapping[str, Any] | bytes | str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One raw order as read from an input, at `position` (an index, a line or item number).

    `error` is set instead of `raw` when the reader could not even cut a document out there.
    `id_prefix` and `source`, when set, replace the run's for this order alone (a stream entry
    carries its own).
    """

    position: int
    raw: RawInput | None = None
    error: InvalidOrder | None = None
    id_prefix: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A raw order refused at the edge: where it was, its id when readable, every problem.

    `order_key` is the key it would have had (id prefix + id), None without a readable id."""

    position: int
    order_id: str | None
    problems: tuple[Problem, ...]
    order_key: str | None = None

    def describe(self) -> str:
        """The problems as `path: message; path: message`."""
        return "; ".join(str(p) for p in self.problems) or "invalid order"


def validate(
    candidate: Candidate,
    *,
    id_prefix: str,
    source: str | None,
    now_s: float,
    max_future_skew_s: float,
    rules: Rules | None,
    max_line_items: int,
) -> NewVersion | Rejection:
    doc: Any = None
    try:
        if candidate.error is not None:
            raise candidate.error
        raw = candidate.raw
        if isinstance(raw, bytes | str):
            doc = loads_document(raw)
            body = raw.encode("utf-8") if isinstance(raw, str) else raw
        else:
            # The contract validates dicts; any other Mapping is read the same way.
            doc = raw if isinstance(raw, dict) or raw is None else dict(raw)
            # Mappings from loads_document may hold Decimal, which only the canonical dumper
            # writes exactly. A mapping (an array item, a library caller's dict) gets the same
            # size cap as a document read from bytes (reliability review L4).
            body = dumps_canonical(doc) if doc is not None else b""
            if len(body) > DEFAULT_MAX_BYTES:
                raise InvalidOrder(
                    [
                        Problem(
                            "$",
                            f"document is {len(body)} bytes, larger than {DEFAULT_MAX_BYTES} bytes",
                        )
                    ]
                )
        order = parse_raw_order(doc, now_s=now_s, max_future_skew_s=max_future_skew_s)
        too_many = line_items_problem(order, rules, max_line_items)  # reliability #12
        if too_many is not None:
            raise InvalidOrder([too_many])
    except InvalidOrder as exc:
        return _rejection(candidate, doc, tuple(exc.problems), id_prefix)
    except (TypeError, ValueError) as exc:
        # A mapping the contract accepted but JSON cannot hold (a set, a datetime object...).
        problem = Problem("", f"not JSON-serialisable: {exc}")
        return _rejection(candidate, doc, (problem,), id_prefix)
    order_key = id_prefix + str(order.id)
    over_limit = key_limits_problem(order_key, id_prefix=id_prefix)
    if over_limit is None and source is not None and len(source) > MAX_SOURCE_CHARS:
        # One check for every way in: stream entries, HTTP, the library and the CLI.
        over_limit = Problem("source", f"has {len(source)} characters, at most {MAX_SOURCE_CHARS}")
    if over_limit is not None:
        return Rejection(candidate.position, str(order.id), (over_limit,), order_key)
    return NewVersion(
        order_key=order_key,
        raw=body,
        updated_at=order.updated_at,
        source=source,
        cancelled=order.cancelled_at is not None,
    )


def _rejection(
    candidate: Candidate, doc: Any, problems: tuple[Problem, ...], id_prefix: str
) -> Rejection:
    order_id = _order_id(doc)
    key = None if order_id is None else id_prefix + order_id
    return Rejection(candidate.position, order_id, problems, key)


def key_limits_problem(order_key: str, *, id_prefix: str = "") -> Problem | None:
    """Why the worker could not take `order_key` (= `id_prefix` + id), or None: the limits of
    worker.core.limits, which the worker's message parser applies too (reliability #9)."""
    if len(id_prefix) > MAX_ID_PREFIX_CHARS:
        return Problem(
            "id", f"the id prefix has {len(id_prefix)} characters, at most {MAX_ID_PREFIX_CHARS}"
        )
    problem = order_key_problem(order_key)
    return None if problem is None else Problem("id", problem)


def _order_id(doc: Any) -> str | None:
    """The id of a document that failed validation, when it has a readable one."""
    if isinstance(doc, Mapping):
        value = doc.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None
