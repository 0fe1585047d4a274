"""Ports of the upkeep services: what the reconciler, the replayer, the pump and the sweeper need.

Leases, the publisher, the ledger's maintenance, reconcile and replay operations, the reconciler's
state, the read throttle, Jetti's import log and the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from worker.core.answers import ImportRow, SaleLookup
from worker.core.dead_entry import DeadEntry
from worker.core.reconcile_rules import ConfirmCandidate
from worker.core.records import Attempt, OrderEntry
from worker.core.states import DeadReason, OrderState, RepairReply
from worker.pipeline.ports.delivery import DeadLetterStore, TokenSource


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
    """The ledger reads and settle operations of the reconciler (`worker.store.ledger.Ledger`)."""

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

    def repair(
        self, order_key: str, *, payload_hash: str, now: float, max_repairs: int = 3
    ) -> RepairReply:
        """Re-arm to resend: 1 re-armed, 0 moved on, -1 repaired `max_repairs` times already."""
        ...


class DeadLetterBook(DeadLetterStore, Protocol):
    """Reading and writing dead letters (`worker.store.dead_letters.DeadLetters`): the
    services' writes (`DeadLetterStore.put`) and a read of one entry."""

    def get(self, order_key: str) -> DeadEntry | None:
        """The order's dead letter, None when there is none."""
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


class ReadThrottle(TokenSource, Protocol):
    """The fleet's budget of sync-API reads (`worker.store.rate_limit.ApiThrottle`); the
    reconciler waits for a token with `submit.wait_for_token`."""

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
