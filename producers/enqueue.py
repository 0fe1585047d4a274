"""Validate raw orders at the edge, write them to the ledger, then publish their keys.

Ledger first, message second (DESIGN.md principle 1): a crash between the two leaves an order
PENDING in the ledger, which the sweeper re-publishes; the reverse order could publish a key
the ledger does not hold. Only keys whose `RecordResult.publish` is True are published, so an
update to an order already queued coalesces into the message that is already there.
Producers publish by task name (`worker.publisher`) and never import the worker's tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import redis

from worker.contract import parse_raw_order
from worker.errors import InvalidOrder, Problem
from worker.jsonio import dumps_canonical, loads_document
from worker.keys import Keys
from worker.ledger import Ledger, NewVersion, RecordOutcome
from worker.limits import DEFAULT_MAX_LINE_ITEMS
from worker.rules import Rules
from worker.transform import line_items_problem

# Orders validated and recorded per pipelined Redis round trip: big enough to amortise the
# round trip, small enough that a progress bar moves and memory stays flat on huge inputs.
DEFAULT_CHUNK_SIZE = 500

RawInput = Mapping[str, Any] | bytes | str


class KeyPublisher(Protocol):
    """Anything that publishes order keys to the import queue (`worker.publisher.Publisher`)."""

    def publish(self, order_keys: Sequence[str]) -> int:
        """Publish the keys; returns the number of messages sent."""
        ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """One raw order as read from an input, at `position` (an index, a line or item number).

    `error` is set instead of `raw` when the reader could not even cut a document out there.
    """

    position: int
    raw: RawInput | None = None
    error: InvalidOrder | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A raw order refused at the edge: where it was, its id when readable, every problem."""

    position: int
    order_id: str | None
    problems: tuple[Problem, ...]

    def describe(self) -> str:
        """The problems as `path: message; path: message`."""
        return "; ".join(str(p) for p in self.problems) or "invalid order"


@dataclass(slots=True)
class EnqueueSummary:
    """What an enqueue run did. `messages` counts the Celery messages published."""

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    messages: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every order seen, rejected ones included."""
        return self.accepted + self.updated + self.unchanged + self.stale + self.rejected

    def line(self) -> str:
        """The one-line summary the CLI prints last."""
        return (
            f"accepted {self.accepted}, updated {self.updated}, unchanged {self.unchanged}, "
            f"stale {self.stale}, rejected {self.rejected}"
        )

    def count(self, outcome: RecordOutcome) -> None:
        """Add one recorded order to the counter of its outcome."""
        if outcome is RecordOutcome.ACCEPTED:
            self.accepted += 1
        elif outcome is RecordOutcome.UPDATED:
            self.updated += 1
        elif outcome is RecordOutcome.UNCHANGED:
            self.unchanged += 1
        else:
            self.stale += 1

    def reject(self, rejection: Rejection) -> None:
        """Record one refused order."""
        self.rejected += 1
        self.rejections.append(rejection)


def enqueue(
    raw_orders: Iterable[RawInput],
    *,
    client: redis.Redis[bytes],
    publisher: KeyPublisher,
    id_prefix: str = "",
    source: str | None = None,
    now: float | None = None,
    keys: Keys | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> EnqueueSummary:
    """Validate, record and publish raw orders; a rejection's position is the 0-based index.

    Each raw order is a mapping, or one JSON document as bytes/str (parsed with
    `worker.jsonio.loads_document`; the original bytes are what the ledger stores). The order
    key is `id_prefix` + the order's `id`. Malformed orders are rejected with their position and
    field paths and the rest still go through. `now` (epoch s) defaults to the wall clock at
    each chunk. Redis and broker errors propagate: chunks recorded before stay recorded, and the
    sweeper publishes what a failed publish left PENDING.
    """
    candidates = (Candidate(i, raw) for i, raw in enumerate(raw_orders))
    return enqueue_candidates(
        candidates,
        client=client,
        publisher=publisher,
        id_prefix=id_prefix,
        source=source,
        now=now,
        keys=keys,
        chunk_size=chunk_size,
        rules=rules,
        max_line_items=max_line_items,
    )


def enqueue_candidates(
    candidates: Iterable[Candidate],
    *,
    client: redis.Redis[bytes],
    publisher: KeyPublisher,
    id_prefix: str = "",
    source: str | None = None,
    now: float | None = None,
    keys: Keys | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_progress: Callable[[int], None] | None = None,
    rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> EnqueueSummary:
    """`enqueue` for candidates whose positions (and read errors) the caller already knows.

    An order that would become more than `max_line_items` line items is rejected, counted with
    the worker's `rules` when given; without them only lines with `units` are known to split
    (a lower bound: the worker's own check is the final one).

    Per chunk of `chunk_size`: validate, one pipelined `record_many` (same key twice is applied
    in order by the ledger), one publish of the keys due. `on_progress(n)` is called after each
    chunk with the number of candidates it held.
    """
    ledger = Ledger(client, keys or Keys())
    summary = EnqueueSummary()
    for chunk in _chunks(candidates, max(1, chunk_size)):
        items: list[NewVersion] = []
        for candidate in chunk:
            item = _validate(candidate, id_prefix=id_prefix, source=source, rules=rules,
                             max_line_items=max_line_items)
            if isinstance(item, Rejection):
                summary.reject(item)
            else:
                items.append(item)
        results = ledger.record_many(items, now=time.time() if now is None else now)
        for result in results:
            summary.count(result.outcome)
        due = [r.order_key for r in results if r.publish]
        if due:
            summary.messages += publisher.publish(due)
        if on_progress is not None:
            on_progress(len(chunk))
    return summary


def _validate(
    candidate: Candidate, *, id_prefix: str, source: str | None, rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> NewVersion | Rejection:
    doc: Any = None
    try:
        if candidate.error is not None:
            raise candidate.error
        raw = candidate.raw
        if isinstance(raw, bytes | str):
            doc = loads_document(raw)
        else:
            # The contract validates dicts; any other Mapping is read the same way.
            doc = raw if isinstance(raw, dict) or raw is None else dict(raw)
        order = parse_raw_order(doc)
        too_many = line_items_problem(order, rules, max_line_items)  # reliability #12
        if too_many is not None:
            raise InvalidOrder([too_many])
        if isinstance(raw, bytes | str):
            body = raw.encode("utf-8") if isinstance(raw, str) else raw
        else:
            # Mappings from loads_document may hold Decimal, which only the canonical dumper
            # writes exactly.
            body = dumps_canonical(raw)
    except InvalidOrder as exc:
        return Rejection(candidate.position, _order_id(doc), tuple(exc.problems))
    except (TypeError, ValueError) as exc:
        # A mapping the contract accepted but JSON cannot hold (a set, a datetime object...).
        problem = Problem("", f"not JSON-serialisable: {exc}")
        return Rejection(candidate.position, _order_id(doc), (problem,))
    return NewVersion(
        order_key=id_prefix + str(order.id),
        raw=body,
        updated_at=order.updated_at,
        source=source,
    )


def _order_id(doc: Any) -> str | None:
    """The id of a document that failed validation, when it has a readable one."""
    if isinstance(doc, Mapping):
        value = doc.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def _chunks(items: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
