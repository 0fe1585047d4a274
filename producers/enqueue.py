"""Validate raw orders at the edge, write them to the ledger, then publish their keys.

Ledger first, message second (DESIGN.md principle 1): a crash between the two leaves an order
PENDING in the ledger, which the sweeper re-publishes; the reverse order could publish a key
the ledger does not hold. Only keys whose `RecordResult.publish` is True are published, so an
update to an order already queued coalesces into the message that is already there; a copy of
an order still PENDING is published again, so re-running an input after a failure part-way
publishes at once what that failure left unpublished (reliability review #2, L5).
Producers publish by task name (`worker.publisher`) and never import the worker's tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import redis
from kombu.exceptions import KombuError, OperationalError

from worker.core.contract import parse_raw_order
from worker.core.errors import InvalidOrder, Problem
from worker.core.jsonio import DEFAULT_MAX_BYTES, dumps_canonical, loads_document
from worker.core.keys import Keys, order_key_problem
from worker.core.limits import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    DEFAULT_MAX_LINE_ITEMS,
    MAX_ID_PREFIX_CHARS,
)
from worker.core.ports import KeyPublisher
from worker.core.rules import Rules
from worker.core.transform import line_items_problem
from worker.store.ledger import Ledger, NewVersion, RecordOutcome

# Orders validated and recorded per pipelined Redis round trip: big enough to amortise the
# round trip, small enough that a progress bar moves and memory stays flat on huge inputs.
DEFAULT_CHUNK_SIZE = 500

RawInput = Mapping[str, Any] | bytes | str
# Called once per recorded order with (position, order key, outcome), in input order.
OnResult = Callable[[int, str, RecordOutcome], None]


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


@dataclass(frozen=True, slots=True)
class Ignored:
    """A copy the ledger recorded but will not send: STALE (older than the stored version) or
    AFTER_CANCEL (not a cancellation, after the order's cancellation)."""

    position: int
    order_key: str
    outcome: RecordOutcome


@dataclass(slots=True)
class EnqueueSummary:
    """What an enqueue run did. `messages` counts the Celery messages published."""

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    after_cancel: int = 0
    rejected: int = 0
    messages: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every order seen, rejected ones included."""
        return (
            self.accepted
            + self.updated
            + self.unchanged
            + self.stale
            + self.after_cancel
            + self.rejected
        )

    def line(self) -> str:
        """The one-line summary the CLI prints last (after_cancel only when there were any)."""
        after = f", after_cancel {self.after_cancel}" if self.after_cancel else ""
        return (
            f"accepted {self.accepted}, updated {self.updated}, unchanged {self.unchanged}, "
            f"stale {self.stale}{after}, rejected {self.rejected}"
        )

    def count(self, outcome: RecordOutcome, *, position: int = -1, order_key: str = "") -> None:
        """Add one recorded order to the counter of its outcome; a STALE or AFTER_CANCEL copy
        is also listed in `ignored` with its position and key."""
        if outcome is RecordOutcome.ACCEPTED:
            self.accepted += 1
        elif outcome is RecordOutcome.UPDATED:
            self.updated += 1
        elif outcome is RecordOutcome.UNCHANGED:
            self.unchanged += 1
        else:
            if outcome is RecordOutcome.STALE:
                self.stale += 1
            else:
                self.after_cancel += 1
            self.ignored.append(Ignored(position, order_key, outcome))

    def reject(self, rejection: Rejection) -> None:
        """Record one refused order."""
        self.rejected += 1
        self.rejections.append(rejection)


class EnqueueInterrupted(Exception):
    """Redis or the broker failed part-way: the run stopped before the end of its input.

    `summary` is what the run did until then; every order before `position` (the first
    position not known to be enqueued) was recorded and published; from `position` on, orders
    may be recorded but not published, or not recorded. Running the same input again is safe
    and publishes at once every order still PENDING. `unreachable` is True for a connection
    failure or timeout (Redis or the broker unreachable), False when the server answered with
    a refusal (OOM, READONLY, BUSY, WRONGTYPE, any other error reply). The cause is chained.
    """

    def __init__(
        self, summary: EnqueueSummary, *, position: int, unreachable: bool, detail: str
    ) -> None:
        super().__init__(detail)
        self.summary = summary
        self.position = position
        self.unreachable = unreachable
        self.detail = detail


def _unreachable(exc: Exception) -> bool:
    """True for a transport failure (retrying later can help), False for a server refusal."""
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | OperationalError)


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
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> EnqueueSummary:
    """Validate, record and publish raw orders; a rejection's position is the 0-based index.

    Each raw order is a mapping, or one JSON document as bytes/str (parsed with
    `worker.core.jsonio.loads_document`; the original bytes are what the ledger stores). Every
    document, mappings included, is capped at `worker.core.jsonio.DEFAULT_MAX_BYTES` (a mapping's
    canonical JSON). The order key is `id_prefix` + the order's `id`. Malformed orders, orders
    whose `updated_at` is more than `max_future_skew_s` ahead of `now`, and orders whose key
    breaks the limits of worker.core.limits (an `id_prefix` over MAX_ID_PREFIX_CHARS, a key over
    MAX_ORDER_KEY_CHARS) are rejected with their position and field paths and the rest still go
    through. `now` (epoch s) defaults to the wall clock at each chunk. `keys` defaults to the
    configured key prefix (`JETTI_RELAY_KEY_PREFIX`, read through `worker.settings`), the one
    the workers read. A Redis or broker error raises `EnqueueInterrupted` (chained) with the
    summary so far and the position reached.
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
        max_future_skew_s=max_future_skew_s,
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
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
    on_result: OnResult | None = None,
) -> EnqueueSummary:
    """`enqueue` for candidates whose positions (and read errors) the caller already knows.

    An order that would become more than `max_line_items` line items is rejected, counted with
    the worker's `rules` when given; without them only lines with `units` are known to split
    (a lower bound: the worker's own check is the final one).

    Per chunk of `chunk_size`: validate, one pipelined `record_many` (same key twice is applied
    in order by the ledger), one publish of the keys due. `on_progress(n)` is called after each
    chunk with the number of candidates it held; `on_result(position, order_key, outcome)` once
    per recorded order, after its chunk was published. Raises `EnqueueInterrupted` on a Redis
    or broker error, with the first position of the chunk that failed.
    """
    ledger = Ledger(client, keys or configured_keys())
    summary = EnqueueSummary()
    for chunk in _chunks(candidates, max(1, chunk_size)):
        chunk_now = time.time() if now is None else now
        try:
            _enqueue_chunk(
                chunk,
                ledger=ledger,
                publisher=publisher,
                summary=summary,
                id_prefix=id_prefix,
                source=source,
                now=chunk_now,
                max_future_skew_s=max_future_skew_s,
                rules=rules,
                max_line_items=max_line_items,
                on_result=on_result,
            )
        except (redis.RedisError, KombuError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise EnqueueInterrupted(
                summary, position=chunk[0].position, unreachable=_unreachable(exc), detail=detail
            ) from exc
        if on_progress is not None:
            on_progress(len(chunk))
    return summary


def _enqueue_chunk(
    chunk: list[Candidate],
    *,
    ledger: Ledger,
    publisher: KeyPublisher,
    summary: EnqueueSummary,
    id_prefix: str,
    source: str | None,
    now: float,
    max_future_skew_s: float,
    rules: Rules | None,
    max_line_items: int,
    on_result: OnResult | None = None,
) -> None:
    items: list[NewVersion] = []
    positions: list[int] = []
    rejections: list[Rejection] = []
    for candidate in chunk:
        item = _validate(
            candidate,
            id_prefix=id_prefix if candidate.id_prefix is None else candidate.id_prefix,
            source=source if candidate.source is None else candidate.source,
            now_s=now,
            max_future_skew_s=max_future_skew_s,
            rules=rules,
            max_line_items=max_line_items,
        )
        if isinstance(item, Rejection):
            rejections.append(item)
        else:
            items.append(item)
            positions.append(candidate.position)
    for rejection in rejections:
        summary.reject(rejection)
    results = ledger.record_many(items, now=now)
    for position, result in zip(positions, results, strict=True):
        summary.count(result.outcome, position=position, order_key=result.order_key)
    # One key once per publish: a chunk may hold two copies of an order still PENDING.
    due = list(dict.fromkeys(r.order_key for r in results if r.publish))
    if due:
        summary.messages += publisher.publish(due)
    if on_result is not None:
        for position, result in zip(positions, results, strict=True):
            on_result(position, result.order_key, result.outcome)


def configured_keys() -> Keys:
    """The key builder under the configured prefix (`JETTI_RELAY_KEY_PREFIX`): what `enqueue`
    uses when the caller passes no `keys`, so a producer and the workers agree on the prefix."""
    from worker.settings import get_settings  # the settings load only when they are needed

    return Keys(get_settings().key_prefix)


def _validate(
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


def _chunks(items: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
