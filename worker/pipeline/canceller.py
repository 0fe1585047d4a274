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

Errors take the import path's handling: 429 blocks that budget and waits (no attempt spent),
401/403 trip the fleet breaker, 5xx/timeouts retry with the same backoff policy and end as
`retries_exhausted`/`deadline`, another 4xx dead-letters as `rejected`. A newer version that
arrives meanwhile is published again, as after an import.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from worker.core.contract import RawOrder, parse_raw_order
from worker.core.errors import (
    ConfigurationError,
    InvalidOrder,
    JettiRelayError,
    JettiUnavailable,
    RateLimited,
    Rejected,
    RetryableError,
)
from worker.core.jsonio import loads_document
from worker.core.policy import GiveUp, RetryPolicy, decide
from worker.core.records import Attempt, OrderEntry
from worker.core.states import DeadReason
from worker.jetti.client import ImportRow, JettiClient
from worker.pipeline.reconciler import DEFAULT_TOLERANCE_S, canonical_hash
from worker.publisher import Publisher
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.settle import SettleLedger
from worker.store.stats import Stats

log = structlog.get_logger("jetti_relay.cancel")

# A cheap test before parsing anything. Only the key's name: producers store the original
# bytes, so the spacing around the colon (`"cancelled_at" : ...`) is theirs; the parse decides.
_MARKER = b"cancelled_at"


class Budget(Protocol):
    """A fleet token bucket (`RateLimiter`, `ApiThrottle`)."""

    def acquire(self) -> float: ...

    def block(self, *, until: float) -> bool: ...


@dataclass(frozen=True)
class CancelConfig:
    """The numbers the cancel path needs, from Settings."""

    worker_id: str
    max_token_wait_s: float
    blocked_default_s: float
    breaker_probe_s: float
    retry: RetryPolicy
    # An import-log row's `createdAt` may precede our own time of sending by clock skew and
    # the request's duration (as in the reconciler).
    tolerance_s: float = DEFAULT_TOLERANCE_S


def cancellation(entry: OrderEntry) -> RawOrder | None:
    """The parsed order when its latest version is cancelled upstream, else None.

    An order that does not parse is not a cancellation: the import path dead-letters it.
    """
    raw = entry.raw
    if raw is None or _MARKER not in raw:
        return None
    try:
        order = parse_raw_order(loads_document(raw))
    except InvalidOrder:
        return None
    return order if order.cancelled_at is not None else None


class Canceller:
    """Cancels orders in Jetti with the import path's retry, rate-limit and dead-letter rules."""

    def __init__(
        self,
        *,
        config: CancelConfig,
        ledger: SettleLedger,
        dead_letters: DeadLetters,
        jetti: JettiClient,
        writes: Budget,
        reads: Budget,
        breaker: Breaker,
        publisher: Publisher,
        stats: Stats,
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
            self._wait(entry, due_at=now + self._cfg.breaker_probe_s, why="breaker_open")
            return
        budget: Budget = self._reads
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
        except RateLimited as exc:
            at = self._clock()
            pause_s = (
                exc.retry_after_s if exc.retry_after_s is not None else self._cfg.blocked_default_s
            )
            budget.block(until=at + pause_s)
            self._stats.count_submission("cancel_rate_limited", exc.status)
            if exc.retry_after_note is not None:
                self._stats.count_surprise(f"retry_after_{exc.retry_after_note}")
            self._wait(entry, due_at=at + pause_s, why="rate_limited", attempt=self._attempt(exc))
        except ConfigurationError as exc:
            at = self._clock()
            self._breaker.trip(reason=exc.detail, status=exc.status, now=at)
            self._stats.count_submission("cancel_config_error", exc.status)
            self._wait(
                entry,
                due_at=at + self._cfg.breaker_probe_s,
                why="breaker_open",
                attempt=self._attempt(exc),
            )
        except Rejected as exc:
            self._stats.count_submission("cancel_rejected", exc.status)
            self._dead_letter(
                entry,
                DeadReason.REJECTED,
                f"cancel: {exc}",
                now=self._clock(),
                attempt=self._attempt(exc),
            )
        except RetryableError as exc:
            self._retry(entry, exc)
        else:
            self._breaker.record_success()
            self._stats.count_submission("cancel_accepted", 200)
            self._cancelled(entry, sale_id=sale_id, via="jetti", status=200)

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
            if a.error_class == "OutcomeUnknown" and not (a.excerpt or "").startswith("cancel:")
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

    def _take(self, budget: Budget, entry: OrderEntry) -> bool:
        """A token within `max_token_wait_s`, else back to the schedule (no attempt spent)."""
        waited = 0.0
        while True:
            wait_s = budget.acquire()
            if wait_s <= 0:
                return True
            if waited + wait_s > self._cfg.max_token_wait_s:
                self._wait(entry, due_at=self._clock() + wait_s, why="rate_limited_locally")
                return False
            self._sleep(wait_s)
            waited += wait_s

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

    def _retry(self, entry: OrderEntry, exc: RetryableError) -> None:
        now = self._clock()
        status = getattr(exc, "status", None)
        self._stats.count_submission("cancel_retry", status)
        decision = decide(
            attempt=entry.attempts + 1,
            first_failure_at=entry.first_failure_at or now,
            now=now,
            error=exc,
            settings=self._cfg.retry,
            rand=self._rand,
        )
        attempt = self._attempt(exc)
        if isinstance(decision, GiveUp):
            self._dead_letter(entry, decision.reason, f"cancel: {exc}", now=now, attempt=attempt)
            return
        self._ledger.schedule_retry(
            entry.order_key,
            due_at=decision.due_at,
            spend_attempt=decision.spend_attempt,
            now=now,
            attempt=attempt,
        )
        log.info(
            "cancel_retry_scheduled",
            error=type(exc).__name__,
            status=status,
            retry_in_s=round(decision.due_at - now, 3),
        )

    def _wait(
        self, entry: OrderEntry, *, due_at: float, why: str, attempt: Attempt | None = None
    ) -> None:
        self._ledger.schedule_retry(
            entry.order_key, due_at=due_at, spend_attempt=False, now=self._clock(), attempt=attempt
        )
        log.info("cancel_waiting", why=why, retry_in_s=round(due_at - self._clock(), 3))

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

    def _attempt(self, exc: JettiRelayError) -> Attempt:
        return Attempt(
            at=self._clock(),
            status=getattr(exc, "status", None),
            error_class=type(exc).__name__,
            excerpt=f"cancel: {exc}"[:500],
            worker=self._cfg.worker_id,
            outcome="error",
        )
