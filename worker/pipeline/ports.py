"""The ports of the pipeline services: what a service needs of a store or of Jetti.

Each service in `worker.pipeline` takes its collaborators typed by these Protocols, never by the
concrete Redis or httpx classes, so it can be tested with the in-memory fakes in `tests/fakes.py`
(mypy checks them against these Protocols) and so the import rule holds: `worker.pipeline` imports
only `worker.core` and itself. `worker.runtime` passes the concrete stores and client in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from worker.core.answers import ImportRow, Sale, SaleLookup
from worker.core.dead_entry import DeadEntry
from worker.core.ports import KeyPublisher
from worker.core.reconcile_rules import ConfirmCandidate
from worker.core.records import Attempt, Claim, Finish, OrderEntry, Version
from worker.core.states import DeadReason, FinishReply, OrderState

__all__ = ["KeyPublisher"]

# --- processor and canceller ports ---

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
    ) -> list[Claim]:
        """Lock and begin every `(order_key, lock token)`; one `Claim` per order begun."""
        ...

    def finish_batch(
        self,
        items: Sequence[Finish],
        *,
        lock_head_tail: tuple[str, str],
        now: float,
        also: Callable[[Any], None] | None = None,
    ) -> list[FinishReply]:
        """Write every outcome, finish marker and lock release; one named reply per item."""
        ...

    def attempts(self, order_key: str) -> list[Attempt]:
        """The order's attempt history, oldest first."""
        ...


class CancelLedger(Protocol):
    """The single-order writes the canceller makes (`worker.store.settle.SettleLedger`)."""

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


class TokenBucket(Protocol):
    """A fleet token bucket (`RateLimiter` for imports, `ApiThrottle` for sync-API calls)."""

    def acquire(self) -> float:
        """Take one token: 0 when taken, else the seconds until one may be."""
        ...

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


# --- reconciler, replayer and maintenance ports ---


class RoleLeader(Protocol):
    """The fleet's leases on periodic roles (`worker.store.leases.Leader`)."""

    def try_lead(self, role: str, *, holder: str, ttl_s: float) -> bool:
        """Become or stay the leader of `role` for `ttl_s`; True while `holder` leads."""
        ...


class BatchPublisher(Protocol):
    """A publisher whose batch size a caller may override (`worker.publisher.Publisher`)."""

    def publish(self, order_keys: Sequence[str], *, batch_size: int | None = None) -> int:
        """Publish the keys, `batch_size` to a message; returns the number of messages sent."""
        ...


class MaintenanceLedger(Protocol):
    """What the pump and the sweeper do to the ledger (`worker.store.ledger.Ledger`)."""

    def pop_due_retries(self, *, now: float, limit: int) -> list[str]:
        """Take up to `limit` due keys off the retry schedule, set PENDING."""
        ...

    def mark_republished(self, order_keys: Sequence[str], *, now: float) -> None:
        """Refresh the state time of re-published orders still PENDING or SUBMITTING."""
        ...

    def stuck(self, state: OrderState, *, older_than: float, limit: int) -> list[str]:
        """Up to `limit` keys in `state` since before `older_than`, oldest first."""
        ...

    def shed_settled(self, *, now: float, limit: int) -> int:
        """Shed up to `limit` settled orders to tombstones; returns how many."""
        ...


class ReconcileLedger(Protocol):
    """The ledger reads and settle operations of the reconciler (`worker.store.settle`)."""

    def get(self, order_key: str) -> OrderEntry | None:
        """The order's entry, None when unknown."""
        ...

    def get_many(self, order_keys: Sequence[str]) -> list[OrderEntry | None]:
        """Entries of `order_keys` (None for unknown keys)."""
        ...

    def attempts(self, order_key: str) -> list[Attempt]:
        """The order's recorded attempts, oldest first."""
        ...

    def confirm_many(self, items: Sequence[tuple[str, str]], *, now: float) -> list[str]:
        """SUBMITTED -> CONFIRMED for each (key, payload hash) still as given; the keys done."""
        ...

    def reject_sent(
        self,
        order_key: str,
        *,
        payload_hash: str,
        reason: DeadReason,
        error: str,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        """DEAD with `reason` if `payload_hash` is still the one last sent (compare-and-set)."""
        ...

    def repair(self, order_key: str, *, payload_hash: str, now: float, max_repairs: int = 3) -> int:
        """Re-arm to resend: 1 re-armed, 0 moved on, -1 repaired `max_repairs` times already."""
        ...


class DeadLetterBook(Protocol):
    """Reading and writing dead letters (`worker.store.dead_letters.DeadLetters`)."""

    def get(self, order_key: str) -> DeadEntry | None:
        """The order's dead letter, None when there is none."""
        ...

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
        """Write (or overwrite) the order's dead letter."""
        ...


class ReconcileStatePort(Protocol):
    """The reconciler's own state (`worker.store.reconcile_state.ReconcileState`)."""

    def checkpoint(self) -> float | None:
        """The end of the last window read (epoch s), None before the first."""
        ...

    def set_checkpoint(self, at: float) -> None:
        """Record that the import log was read up to `at`."""
        ...

    def oldest_submitted_at(self) -> float | None:
        """When the order longest in SUBMITTED entered it, None when none is."""
        ...

    def forget_acted(self, before: float) -> None:
        """Forget the rows acted on that were created before `before`."""
        ...

    def acted(self, row_ids: Iterable[int]) -> set[int]:
        """The ids among `row_ids` of rows that already dead-lettered their order."""
        ...

    def mark_acted(self, row_id: int, created_at: float) -> None:
        """Remember that the row dead-lettered its order."""
        ...

    def trailing_at(self) -> float | None:
        """When the trailing re-read last ran, None if never."""
        ...

    def set_trailing_at(self, at: float) -> None:
        """Record that the trailing re-read ran at `at`."""
        ...

    def submitted_before(self, cutoff: float, *, page: int) -> Iterator[list[ConfirmCandidate]]:
        """SUBMITTED members older than `cutoff`, `page` at a time, with their ledger fields."""
        ...

    def record_run(
        self,
        *,
        now: float,
        holder: str,
        interval_s: float,
        grace_s: float,
        counts: Mapping[str, int],
        error: str | None,
    ) -> None:
        """Add one run's counts and outcome to the stats."""
        ...


class ReadThrottle(Protocol):
    """The fleet's budget of sync-API reads (`worker.store.api_throttle.ApiThrottle`)."""

    def wait(self, sleep: Callable[[float], None], *, max_wait_s: float | None = None) -> bool:
        """Sleep until a token is taken; False when that would exceed `max_wait_s`."""
        ...

    def block(self, *, until: float) -> bool:
        """Stop the fleet's reads until `until` (epoch s); True when the block moved later."""
        ...


class ImportLogReader(Protocol):
    """Jetti's synchronous reads the reconciler makes (`worker.jetti.client.JettiClient`)."""

    def list_imports(
        self,
        *,
        status: str,
        created_from: float,
        created_before: float,
        offset: int = 0,
        limit: int = ...,
    ) -> list[ImportRow]:
        """One page of the import log, oldest first."""
        ...

    def find_sale(self, external_id: str) -> SaleLookup:
        """Our channel's sale with this externalId."""
        ...


class ReplayLedger(Protocol):
    """The ledger as `dlq replay` reads and re-arms it (`worker.store.ledger.Ledger`)."""

    def get(self, order_key: str) -> OrderEntry | None:
        """The order's entry, None when unknown."""
        ...

    def replay(
        self,
        order_key: str,
        *,
        now: float,
        raw: bytes | None = None,
        updated_at: datetime | None = None,
        resend_payload: bytes | None = None,
        accept_line_changes: bool = False,
    ) -> tuple[str, str]:
        """Re-arm a DEAD order; (outcome, state before)."""
        ...


class ReplayDeadLetters(Protocol):
    """The dead-letter status changes of a replay (`worker.store.dead_letters.DeadLetters`)."""

    def mark_replayed(self, order_key: str, *, now: float, if_dead_at: float | None = None) -> bool:
        """Mark the entry replayed (compare-and-set on `if_dead_at`)."""
        ...

    def mark_resolved(self, order_key: str, *, now: float) -> bool:
        """Mark the entry resolved."""
        ...


class AuditTrail(Protocol):
    """The append-only record of operator actions (`worker.store.audit.AuditLog`)."""

    def record(
        self,
        action: str,
        *,
        actor: str,
        order_keys: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
        now: float,
    ) -> str:
        """Append one record; returns its id."""
        ...
