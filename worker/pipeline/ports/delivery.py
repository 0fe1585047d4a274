"""Ports of the delivery services: what the processor and the canceller need of stores and Jetti.

The ledger's batch operations, dead letters, the fleet's token bucket and breaker, counters,
order locks and the Jetti submit and cancel calls; `worker.runtime` passes the Redis and httpx
implementations in, `tests/fakes.py` the in-memory ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from worker.core.answers import ImportRow, Sale, SaleLookup
from worker.core.records import Attempt, Claim, Finish, OrderEntry, Version
from worker.core.states import DeadReason, FinishReply

# What `Breaker.admit` answers: the whole batch, one probe, or nothing (`worker.store.breaker`).
Admission = Literal["all", "probe", "none"]


class BatchLedger(Protocol):
    """The ledger's batch API, as the processor uses it (`worker.store.ledger.Ledger`)."""

    def begin_batch(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        lock_head_tail: tuple[str, str],
        lock_ttl_s: float,
        lock_busy_due_at: float,
        task_id: str,
        worker: str,
        now: float,
        max_unfinished: int,
        fill: int = 0,
        fill_token: str = "",
        retry_for_s: float = 0.0,
    ) -> list[Claim]:
        """Lock and begin every `(order_key, lock token)`; one `Claim` per order begun. With
        `retry_for_s`, a Redis failover is ridden out as in `finish_batch` (the call is
        repeat-safe: the same tokens get the same answer)."""
        ...

    def finish_batch(
        self,
        items: Sequence[Finish],
        *,
        lock_head_tail: tuple[str, str],
        now: float,
        also: Callable[[Any], None] | None = None,
        retry_for_s: float = 0.0,
    ) -> list[FinishReply]:
        """Write every outcome, finish marker and lock release; one named reply per item.
        With `retry_for_s`, a Redis failover is ridden out for up to that long (the write is
        repeat-safe per delivery); after that, or on any other error, the error is raised."""
        ...

    def attempts(self, order_key: str) -> list[Attempt]:
        """The order's attempt history, oldest first."""
        ...


class CancelLedger(Protocol):
    """The single-order writes the canceller makes (`worker.store.ledger.Ledger`)."""

    def attempts(self, order_key: str) -> list[Attempt]:
        """The order's attempt history, oldest first."""
        ...

    def schedule_retry(
        self,
        order_key: str,
        *,
        due_at: float,
        spend_attempt: bool,
        now: float,
        attempt: Attempt | None = None,
    ) -> None:
        """RETRY_WAIT until `due_at`."""
        ...

    def mark_dead(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        now: float,
        attempt: Attempt | None = None,
        version: Version | None = None,
    ) -> bool:
        """DEAD; True when a newer version made it PENDING instead (re-publish it)."""
        ...

    def mark_cancelled(
        self,
        order_key: str,
        *,
        version: Version,
        sale_id: int | None,
        via: str,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        """CANCELLED; True when a newer version made it PENDING instead (re-publish it)."""
        ...


class DeadLetterStore(Protocol):
    """The dead-letter writes of the services (`worker.store.dead_letters.DeadLetters`)."""

    def put(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        raw: bytes | None,
        payload: bytes | None,
        attempts: Sequence[Attempt],
        source: str | None,
        error: str,
        now: float,
        payload_version: Version | None = None,
    ) -> None:
        """Dead-letter the order (create the entry, or make it dead again)."""
        ...

    def mark_resolved(self, order_key: str, *, now: float) -> bool:
        """The entry's order went through after all."""
        ...


class TokenSource(Protocol):
    """Anything one token at a time is taken from (`submit.wait_for_token` waits on it)."""

    def acquire(self) -> float:
        """Take one token: 0 when taken, else the seconds until one may be."""
        ...


class TokenBucket(TokenSource, Protocol):
    """A fleet token bucket (`RateLimiter` for imports, `ApiThrottle` for sync-API calls)."""

    def acquire_many(self, count: int) -> tuple[int, float]:
        """Take up to `count` tokens: (taken, seconds until the next one)."""
        ...

    def block(self, *, until: float) -> bool:
        """Give no token to anyone until `until` (epoch s)."""
        ...


class Breaker(Protocol):
    """The fleet circuit breaker (`worker.store.breaker.Breaker`)."""

    def admit(self, *, now: float) -> Admission:
        """How much of a batch may go now."""
        ...

    def allow(self, *, now: float) -> bool:
        """May one call go now (closed, or this caller is the probe)?"""
        ...

    def trip(self, *, reason: str, status: int | None = None, now: float) -> bool:
        """Open the breaker; False while an operator has the fleet paused."""
        ...

    def record_success(self, *, now: float | None = None) -> bool:
        """An accepted call: close an open or half-open breaker."""
        ...


class StatsTally(Protocol):
    """One batch's counters, written by the flush (`worker.store.stats.StatsTally`)."""

    def count_submission(self, outcome: str, status: int | None) -> None:
        """One submission answered `status` with `outcome`."""
        ...

    def count_dead(self, reason: str) -> None:
        """One order dead-lettered."""
        ...

    def count_surprise(self, assumption: str) -> None:
        """Jetti did something the relay does not assume."""
        ...

    def count_unknown(self) -> None:
        """A message named an order key the ledger does not know."""
        ...

    def count_no_outcome(self) -> None:
        """A delivery ended without a recorded outcome."""
        ...

    def observe_latency(self, seconds: float) -> None:
        """Enqueue-to-accepted latency of one order."""
        ...

    def __bool__(self) -> bool:
        """True when anything was counted."""
        ...

    def queue(self, pipe: Any) -> None:
        """Queue the counts into the flush's pipeline and forget them."""
        ...


class StatsCounters(Protocol):
    """The fleet counters (`worker.store.stats.Stats`)."""

    def tally(self) -> StatsTally:
        """A fresh in-memory tally for one batch."""
        ...

    def count_submission(self, outcome: str, status: int | None) -> None:
        """One call answered `status` with `outcome`."""
        ...

    def count_dead(self, reason: str) -> None:
        """One order dead-lettered."""
        ...

    def count_surprise(self, assumption: str) -> None:
        """Jetti did something the relay does not assume."""
        ...


class LockTokens(Protocol):
    """The per-order lock's naming (`worker.store.leases.OrderLock`); the scripts take it."""

    def make_token(self) -> str:
        """A fresh lock token."""
        ...

    def key_parts(self) -> tuple[str, str]:
        """The lock key's head and tail around the order key."""
        ...


class SubmitAnswer(Protocol):
    """Jetti's 2xx answer to a submission (`worker.jetti.client.SubmitResult`)."""

    @property
    def status(self) -> int:
        """The HTTP status."""
        ...

    @property
    def sale_id(self) -> int | None:
        """The sale id (sync mode only)."""
        ...


class JettiSubmit(Protocol):
    """The import call (`worker.jetti.client.JettiClient.submit`)."""

    def submit(self, body: bytes) -> SubmitAnswer:
        """POST `body`; raises the errors of `worker.core.errors` for any other answer."""
        ...


class JettiCancels(Protocol):
    """The sync-API calls of a cancellation (`worker.jetti.client.JettiClient`)."""

    @property
    def has_api_token(self) -> bool:
        """True when a Bearer token is configured."""
        ...

    @property
    def channel_id(self) -> int | None:
        """Our channel, None when not configured."""
        ...

    def find_sale(self, external_id: str) -> SaleLookup:
        """Our channel's sale with this externalId."""
        ...

    def imports_of(self, external_id: str) -> list[ImportRow]:
        """Jetti's import log rows for this externalId."""
        ...

    def cancel_sale(self, sale_id: int) -> Sale | None:
        """Cancel the sale; the sale as the answer shows it, if it does."""
        ...


class Cancellations(Protocol):
    """The processor's view of the canceller (`worker.pipeline.canceller.Canceller`)."""

    def handle(self, entry: OrderEntry, *, now: float) -> bool:
        """Deliver `entry` as a cancellation if it is one (writing its outcome); else False."""
        ...
