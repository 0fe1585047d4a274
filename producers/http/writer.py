"""Group commit: one writer thread records the orders of every waiting request together.

A request hands its candidates to `GroupCommitWriter.submit` and awaits the future it gets
back; nothing blocks the event loop and no thread is started per request. The writer thread
takes every request waiting (up to `max_orders` orders; a request is never split), runs ONE
`enqueue` call for all of them (one pipelined ledger write and one publish, the producer
library's only path) and then resolves each request's future with its own orders' outcomes.
Under load, requests arriving while a write is in flight share the next one: the cost of a
Redis round trip is paid per group, not per request, and an idle intake answers at once.

A future resolves only after the ledger holds the orders (and their keys were published, and
with JETTI_RELAY_MIN_REPLICAS_ACK N > 0, N replicas confirmed them), or fails with
`IntakeUnavailable` (Redis unreachable, refusing, over the memory limit, or the replicas not
confirming in time: `error` REPLICATION_UNCONFIRMED): what the HTTP layer answers 202 or 503.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Final

import redis
import structlog

from producers.enqueue import (
    Candidate,
    EnqueueInterrupted,
    EnqueueSummary,
    OnResult,
    ReplicationUnconfirmed,
)
from worker.core.errors import Problem
from worker.core.records import RecordOutcome

log = structlog.get_logger("jetti_relay.intake.http")

# Orders one group commit takes at most (a request bigger than this is still taken whole, alone;
# enqueue then writes it in chunks of this size): big enough to amortise the Redis round trip
# over many requests, small enough that one write stays in the low milliseconds.
DEFAULT_GROUP_MAX_ORDERS = 1000
# INFO memory is read at most this often: a cheap command, but not one per group commit.
MEMORY_CHECK_INTERVAL_S = 1.0
# Retry-After of a 503: a Redis restart or failover takes seconds; memory frees more slowly
# (the workers must settle orders and the bodies expire), so senders back off longer.
UNREACHABLE_RETRY_AFTER_S = 5
MEMORY_RETRY_AFTER_S = 30
# A replica catching up, or Sentinel replacing one, takes seconds as well.
UNREPLICATED_RETRY_AFTER_S = 5
# The `error` of a 503 whose orders the primary holds but too few replicas confirmed in time.
REPLICATION_UNCONFIRMED: Final = "replication_unconfirmed"
# What `rejected` orders carry as their outcome (the others carry RecordOutcome's values).
REJECTED: Final = "rejected"
# Every outcome an order can have in an answer, in the order the counts show them.
OUTCOMES: Final = (*(o.value for o in RecordOutcome), REJECTED)

# Records candidates (positions 0..n-1) in the ledger and publishes their keys, calling
# `on_result` per recorded order: `producers.enqueue.enqueue_candidates` with its adapters bound.
Enqueue = Callable[[list[Candidate], OnResult], EnqueueSummary]


class IntakeUnavailable(Exception):
    """The orders were not (all) recorded, or not confirmed by enough replicas, and the sender
    should try again after `retry_after_s` seconds; `reason` is safe to show the sender (no
    Redis detail). `error` is a fixed code when the sender must tell this case from the others
    (REPLICATION_UNCONFIRMED), None when `reason` says it all."""

    def __init__(self, reason: str, *, retry_after_s: int, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.error = error


@dataclass(frozen=True, slots=True)
class OrderResult:
    """One order's outcome: `position` as the request numbered it, `key` the order key (None
    when the order had no readable id), `outcome` a RecordOutcome value or "rejected", and for a
    rejected order every problem with its field path."""

    position: int
    key: str | None
    outcome: str
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class _Job:
    candidates: Sequence[Candidate]
    future: Future[list[OrderResult]]


class MemoryGuard:
    """Refuses writes while Redis's used_memory / maxmemory is above `limit` (0 to 1), read
    from INFO memory at most once per `interval_s`. Unknown (no maxmemory, INFO refused) lets
    writes through: Redis's own refusal then still answers 503. Used by one thread only."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        limit: float,
        interval_s: float = MEMORY_CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._limit = limit
        self._interval_s = interval_s
        self._clock = clock
        self._checked_at: float | None = None
        self._ratio: float | None = None

    def check(self) -> None:
        """Raise IntakeUnavailable when over the limit, or when Redis cannot be reached."""
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._interval_s:
            self._ratio = self._read()
            self._checked_at = now
        if self._ratio is not None and self._ratio > self._limit:
            raise IntakeUnavailable(
                f"Redis memory is {self._ratio:.0%} of maxmemory, above the intake's limit "
                f"of {self._limit:.0%}",
                retry_after_s=MEMORY_RETRY_AFTER_S,
            )

    def _read(self) -> float | None:
        try:
            info = self._client.info("memory")
        except redis.ResponseError:
            return None  # INFO refused (ACL, rename-command): Redis's own OOM refusal remains
        except redis.RedisError as exc:
            raise IntakeUnavailable(
                "Redis is unreachable", retry_after_s=UNREACHABLE_RETRY_AFTER_S
            ) from exc
        maxmemory = int(info.get("maxmemory") or 0)
        if maxmemory <= 0:
            return None
        return int(info.get("used_memory") or 0) / maxmemory


class GroupCommitWriter:
    """The writer thread. `start()`, then `submit()` from any thread; `close()` refuses new
    work, finishes every request already submitted, and joins the thread."""

    def __init__(
        self,
        enqueue: Enqueue,
        *,
        guard: MemoryGuard | None = None,
        max_orders: int = DEFAULT_GROUP_MAX_ORDERS,
    ) -> None:
        self._enqueue = enqueue
        self._guard = guard
        self._max_orders = max(1, max_orders)
        # None is the stop mark `close` queues after the last request.
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the writer thread runs."""
        return self._thread.is_alive()

    def submit(self, candidates: Sequence[Candidate]) -> Future[list[OrderResult]]:
        """Queue one request's candidates (before `start()` too: they wait for the thread); the
        future resolves to their outcomes in input order, or fails with IntakeUnavailable (at
        once after `close()`). Cancelling it before the writer takes the request withdraws the
        request: none of its orders are written."""
        future: Future[list[OrderResult]] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(
                    IntakeUnavailable(
                        "the intake is shutting down", retry_after_s=UNREACHABLE_RETRY_AFTER_S
                    )
                )
                return future
            self._queue.put(_Job(candidates, future))
        return future

    def close(self, timeout_s: float | None = None) -> None:
        """Refuse new requests, write every request queued so far, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group, orders = [first], len(first.candidates)
            while orders < self._max_orders:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True  # everything before it is in `group`: write it, then stop
                    break
                group.append(job)
                orders += len(job.candidates)
            self._commit(group)

    def _commit(self, group: list[_Job]) -> None:
        # A request whose sender went away (cancelled future) is not written at all.
        live = [job for job in group if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            if self._guard is not None:
                self._guard.check()
            results = self._write(live)
        except Exception as exc:  # every job must be resolved, whatever went wrong
            if not isinstance(exc, IntakeUnavailable):
                log.exception("intake_write_failed", requests=len(live))
            for job in live:
                job.future.set_exception(exc)
            return
        for job, job_results in zip(live, results, strict=True):
            job.future.set_result(job_results)

    def _write(self, jobs: list[_Job]) -> list[list[OrderResult]]:
        """One enqueue call for every job; each job's outcomes in its input order."""
        flat: list[Candidate] = []
        owners: list[int] = []  # flat position -> the request's own position
        for job in jobs:
            for candidate in job.candidates:
                owners.append(candidate.position)
                flat.append(replace(candidate, position=len(flat)))
        slots: list[OrderResult | None] = [None] * len(flat)

        def on_result(position: int, order_key: str, outcome: RecordOutcome) -> None:
            slots[position] = OrderResult(owners[position], order_key, outcome.value)

        try:
            summary = self._enqueue(flat, on_result)
        except EnqueueInterrupted as exc:
            log.warning(
                "intake_write_interrupted",
                unreachable=exc.unreachable,
                detail=exc.detail,
                orders=len(flat),
            )
            raise _unavailable(exc) from exc
        for rejection in summary.rejections:
            slots[rejection.position] = OrderResult(
                owners[rejection.position], rejection.order_key, REJECTED, rejection.problems
            )
        out: list[list[OrderResult]] = []
        start = 0
        for job in jobs:
            end = start + len(job.candidates)
            out.append([_filled(slot) for slot in slots[start:end]])
            start = end
        return out


def _unavailable(exc: EnqueueInterrupted) -> IntakeUnavailable:
    """What the sender is told about an interrupted write (Redis's own words stay in the log)."""
    if isinstance(exc, ReplicationUnconfirmed):
        return IntakeUnavailable(
            f"the orders are recorded on the Redis primary, but only {exc.acked} of "
            f"{exc.wanted} replicas confirmed them within {exc.timeout_s:g} s: send the same "
            "request again (it is idempotent)",
            retry_after_s=UNREPLICATED_RETRY_AFTER_S,
            error=REPLICATION_UNCONFIRMED,
        )
    if exc.no_replicas:
        return IntakeUnavailable(
            "the Redis primary refuses writes while too few replicas are in sync "
            "(min-replicas-to-write): nothing was recorded; send again later",
            retry_after_s=UNREPLICATED_RETRY_AFTER_S,
        )
    reason = "Redis is unreachable" if exc.unreachable else "Redis refused the write"
    return IntakeUnavailable(reason, retry_after_s=UNREACHABLE_RETRY_AFTER_S)


def _filled(slot: OrderResult | None) -> OrderResult:
    # enqueue_candidates reports every candidate, recorded (on_result) or rejected.
    if slot is None:
        raise RuntimeError("enqueue reported no outcome for an order")
    return slot
