"""Handling one order key end to end: lock, ledger, transform, limiter, submit, outcome.

This is the pipeline's one decision-making adapter. The Celery task is a thin shell around
`OrderProcessor.handle_batch`; everything here takes its collaborators as arguments (the
`Runtime` wires the real ones), and the clock and randomness are injected.

    lock ─► begin_delivery ─► parse + transform (pure) ─► lines check ─► breaker ─► token
         ─► submit ─► mark_submitted (re-publish when a newer version arrived meanwhile)
                  ├─ RateLimited ─────► fleet block + reschedule (no attempt spent)
                  ├─ ConfigurationError ► trip the breaker + reschedule (no attempt spent)
                  ├─ RetryableError ──► policy.decide ─► retry schedule | dead letter
                  └─ Rejected ───────► dead letter `rejected`
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from worker.breaker import Breaker
from worker.contract import parse_raw_order
from worker.deadletters import DeadLetters
from worker.errors import (
    ConfigurationError,
    InvalidOrder,
    JettiRelayError,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryableError,
    TransformError,
)
from worker.jetti import JettiClient
from worker.jsonio import loads_document
from worker.ledger import DeliveryAction, Ledger, OrderEntry
from worker.locks import OrderLock
from worker.policy import GiveUp, RetryPolicy, decide
from worker.publisher import Publisher
from worker.ratelimit import RateLimiter
from worker.records import Attempt
from worker.replay import stored_built
from worker.rules import Rules
from worker.states import DeadReason
from worker.stats import Stats
from worker.transform import Built, transform

log = structlog.get_logger("jetti_relay.processor")


@dataclass(frozen=True)
class ProcessorConfig:
    """The numbers the processor needs, taken from Settings by the runtime."""

    worker_id: str
    lock_ttl_s: float
    lock_busy_retry_s: float
    max_unfinished_deliveries: int
    max_token_wait_s: float
    blocked_default_s: float
    breaker_probe_s: float
    max_units_per_line: int
    auto_connect_default: bool | None
    allow_line_changes: bool
    retry: RetryPolicy


class OrderProcessor:
    """Submits orders named by key; every outcome is written to the ledger before returning."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        ledger: Ledger,
        dead_letters: DeadLetters,
        lock: OrderLock,
        limiter: RateLimiter,
        breaker: Breaker,
        jetti: JettiClient,
        publisher: Publisher,
        rules: Rules,
        stats: Stats,
        executor: ThreadPoolExecutor,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = config
        self._ledger = ledger
        self._dead = dead_letters
        self._lock = lock
        self._limiter = limiter
        self._breaker = breaker
        self._jetti = jetti
        self._publisher = publisher
        self._rules = rules
        self._stats = stats
        self._executor = executor
        self._clock = clock
        self._rand = rand
        self._sleep = sleep

    # --- batch ------------------------------------------------------------------------
    def handle_batch(self, order_keys: Sequence[str], *, task_id: str) -> None:
        """Handle every key, overlapping their I/O; one key's failure never affects another."""
        unique = list(dict.fromkeys(order_keys))
        if len(unique) == 1:
            self._handle_safely(unique[0], task_id)
            return
        futures = [self._executor.submit(self._handle_safely, key, task_id) for key in unique]
        for future in futures:
            future.result()

    def _handle_safely(self, order_key: str, task_id: str) -> None:
        structlog.contextvars.bind_contextvars(order_key=order_key, task_id=task_id)
        try:
            self.handle(order_key, task_id=task_id)
        except Exception:
            # Infrastructure failures (Redis down) leave the order in a non-final state; the
            # sweeper re-publishes it. Never let one order take the batch down.
            log.exception("order_handling_failed")
        finally:
            structlog.contextvars.unbind_contextvars("order_key", "task_id", "attempt", "delivery")

    # --- one order --------------------------------------------------------------------
    def handle(self, order_key: str, *, task_id: str) -> None:
        """Handle one order key under its lock."""
        token = self._lock.acquire(order_key, ttl_s=self._cfg.lock_ttl_s)
        if token is None:
            # Another worker holds the order. It re-reads the version after submitting, so this
            # message only needs to come back later, without spending an attempt.
            self._ledger.reschedule(order_key, due_at=self._clock() + self._cfg.lock_busy_retry_s)
            log.info("order_locked_elsewhere", retry_in_s=self._cfg.lock_busy_retry_s)
            return
        try:
            self._handle_locked(order_key, task_id)
        finally:
            self._lock.release(order_key, token)

    def _handle_locked(self, order_key: str, task_id: str) -> None:
        now = self._clock()
        delivery = self._ledger.begin_delivery(
            order_key,
            task_id=task_id,
            worker=self._cfg.worker_id,
            now=now,
            max_unfinished=self._cfg.max_unfinished_deliveries,
        )
        entry = delivery.entry
        if delivery.action is DeliveryAction.UNKNOWN or entry is None:
            log.warning("order_unknown")
            return
        if delivery.action in (DeliveryAction.NOTHING_TO_DO, DeliveryAction.NOT_DUE):
            log.info("order_nothing_to_do", action=str(delivery.action), state=str(entry.state))
            return
        if delivery.action is DeliveryAction.CRASH_LOOP:
            self._dead_letter(
                entry, DeadReason.WORKER_LOST, "deliveries started and never finished", now=now
            )
            return
        structlog.contextvars.bind_contextvars(
            attempt=entry.attempts + 1, delivery=entry.deliveries_started
        )
        try:
            self._deliver(entry, now)
        finally:
            self._ledger.finish_delivery(order_key, now=self._clock())

    def _deliver(self, entry: OrderEntry, now: float) -> None:
        built = self._build(entry, now)
        if built is None:
            return
        if entry.payload_hash == built.payload_hash:
            # A new raw version that yields the same payload: Jetti already has it.
            self._accepted(entry, built, sale_id=entry.sale_id, status=None, sent=False)
            return
        dropped = sorted(set(entry.line_ids) - set(built.line_ids))
        if dropped and not self._cfg.allow_line_changes:
            self._dead_letter(
                entry,
                DeadReason.LINES_CHANGED,
                "update drops line ids already sent: " + ", ".join(dropped[:20]),
                now=now,
                payload=built.body,
            )
            return
        if not self._breaker.allow(now=now):
            self._wait(entry, due_at=now + self._cfg.breaker_probe_s, why="breaker_open")
            return
        if not self._take_token(entry):
            return
        self._submit(entry, built)

    def _build(self, entry: OrderEntry, now: float) -> Built | None:
        if entry.resend_payload is not None:  # `dlq replay --resend-stored`: send it as stored
            return stored_built(entry.resend_payload)
        if entry.raw is None:
            self._dead_letter(entry, DeadReason.INVALID_INPUT, "raw order body missing", now=now)
            return None
        try:
            order = parse_raw_order(loads_document(entry.raw))
        except InvalidOrder as exc:
            self._dead_letter(entry, DeadReason.INVALID_INPUT, str(exc), now=now)
            return None
        try:
            return transform(
                order,
                self._rules,
                max_units_per_line=self._cfg.max_units_per_line,
                auto_connect_default=self._cfg.auto_connect_default,
            )
        except TransformError as exc:
            self._dead_letter(entry, DeadReason.TRANSFORM_ERROR, str(exc), now=now)
            return None

    def _take_token(self, entry: OrderEntry) -> bool:
        """Wait briefly for a fleet token; reschedule (no attempt) when the wait would be long."""
        waited_s = 0.0
        while True:
            wait_s = self._limiter.acquire()
            if wait_s <= 0:
                return True
            if waited_s + wait_s > self._cfg.max_token_wait_s:
                self._wait(entry, due_at=self._clock() + wait_s, why="rate_limited_locally")
                return False
            self._sleep(wait_s)
            waited_s += wait_s

    def _submit(self, entry: OrderEntry, built: Built) -> None:
        try:
            result = self._jetti.submit(built.body)
        except RateLimited as exc:
            now = self._clock()
            pause_s = (
                exc.retry_after_s if exc.retry_after_s is not None else self._cfg.blocked_default_s
            )
            self._limiter.block(until=now + pause_s)
            self._stats.count_submission("rate_limited", exc.status)
            self._wait(entry, due_at=now + pause_s, why="rate_limited", attempt=self._attempt(exc))
        except ConfigurationError as exc:
            now = self._clock()
            self._breaker.trip(reason=exc.detail, status=exc.status, now=now)
            self._stats.count_submission("config_error", exc.status)
            log.error("fleet_paused", status=exc.status)
            self._wait(
                entry,
                due_at=now + self._cfg.breaker_probe_s,
                why="breaker_open",
                attempt=self._attempt(exc),
            )
        except Rejected as exc:
            self._stats.count_submission("rejected", exc.status)
            self._dead_letter(
                entry,
                DeadReason.REJECTED,
                str(exc),
                now=self._clock(),
                payload=built.body,
                attempt=self._attempt(exc),
            )
        except RetryableError as exc:
            self._retry(entry, built, exc)
        else:
            self._breaker.record_success()
            self._stats.count_submission("accepted", result.status)
            self._accepted(entry, built, sale_id=result.sale_id, status=result.status, sent=True)

    def _retry(self, entry: OrderEntry, built: Built, exc: RetryableError) -> None:
        now = self._clock()
        status = getattr(exc, "status", None)
        self._stats.count_submission(
            "unknown" if isinstance(exc, OutcomeUnknown) else "retry", status
        )
        attempt_no = entry.attempts + 1
        decision = decide(
            attempt=attempt_no,
            first_failure_at=entry.first_failure_at or now,
            now=now,
            error=exc,
            settings=self._cfg.retry,
            rand=self._rand,
        )
        attempt = self._attempt(exc)
        if isinstance(decision, GiveUp):
            self._dead_letter(
                entry, decision.reason, str(exc), now=now, payload=built.body, attempt=attempt
            )
            return
        self._ledger.schedule_retry(
            entry.order_key,
            due_at=decision.due_at,
            spend_attempt=decision.spend_attempt,
            now=now,
            attempt=attempt,
        )
        log.info(
            "order_retry_scheduled",
            error=type(exc).__name__,
            status=status,
            retry_in_s=round(decision.due_at - now, 3),
        )

    # --- outcomes ---------------------------------------------------------------------
    def _accepted(
        self,
        entry: OrderEntry,
        built: Built,
        *,
        sale_id: int | None,
        status: int | None,
        sent: bool,
    ) -> None:
        now = self._clock()
        attempt = (
            Attempt(
                at=now,
                status=status,
                error_class=None,
                excerpt=None,
                worker=self._cfg.worker_id,
                outcome="submitted",
            )
            if sent
            else None
        )
        newer = self._ledger.mark_submitted(
            entry.order_key,
            version=entry.version,
            payload_hash=built.payload_hash,
            line_ids=built.line_ids,
            sale_id=sale_id,
            now=now,
            attempt=attempt,
        )
        if entry.dead_reason is not None or entry.replayed:
            self._dead.mark_resolved(entry.order_key, now=now)
        if sent:
            self._stats.observe_latency(now - entry.enqueued_at)
        log.info("order_submitted", status=status, sent=sent, newer_version_waiting=newer)
        if newer:
            self._publisher.publish([entry.order_key])

    def _wait(
        self, entry: OrderEntry, *, due_at: float, why: str, attempt: Attempt | None = None
    ) -> None:
        """Back to the retry schedule without spending an attempt."""
        self._ledger.schedule_retry(
            entry.order_key, due_at=due_at, spend_attempt=False, now=self._clock(), attempt=attempt
        )
        log.info("order_waiting", why=why, retry_in_s=round(due_at - self._clock(), 3))

    def _dead_letter(
        self,
        entry: OrderEntry,
        reason: DeadReason,
        error: str,
        *,
        now: float,
        payload: bytes | None = None,
        attempt: Attempt | None = None,
    ) -> None:
        """Store the dead letter, then mark the ledger: a crash in between repeats, never loses."""
        attempts = [*self._ledger.attempts(entry.order_key), *([attempt] if attempt else [])]
        self._dead.put(
            entry.order_key,
            reason=reason,
            raw=entry.raw,
            payload=payload,
            attempts=attempts,
            source=entry.source,
            error=error,
            now=now,
        )
        self._ledger.mark_dead(entry.order_key, reason=reason, now=now, attempt=attempt)
        self._stats.count_dead(reason)
        log.warning("order_dead_lettered", reason=str(reason), error=error[:500])

    def _attempt(self, exc: JettiRelayError) -> Attempt:
        return Attempt(
            at=self._clock(),
            status=getattr(exc, "status", None),
            error_class=type(exc).__name__,
            excerpt=str(exc)[:500],
            worker=self._cfg.worker_id,
            outcome="error",
        )
