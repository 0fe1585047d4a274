"""Cancellations: a raw order with `cancelled_at` is cancelled in Jetti, not imported again.

Jetti documents no cancel flag on manual-sale; a sale is cancelled with
`POST /api/sales/{id}/cancel.json` on the synchronous API (facts §5), which needs the sale id.
The worker hands an order whose latest version carries `cancelled_at` to `Canceller.deliver`
(under the order's lock, inside its delivery), which:

1. looks the sale up by `externalId` **in our channel** (`GET /api/sales.json?where[externalId]=
   ...&where[channelId]=...`, and each row's `channelId` checked: the lookup is account-wide and
   another channel may use the same externalId), always, even when the ledger knows the sale
   id: a retry after an unknown outcome must see that its first cancel took effect;
2. **never imported**, decided from evidence, not a delay: no sale, and either nothing of the
   order could have reached Jetti (no accepted version, no import attempt with an unknown
   outcome) or Jetti's import log (`GET /api/sale-imports.json?where[externalId]=...`) shows
   the last such import as `error` -> CANCELLED locally (`cancelled_via = not_imported`), nothing
   is sent: importing an order only to cancel it would start fulfilment for nothing. While the
   import may still be applied (no verdict in the log yet, or a `success` row but no sale
   visible) it is a retry within the retry budget, then a dead letter saying so;
3. a sale already cancelled (`cancelled`, or `cancellationStatus` partial/full: the documented
   signal) -> CANCELLED; else POSTs the cancel (the fleet's sync-write budget: the import
   limiter in sync mode, its own 1/s bucket in async mode) -> CANCELLED (`cancelled_via =
   jetti`), with the sale id recorded.

Cancelling needs JETTI_RELAY_API_TOKEN and JETTI_RELAY_CHANNEL_ID (async mode too): without
either, a cancellation is dead-lettered `rejected`, saying which is missing.

Errors take the import path's handling, decided by the same `worker.core.outcome.settle`: 429
blocks that budget and waits (no attempt spent), 401/403 trip the fleet breaker, 5xx/timeouts
retry with the same backoff policy and end as `retries_exhausted`/`deadline`, another 4xx
dead-letters as `rejected`. A newer version that
arrives meanwhile is published again, as after an import.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from worker.core.answers import ImportRow
from worker.core.build import cancellation
from worker.core.contract import RawOrder
from worker.core.errors import JettiUnavailable
from worker.core.outcome import (
    ANSWER_ERRORS,
    AnswerError,
    Backoff,
    Block,
    DeadLetter,
    Outcome,
    Sent,
    Submission,
    Trip,
    Wait,
    WaitReason,
    error_attempt,
    settle,
)
from worker.core.policy import RetryPolicy
from worker.core.reconcile_rules import DEFAULT_TOLERANCE_S, canonical_hash
from worker.core.records import Attempt, OrderEntry
from worker.core.states import DeadReason
from worker.pipeline.ports import (
    BatchPublisher,
    Breaker,
    CancelLedger,
    DeadLetterStore,
    JettiCancels,
    StatsCounters,
    TokenBucket,
)
from worker.pipeline.submit import wait_for_token

__all__ = ["CancelConfig", "Canceller", "cancellation"]

log = structlog.get_logger("jetti_relay.cancel")

# Starts the excerpt of every attempt a cancel records: `_last_reach` tells them from imports'.
CANCEL_EXCERPT_PREFIX = "cancel: "


@dataclass(frozen=True)
class CancelConfig:
    """The numbers the cancel path needs, from Settings."""

    worker_id: str
    max_token_wait_s: float
    breaker_probe_s: float
    retry: RetryPolicy
    # An import-log row's `createdAt` may precede our own time of sending by clock skew and
    # the request's duration (as in the reconciler).
    tolerance_s: float = DEFAULT_TOLERANCE_S


class Canceller:
    """Cancels orders in Jetti with the import path's retry, rate-limit and dead-letter rules."""

    def __init__(
        self,
        *,
        config: CancelConfig,
        ledger: CancelLedger,
        dead_letters: DeadLetterStore,
        jetti: JettiCancels,
        writes: TokenBucket,
        reads: TokenBucket,
        breaker: Breaker,
        publisher: BatchPublisher,
        stats: StatsCounters,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = config
        self._ledger = ledger
        self._dead = dead_letters
        self._jetti = jetti
        self._writes = writes
        self._reads = reads
        self._breaker = breaker
        self._publisher = publisher
        self._stats = stats
        self._clock = clock
        self._rand = rand
        self._sleep = sleep

    def handle(self, entry: OrderEntry, *, now: float) -> bool:
        """Deliver `entry` as a cancellation if it is one; False (nothing done) otherwise."""
        order = cancellation(entry)
        if order is None:
            return False
        self.deliver(entry, order, now=now)
        return True

    def deliver(self, entry: OrderEntry, order: RawOrder, *, now: float) -> None:
        """Cancel the order in Jetti (or locally when Jetti never had it); every outcome is
        written to the ledger before returning."""
        if not self._jetti.has_api_token:
            self._dead_letter(
                entry,
                DeadReason.REJECTED,
                "cannot cancel in Jetti without an API token (JETTI_RELAY_API_TOKEN)",
                now=now,
            )
            return
        if self._jetti.channel_id is None:
            # The lookup is account-wide; without our channel it could find (and cancel)
            # another channel's sale with the same externalId (reliability #4a).
            self._dead_letter(
                entry,
                DeadReason.REJECTED,
                "cannot cancel in Jetti without a channel id (JETTI_RELAY_CHANNEL_ID): the sale "
                "lookup must be limited to our channel",
                now=now,
            )
            return
        if not self._breaker.allow(now=now):
            self._wait(entry, due_at=now + self._cfg.breaker_probe_s, why=WaitReason.BREAKER_OPEN)
            return
        budget = self._reads
        try:
            # Always read the sale before a cancel POST, even with the ledger's sale id: a
            # retry after an unknown outcome must not cancel twice (each POST creates return
            # objects, reliability #4c).
            if not self._take(self._reads, entry):
                return
            lookup = self._jetti.find_sale(entry.order_key)
            if lookup.others:
                self._stats.count_surprise("sale_other_channel")
                log.warning("sale_lookup_other_channel", rows_skipped=lookup.others)
            if lookup.unverified:
                self._stats.count_surprise("sale_without_channel")
                log.warning("sale_lookup_without_channel", rows_skipped=lookup.unverified)
            sale = lookup.sale
            if sale is None:
                self._without_sale(entry)
                return
            if sale.cancelled:
                if not sale.cancelled_flag and sale.cancellation_status == "partial":
                    # Someone cancelled part of it in Jetti: taken as cancelled, not completed.
                    self._stats.count_surprise("sale_partially_cancelled")
                    log.warning("sale_partially_cancelled", sale_id=sale.id)
                self._cancelled(entry, sale_id=sale.id, via="jetti", status=None)
                return
            if entry.sale_id is not None and entry.sale_id != sale.id:
                log.warning("sale_id_changed", ledger_sale_id=entry.sale_id, sale_id=sale.id)
            sale_id = sale.id
            budget = self._writes
            if not self._take(self._writes, entry):
                return
            shown = self._jetti.cancel_sale(sale_id)
            if shown is not None and not shown.cancelled:
                # The answer does not show the cancel: a retry could not tell it took effect.
                self._stats.count_surprise("cancel_not_shown")
                log.warning("cancel_not_shown", sale_id=sale_id)
        except ANSWER_ERRORS as exc:
            self._apply(entry, self._settle(entry, exc), budget)
        else:
            self._apply(entry, self._settle(entry, None), budget, sale_id=sale_id)

    # --- steps ------------------------------------------------------------------------
    def _without_sale(self, entry: OrderEntry) -> None:
        """Our channel has no sale for the order: cancel locally when the evidence says Jetti
        never had it; else raise JettiUnavailable (retried within the retry budget, then a
        dead letter saying why) while an import may still be applied (reliability #4b).

        Evidence, not a fixed delay: nothing that could have reached Jetti (no accepted version
        and no import attempt with an unknown outcome), or Jetti's import log shows the last
        such import as `error`. A `success`/`skipped` row means a sale exists or existed.
        """
        reached_at = self._last_reach(entry)
        if reached_at is None:
            self._cancelled(entry, sale_id=None, via="not_imported", status=None)
            return
        if not self._take(self._reads, entry):
            return
        rows = self._jetti.imports_of(entry.order_key)
        if any(r.status in ("success", "skipped") for r in rows):
            raise JettiUnavailable(
                None,
                "Jetti's import log shows the order imported, but our channel has no "
                "sale for it (yet)",
            )
        unknown_later = entry.submitted_at is None or reached_at > entry.submitted_at
        if any(self._failed_import(entry, row, reached_at, unknown_later) for row in rows):
            self._cancelled(entry, sale_id=None, via="not_imported", status=None)
            return
        raise JettiUnavailable(
            None,
            "no sale in Jetti and its import log has no verdict on the last import yet "
            "(it may still be queued)",
        )

    def _last_reach(self, entry: OrderEntry) -> float | None:
        """When an import of the order last may have reached Jetti (epoch s): the last accepted
        submission or the last import attempt with an unknown outcome; None if neither."""
        times = [entry.submitted_at] if entry.sent_version is not None else []
        times += [
            a.at
            for a in self._ledger.attempts(entry.order_key)
            if a.error_class == "OutcomeUnknown"
            and not (a.excerpt or "").startswith(CANCEL_EXCERPT_PREFIX.rstrip())
        ]
        return max((t for t in times if t is not None), default=None)

    def _failed_import(
        self, entry: OrderEntry, row: ImportRow, reached_at: float, unknown_later: bool
    ) -> bool:
        """True when `row` is Jetti's `error` verdict on the last import that may have reached
        it: logged after it (less `tolerance_s` for clock skew) and, when the row carries its
        payload and the last import is the accepted one, about that payload."""
        if row.status != "error" or row.created_at < reached_at - self._cfg.tolerance_s:
            return False
        if row.payload is not None and not unknown_later and entry.payload_hash:
            return canonical_hash(row.payload) == entry.payload_hash
        return True

    def _take(self, budget: TokenBucket, entry: OrderEntry) -> bool:
        """A token within `max_token_wait_s`, else back to the schedule (no attempt spent)."""
        wait_s = wait_for_token(budget, max_wait_s=self._cfg.max_token_wait_s, sleep=self._sleep)
        if wait_s > 0:
            self._wait(entry, due_at=self._clock() + wait_s, why=WaitReason.RATE_LIMITED_LOCALLY)
            return False
        return True

    def _cancelled(
        self, entry: OrderEntry, *, sale_id: int | None, via: str, status: int | None
    ) -> None:
        now = self._clock()
        attempt = Attempt(
            at=now,
            status=status,
            error_class=None,
            excerpt=None,
            worker=self._cfg.worker_id,
            outcome=f"cancelled_{via}",
        )
        newer = self._ledger.mark_cancelled(
            entry.order_key,
            version=entry.version,
            sale_id=sale_id,
            via=via,
            now=now,
            attempt=attempt,
        )
        if entry.dead_reason is not None or entry.replayed:
            self._dead.mark_resolved(entry.order_key, now=now)
        log.info("order_cancelled", via=via, sale_id=sale_id, newer_version_waiting=newer)
        if newer:
            self._publisher.publish([entry.order_key])

    # --- outcomes -----------------------------------------------------------------------
    def _settle(self, entry: OrderEntry, error: AnswerError | None) -> Outcome:
        return settle(
            error,
            entry=entry,
            policy=self._cfg.retry,
            breaker_probe_s=self._cfg.breaker_probe_s,
            now=self._clock(),
            rand=self._rand,
        )

    def _apply(
        self,
        entry: OrderEntry,
        outcome: Outcome,
        budget: TokenBucket,
        *,
        sale_id: int | None = None,
    ) -> None:
        """Write `worker.core.outcome.settle`'s decision on a cancel call (`budget`: the token
        bucket the call used, which a 429 blocks)."""
        if isinstance(outcome, Sent):
            self._breaker.record_success()
            self._stats.count_submission(_cancel_label(outcome.label), 200)
            self._cancelled(entry, sale_id=sale_id, via="jetti", status=200)
            return
        error = outcome.error
        assert error is not None
        now = self._clock()
        status = getattr(error, "status", None)
        attempt = error_attempt(
            error, at=now, worker=self._cfg.worker_id, excerpt_prefix=CANCEL_EXCERPT_PREFIX
        )
        if outcome.label is not None:
            self._stats.count_submission(_cancel_label(outcome.label), status)
        if isinstance(outcome, Wait):
            if isinstance(outcome.effect, Block):
                budget.block(until=outcome.effect.until)
            elif isinstance(outcome.effect, Trip):
                self._breaker.trip(
                    reason=outcome.effect.reason, status=outcome.effect.status, now=now
                )
            if outcome.retry_after_note is not None:
                self._stats.count_surprise(f"retry_after_{outcome.retry_after_note}")
            self._wait(entry, due_at=outcome.due_at, why=outcome.why, attempt=attempt)
        elif isinstance(outcome, Backoff):
            self._ledger.schedule_retry(
                entry.order_key, due_at=outcome.due_at, spend_attempt=True, now=now, attempt=attempt
            )
            log.info(
                "cancel_retry_scheduled",
                error=type(error).__name__,
                status=status,
                retry_in_s=round(outcome.due_at - now, 3),
            )
        elif isinstance(outcome, DeadLetter):
            error_text = f"{CANCEL_EXCERPT_PREFIX}{error}"
            self._dead_letter(entry, outcome.reason, error_text, now=now, attempt=attempt)

    def _wait(
        self, entry: OrderEntry, *, due_at: float, why: WaitReason, attempt: Attempt | None = None
    ) -> None:
        self._ledger.schedule_retry(
            entry.order_key, due_at=due_at, spend_attempt=False, now=self._clock(), attempt=attempt
        )
        log.info("cancel_waiting", why=str(why), retry_in_s=round(due_at - self._clock(), 3))

    def _dead_letter(
        self,
        entry: OrderEntry,
        reason: DeadReason,
        error: str,
        *,
        now: float,
        attempt: Attempt | None = None,
    ) -> None:
        attempts = [*self._ledger.attempts(entry.order_key), *([attempt] if attempt else [])]
        self._dead.put(
            entry.order_key,
            reason=reason,
            raw=entry.raw,
            payload=None,
            attempts=attempts,
            source=entry.source,
            error=error,
            now=now,
        )
        newer = self._ledger.mark_dead(
            entry.order_key, reason=reason, now=now, attempt=attempt, version=entry.version
        )
        self._stats.count_dead(reason)
        log.warning("cancel_dead_lettered", reason=str(reason), error=error[:500])
        if newer:
            # A newer version arrived meanwhile: PENDING on a fresh budget, not DEAD; the dead
            # letter is about the superseded version.
            self._dead.mark_resolved(entry.order_key, now=now)
            log.info("cancel_dead_superseded", reason=str(reason))
            self._publisher.publish([entry.order_key])


def _cancel_label(label: Submission) -> str:
    """The submission counter of a cancel call: `cancel_` and the outcome. A cancel that got
    no answer has always been counted as `cancel_retry`, and dashboards read it so."""
    return "cancel_" + (Submission.RETRY if label is Submission.UNKNOWN else label)
