"""Validate raw orders at the edge, write them to the ledger, then publish their keys.

Ledger first, message second (DESIGN.md principle 1): a crash between the two leaves an order
PENDING in the ledger, which the sweeper re-publishes; the reverse order could publish a key
the ledger does not hold. Only keys whose `RecordResult.publish` is True are published, so an
update to an order already queued coalesces into the message that is already there; a copy of
an order still PENDING is published again, so re-running an input after a failure part-way
publishes at once what that failure left unpublished (reliability review #2, L5).
Producers publish by task name (`worker.publisher`) and never import the worker's tasks.

With `min_replicas_ack` N > 0, a chunk is confirmed on N replicas after its publish (so a Redis
broker's message is covered too) before upstream hears of it (`worker.store.replication`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import redis
from kombu.exceptions import KombuError, OperationalError

from producers.tracing import configured_tracer, end_spans, fail_spans, start_spans
from producers.validation import Candidate as Candidate
from producers.validation import RawInput as RawInput
from producers.validation import Rejection as Rejection
from producers.validation import key_limits_problem as key_limits_problem
from producers.validation import validate
from worker.core.keys import Keys
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S, DEFAULT_MAX_LINE_ITEMS
from worker.core.ports import KeyPublisher
from worker.core.rules import Rules
from worker.core.tracing import NOOP_TRACER, Tracer
from worker.store.ledger import Ledger, NewVersion, RecordOutcome
from worker.store.replication import ReplicaFence, refused_for_replicas

# Orders validated and recorded per pipelined Redis round trip: big enough to amortise the
# round trip, small enough that a progress bar moves and memory stays flat on huge inputs.
DEFAULT_CHUNK_SIZE = 500

# Called once per recorded order with (position, order key, outcome), in input order.
OnResult = Callable[[int, str, RecordOutcome], None]


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

    @property
    def no_replicas(self) -> bool:
        """True when the Redis primary refused the write because fewer replicas than its
        `min-replicas-to-write` are in sync (NOREPLICAS): nothing of the chunk at `position`
        was written; sending again succeeds once the replicas are back."""
        return self.__cause__ is not None and refused_for_replicas(self.__cause__)


class ReplicationUnconfirmed(EnqueueInterrupted):
    """The chunk at `position` is recorded on the Redis primary (and published), but only
    `acked` of the `wanted` replicas confirmed holding it within `timeout_s` seconds.

    A failover now could promote a replica without those orders, so they are not acknowledged
    to upstream: send the same input again. That is safe (the ledger recognises every copy, a
    copy it holds is `unchanged`) and the resend is confirmed once the replicas catch up. Every
    order before `position` was confirmed; `summary` counts the chunk at `position` as recorded.
    `unreachable` is False: Redis answered."""

    def __init__(
        self,
        summary: EnqueueSummary,
        *,
        position: int,
        acked: int,
        wanted: int,
        timeout_s: float,
    ) -> None:
        detail = (
            f"recorded on the primary, replication unconfirmed ({acked} of {wanted} replicas "
            f"within {timeout_s:g} s): send again; sending again is safe"
        )
        super().__init__(summary, position=position, unreachable=False, detail=detail)
        self.acked = acked
        self.wanted = wanted
        self.timeout_s = timeout_s


def unreachable(exc: BaseException) -> bool:
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
    min_replicas_ack: int | None = None,
    min_replicas_ack_timeout_s: float | None = None,
    tracer: Tracer | None = None,
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

    With `min_replicas_ack` N > 0 a chunk is done once N replicas hold it; fewer within
    `min_replicas_ack_timeout_s` raise `ReplicationUnconfirmed`. Both default to the configured
    JETTI_RELAY_MIN_REPLICAS_ACK (0: no wait, no extra round trip) and its timeout.

    `tracer` (default: the configured one, `producers.tracing.configured_tracer`, a no-op unless
    JETTI_RELAY_OTLP_ENDPOINT is set) opens a `jetti_relay.enqueue` span per recorded order and
    stores its context with the order, so the worker's spans join the same trace.
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
        min_replicas_ack=min_replicas_ack,
        min_replicas_ack_timeout_s=min_replicas_ack_timeout_s,
        tracer=tracer,
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
    min_replicas_ack: int | None = None,
    min_replicas_ack_timeout_s: float | None = None,
    tracer: Tracer | None = None,
) -> EnqueueSummary:
    """`enqueue` for candidates whose positions (and read errors) the caller already knows.

    An order that would become more than `max_line_items` line items is rejected, counted with
    the worker's `rules` when given; without them only lines with `units` are known to split
    (a lower bound: the worker's own check is the final one).

    Per chunk of `chunk_size`: validate, one pipelined `record_many` (same key twice is applied
    in order by the ledger), one publish of the keys due, and with `min_replicas_ack` N > 0 one
    fence + WAIT round trip. `on_progress(n)` is called after each chunk with the number of
    candidates it held; `on_result(position, order_key, outcome)` once per recorded order, after
    its chunk was published (and confirmed). Raises `EnqueueInterrupted` on a Redis or broker
    error, `ReplicationUnconfirmed` when too few replicas confirmed, with the first position of
    the chunk that failed.
    """
    keys = keys or configured_keys()
    ledger = Ledger(client, keys)
    fence = replica_fence(client, keys, min_replicas_ack, min_replicas_ack_timeout_s)
    tracer = configured_tracer() if tracer is None else tracer
    summary = EnqueueSummary()
    for chunk in _chunks(candidates, max(1, chunk_size)):
        chunk_now = time.time() if now is None else now
        try:
            prepared = prepare_chunk(
                chunk,
                now=chunk_now,
                id_prefix=id_prefix,
                source=source,
                max_future_skew_s=max_future_skew_s,
                rules=rules,
                max_line_items=max_line_items,
            )
            commit_chunk(
                prepared,
                ledger=ledger,
                publisher=publisher,
                summary=summary,
                on_result=on_result,
                fence=fence,
                tracer=tracer,
            )
        except (redis.RedisError, KombuError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise EnqueueInterrupted(
                summary, position=chunk[0].position, unreachable=unreachable(exc), detail=detail
            ) from exc
        if on_progress is not None:
            on_progress(len(chunk))
    return summary


@dataclass(slots=True)
class PreparedChunk:
    """A chunk validated at `now` and not yet recorded: the versions to record with the
    positions they came from, and the refusals. `commit_chunk` writes it."""

    now: float
    items: list[NewVersion]
    positions: list[int]
    rejections: list[Rejection]


def prepare_chunk(
    chunk: Sequence[Candidate],
    *,
    now: float,
    id_prefix: str = "",
    source: str | None = None,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    rules: Rules | None = None,
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS,
) -> PreparedChunk:
    """Validate `chunk` (no IO): the first half of what `enqueue_candidates` does per chunk."""
    prepared = PreparedChunk(now, [], [], [])
    for candidate in chunk:
        item = validate(
            candidate,
            id_prefix=id_prefix if candidate.id_prefix is None else candidate.id_prefix,
            source=source if candidate.source is None else candidate.source,
            now_s=now,
            max_future_skew_s=max_future_skew_s,
            rules=rules,
            max_line_items=max_line_items,
        )
        if isinstance(item, Rejection):
            prepared.rejections.append(item)
        else:
            prepared.items.append(item)
            prepared.positions.append(candidate.position)
    return prepared


def commit_chunk(
    prepared: PreparedChunk,
    *,
    ledger: Ledger,
    publisher: KeyPublisher,
    summary: EnqueueSummary,
    on_result: OnResult | None = None,
    fence: ReplicaFence | None = None,
    tracer: Tracer = NOOP_TRACER,
) -> None:
    """Record `prepared` (one pipelined `record_many`), publish the keys due, count it all in
    `summary`, and with a `fence` confirm the replicas hold it: the second half of
    `enqueue_candidates` per chunk. Redis and broker errors propagate as they are; too few
    replicas raise `ReplicationUnconfirmed` (after counting, before `on_result`). With a
    `tracer` on, each recorded order gets a `jetti_relay.enqueue` span whose context is stored
    with it (ended once the chunk is published, or failed with the error)."""
    for rejection in prepared.rejections:
        summary.reject(rejection)
    items, spans = start_spans(tracer, prepared.items)
    try:
        results = ledger.record_many(items, now=prepared.now)
        for position, result in zip(prepared.positions, results, strict=True):
            summary.count(result.outcome, position=position, order_key=result.order_key)
        # One key once per publish: a chunk may hold two copies of an order still PENDING.
        due = list(dict.fromkeys(r.order_key for r in results if r.publish))
        if due:
            summary.messages += publisher.publish(due)
    except BaseException as exc:
        fail_spans(spans, exc)
        raise
    if spans:  # tracing on
        end_spans(spans, results, set(due))
    # Even when every order was unchanged: an earlier copy, written by another producer or
    # connection, may still be on the primary only, and the fence makes this WAIT cover it.
    if fence is not None and prepared.items:
        acked = fence.confirm()
        if acked < fence.replicas:
            first = min([*prepared.positions, *(r.position for r in prepared.rejections)])
            raise ReplicationUnconfirmed(
                summary,
                position=first,
                acked=acked,
                wanted=fence.replicas,
                timeout_s=fence.timeout_s,
            )
    if on_result is not None:
        for position, result in zip(prepared.positions, results, strict=True):
            on_result(position, result.order_key, result.outcome)


def configured_keys() -> Keys:
    """The key builder under the configured prefix (`JETTI_RELAY_KEY_PREFIX`): what `enqueue`
    uses when the caller passes no `keys`, so a producer and the workers agree on the prefix."""
    from worker.settings import get_settings  # the settings load only when they are needed

    return Keys(get_settings().key_prefix)


def replica_fence(
    client: redis.Redis[bytes],
    keys: Keys,
    min_replicas_ack: int | None,
    timeout_s: float | None,
) -> ReplicaFence | None:
    """The fence that confirms each chunk on `min_replicas_ack` replicas within `timeout_s`, or
    None for 0 replicas (no wait at all). None for either reads the configured value
    (JETTI_RELAY_MIN_REPLICAS_ACK, JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S), as `configured_keys`
    does for the prefix, so the library's default follows the deployment's settings."""
    if min_replicas_ack is None or (timeout_s is None and min_replicas_ack > 0):
        from worker.settings import get_settings  # the settings load only when they are needed

        settings = get_settings()
        min_replicas_ack = (
            settings.min_replicas_ack if min_replicas_ack is None else min_replicas_ack
        )
        timeout_s = settings.min_replicas_ack_timeout_s if timeout_s is None else timeout_s
    if min_replicas_ack <= 0 or timeout_s is None:  # no replicas wanted: no timeout was needed
        return None
    return ReplicaFence(client, keys, replicas=min_replicas_ack, timeout_s=timeout_s)


def _chunks(items: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
