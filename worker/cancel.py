"""Cancellations: a raw order with `cancelled_at` is cancelled in Jetti, not imported again.

Jetti documents no cancel flag on manual-sale; a sale is cancelled with
`POST /api/sales/{id}/cancel.json` on the synchronous API (facts §5), which needs the sale id.
The worker hands an order whose latest version carries `cancelled_at` to `Canceller.deliver`
(under the order's lock, inside its delivery), which:

1. finds the sale id: the ledger's (sync mode records it), else
   `GET /api/sales.json?where[externalId]=...` (one read from the fleet's read budget);
2. **never imported**: no sale in Jetti and no version of the order ever accepted by Jetti (or
   one accepted more than `RECONCILE_GRACE_S` ago, which Jetti would have applied by now: its log
   rejected it) -> CANCELLED locally (`cancelled_via = not_imported`), nothing is sent: there is
   nothing to cancel and importing an order only to cancel it would start fulfilment for nothing.
   If a version was accepted (async) within that grace and its sale is not there yet, Jetti may
   still have it queued: that is a retry, so the sale is cancelled once it exists (or the order is
   dead-lettered when retries run out);
3. a sale already cancelled -> CANCELLED; else POSTs the cancel (the fleet's sync-write budget:
   the import limiter in sync mode, its own 1/s bucket in async mode) -> CANCELLED
   (`cancelled_via = jetti`), with the sale id recorded.

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

import redis
import structlog

from worker.apithrottle import ApiThrottle
from worker.breaker import Breaker
from worker.contract import RawOrder, parse_raw_order
from worker.deadletters import DeadLetters
from worker.errors import (
    ConfigurationError,
    InvalidOrder,
    JettiRelayError,
    JettiUnavailable,
    RateLimited,
    Rejected,
    RetryableError,
)
from worker.jetti import JettiClient
from worker.jsonio import loads_document
from worker.keys import Keys
from worker.policy import GiveUp, RetryPolicy, decide
from worker.publisher import Publisher
from worker.records import Attempt, OrderEntry
from worker.settings import Settings
from worker.settle import SettleLedger
from worker.states import DeadReason
from worker.stats import Stats

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
    # How long after an accepted async import its sale may still be missing (queued in Jetti).
    import_grace_s: float = 300.0


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
        if not self._breaker.allow(now=now):
            self._wait(entry, due_at=now + self._cfg.breaker_probe_s, why="breaker_open")
            return
        budget: Budget = self._reads
        try:
            sale_id = entry.sale_id
            if sale_id is None:
                if not self._take(self._reads, entry):
                    return
                sale = self._jetti.find_sale(entry.order_key)
                if sale is None:
                    sent = entry.submitted_at if entry.sent_version is not None else None
                    if sent is None or now - sent > self._cfg.import_grace_s:
                        # Never accepted, or accepted long enough ago that Jetti would have
                        # applied it (an import its log rejected): nothing to cancel there.
                        self._cancelled(entry, sale_id=None, via="not_imported", status=None)
                        return
                    raise JettiUnavailable(
                        None, "sale not in Jetti yet (the accepted import may still be queued)"
                    )
                if sale.cancelled:
                    self._cancelled(entry, sale_id=sale.id, via="jetti", status=None)
                    return
                sale_id = sale.id
            budget = self._writes
            if not self._take(self._writes, entry):
                return
            self._jetti.cancel_sale(sale_id)
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
                entry, DeadReason.REJECTED, f"cancel: {exc}", now=self._clock(),
                attempt=self._attempt(exc),
            )
        except RetryableError as exc:
            self._retry(entry, exc)
        else:
            self._breaker.record_success()
            self._stats.count_submission("cancel_accepted", 200)
            self._cancelled(entry, sale_id=sale_id, via="jetti", status=200)

    # --- steps ------------------------------------------------------------------------
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
            at=now, status=status, error_class=None, excerpt=None,
            worker=self._cfg.worker_id, outcome=f"cancelled_{via}",
        )
        newer = self._ledger.mark_cancelled(
            entry.order_key, version=entry.version, sale_id=sale_id, via=via, now=now,
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
        log.info("cancel_retry_scheduled", error=type(exc).__name__, status=status,
                 retry_in_s=round(decision.due_at - now, 3))

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
            entry.order_key, reason=reason, raw=entry.raw, payload=None, attempts=attempts,
            source=entry.source, error=error, now=now,
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


def build_canceller(
    settings: Settings,
    *,
    client: redis.Redis[bytes],
    keys: Keys,
    worker_id: str,
    jetti: JettiClient,
    limiter: Budget,
    breaker: Breaker,
    dead_letters: DeadLetters,
    publisher: Publisher,
    stats: Stats,
) -> Canceller:
    """The cancel path for a worker process. In sync mode cancels share the import limiter
    (one write budget per token); in async mode they take their own sync-write bucket."""
    writes: Budget = limiter
    if settings.jetti_mode != "sync":
        writes = ApiThrottle(client, keys, kind="write", rate_per_s=settings.jetti_write_rate_per_s)
    return Canceller(
        config=CancelConfig(
            worker_id=worker_id,
            max_token_wait_s=settings.max_token_wait_s,
            blocked_default_s=settings.blocked_default_s,
            breaker_probe_s=settings.breaker_probe_s,
            retry=RetryPolicy.from_settings(settings),
            import_grace_s=settings.reconcile_grace_s,
        ),
        ledger=SettleLedger(
            client, keys, body_ttl_s=settings.body_ttl_s, tombstone_ttl_s=settings.tombstone_ttl_s
        ),
        dead_letters=dead_letters,
        jetti=jetti,
        writes=writes,
        reads=ApiThrottle(client, keys, kind="read", rate_per_s=settings.jetti_read_rate_per_s),
        breaker=breaker,
        publisher=publisher,
        stats=stats,
    )
