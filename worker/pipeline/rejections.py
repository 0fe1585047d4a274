"""Import-log error rows into dead letters: the reconciler's first step (see its docstring).

Each error row names its order (externalId is the order key). A row about the payload last sent
dead-letters the order as `rejected_by_jetti` with Jetti's problem text, by the ledger's
compare-and-set first and the dead letter second, so a newer version in flight is never killed;
an error about a payload since superseded is counted and ignored. The row is then remembered as
acted on, so a replay of the same payload is not rejected again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from worker.core.answers import ImportRow
from worker.core.reconcile_rules import (
    lacks_letter,
    logged_payload,
    refers_to_last_sent,
    rejection_error,
)
from worker.core.records import Attempt, OrderEntry
from worker.core.states import DeadReason, OrderState
from worker.pipeline.ports import DeadLetterBook, ReconcileLedger, ReconcileStatePort

log = structlog.get_logger("jetti_relay.reconciler")


@dataclass
class Tally:
    """What one batch of error rows did: the orders dead-lettered, the errors found stale."""

    rejected_keys: list[str] = field(default_factory=list)
    stale_errors: int = 0


class Rejections:
    """Dead-letters the orders that error rows of Jetti's import log name (leader only)."""

    def __init__(
        self,
        *,
        holder: str,
        tolerance_s: float,
        state: ReconcileStatePort,
        ledger: ReconcileLedger,
        dead_letters: DeadLetterBook,
        count_dead: Callable[[str], None] | None,
        count_surprise: Callable[[str], None],
    ) -> None:
        self._holder = holder
        self._tolerance_s = tolerance_s
        self._state = state
        self._ledger = ledger
        self._dead = dead_letters
        self._count_dead = count_dead
        self._surprise = count_surprise

    def handle(self, rows: Sequence[ImportRow], now: float) -> Tally:
        """Dead-letter the order of each error row about the payload last sent; count the
        rows about an older payload."""
        tally = Tally()
        wanted = [r for r in rows if r.status == "error" and r.external_id]
        if not wanted:
            return tally
        # The worker sends the order key as externalId, so a row names its ledger entry.
        candidates = sorted({str(r.external_id) for r in wanted})
        entries = dict(zip(candidates, self._ledger.get_many(candidates), strict=True))
        acted = self._state.acted(row.id for row in wanted)
        done: set[str] = set()
        for row in wanted:
            if row.id in acted:
                continue  # this row already dead-lettered its order; a replay stands
            key = str(row.external_id)
            entry = entries.get(key)
            if entry is None or key in done:
                continue
            verdict = refers_to_last_sent(row, entry, tolerance_s=self._tolerance_s)
            if verdict is None:
                if self._unlettered(entry, row) and self._reject(entry, row, now, cas=False):
                    done.add(key)  # an earlier pass died between its ledger write and the letter
                continue
            if not verdict:
                tally.stale_errors += 1
                continue
            if self._reject(entry, row, now):
                done.add(key)
                tally.rejected_keys.append(key)
                if entry.state is OrderState.CONFIRMED:
                    # Its error row showed up after the grace period (reliability #16).
                    self._surprise("error_after_confirmed")
        return tally

    def _unlettered(self, entry: OrderEntry, row: ImportRow) -> bool:
        """The order is DEAD by an import-log rejection no later than `row`, and no dead letter
        was written since it went DEAD: a pass crashed after the ledger write
        (`worker.core.reconcile_rules.lacks_letter`; the letter is read only for such an order)."""
        if entry.state is not OrderState.DEAD:
            return False
        return lacks_letter(entry, row, self._dead.get(entry.order_key))

    def _reject(self, entry: OrderEntry, row: ImportRow, now: float, *, cas: bool = True) -> bool:
        problem, error = rejection_error(row)
        attempt = Attempt(
            at=now,
            status=None,
            error_class="RejectedByJetti",
            excerpt=problem[:500],
            worker=self._holder,
            outcome="dead",
        )
        key = entry.order_key
        if self._reject_with(entry, error, attempt, logged_payload(row), now, cas=cas):
            self._state.mark_acted(row.id, row.created_at)
            log.warning("order_rejected_by_jetti", order_key=key, import_id=row.id, problem=problem)
            return True
        return False

    def _reject_with(
        self,
        entry: OrderEntry,
        error: str,
        attempt: Attempt,
        payload: bytes | None,
        now: float,
        *,
        cas: bool = True,
    ) -> bool:
        """The ledger's compare-and-set first, then the dead letter (`cas=False`: the CAS is
        done, only the letter is missing).

        Never the letter first: when the CAS lost (a newer version moved the order on), undoing
        that letter could resolve or overwrite one a worker wrote meanwhile for the newer
        version. A crash between the two leaves the order DEAD without a letter; the row is not
        yet marked acted on, so the next pass finds it (`_unlettered`) and writes the letter."""
        key = entry.order_key
        if cas:
            assert entry.payload_hash is not None
            if not self._ledger.reject_sent(
                key,
                payload_hash=entry.payload_hash,
                reason=DeadReason.REJECTED_BY_JETTI,
                error=error,
                now=now,
                attempt=attempt,
            ):
                # A newer version moved the order on between our read and the write: it stands.
                return False
            if self._count_dead is not None:
                self._count_dead(DeadReason.REJECTED_BY_JETTI)
        self._dead.put(
            key,
            reason=DeadReason.REJECTED_BY_JETTI,
            raw=entry.raw,
            payload=payload,
            payload_version=entry.sent_version,  # Jetti's copy of what was sent
            # The ledger's attempts, the rejection included (reject_sent recorded it).
            attempts=self._ledger.attempts(key),
            source=entry.source,
            error=error,
            now=now,
        )
        return True
