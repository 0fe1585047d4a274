"""Handling the order keys of one message: lock, ledger, transform, limiter, submit, outcome.

The Celery task is a thin shell around `OrderProcessor.handle_batch`; everything here takes its
collaborators as ports (`worker.pipeline.ports`; the `Runtime` wires the real ones), and the
clock, randomness and Celery's soft time limit (`stop_exceptions`) are injected.

A message's keys go through in phases, so Redis round trips are paid per message, not per order:

    claim   ── ONE script: per order, lock (SET NX PX) + begin_one; a lock held elsewhere
               reschedules the order (no attempt spent)                                 1 RTT
    decide  ── per order, pure: parse + transform (`worker.core.build`), same payload already
               accepted, lines check (`_deliver`)                                       0 RTT
    gate    ── the fleet breaker (`admit`: all / one probe / none), then N limiter tokens 2 RTT
    submit  ── every admitted order concurrently on the process's HTTP pool
               (`worker.pipeline.submit.Submitter`); each answer is settled once by
               `worker.core.outcome.settle`, the decision the canceller applies too, and
               recorded by `worker.pipeline.recorder.OutcomeRecorder`: accepted, wait (429
               block or breaker trip, no attempt spent), retry (policy.decide) or dead letter
    flush   ── ONE script: per order, the outcome, the delivery's finish marker (only with an
               outcome: a delivery without one is a strike toward the crash-loop bound), the
               lock release (token compare), plus the batch's counters in the same pipeline 1 RTT

Outcomes are only recorded (`LockedOrder.outcome`); `_flush` writes them all at once (outcome,
finish marker, unlock per order), then acts on the script's answers (`after_flush`). A dead
letter is stored before its ledger mark, so a crash in between repeats it and never loses it. A
crash anywhere leaves orders SUBMITTING with a started delivery: the sweeper re-publishes them
and the delivery markers bound a crash loop, exactly as for one order at a time. So does any
delivery that ends without a recorded outcome (an exception, the soft time limit, a failed
dead-letter write): `max_unfinished_deliveries` of them dead-letter the order as `worker_lost`.
Retryable Jetti answers are outcomes (a retry), so they spend attempts and never count as
strikes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import structlog

from worker.core.build import BuildOptions, build_payload
from worker.core.errors import ClaimFailed, InvalidOrder, TransformError
from worker.core.outcome import WaitReason
from worker.core.policy import RetryPolicy
from worker.core.records import Claim, DeliveryAction, Finish
from worker.core.rules import Rules
from worker.core.states import DeadReason
from worker.core.tracing import NOOP_TRACER, Tracer
from worker.core.transform import Built
from worker.pipeline.ports import (
    BatchLedger,
    BatchPublisher,
    Breaker,
    Cancellations,
    DeadLetterStore,
    JettiSubmit,
    LockTokens,
    StatsCounters,
    SubmitAnswer,
    TokenBucket,
)
from worker.pipeline.recorder import Batch, LockedOrder, OutcomeRecorder
from worker.pipeline.replayer import stored_built
from worker.pipeline.spans import close_spans, open_spans, traced_submit
from worker.pipeline.submit import Submitter

log = structlog.get_logger("jetti_relay.processor")


@dataclass(frozen=True)
class ProcessorConfig:
    """The numbers the processor needs, taken from Settings by the runtime."""

    worker_id: str
    lock_ttl_s: float
    lock_busy_retry_s: float
    max_unfinished_deliveries: int
    max_token_wait_s: float
    breaker_probe_s: float
    allow_line_changes: bool
    retry: RetryPolicy
    build: BuildOptions = field(default_factory=BuildOptions)  # the transform's knobs
    submit_concurrency: int = 8  # requests in flight per process (the submit thread pool's size)
    fill_to: int = 0  # a message with fewer keys takes on waiting PENDING orders up to this many
    # How long a batch's claim and its last write (the outcomes) ride out a Redis failover
    # before giving up: a failed claim sent the message back for a redelivery whose new tokens
    # found the orders locked by the lost claim, and a failed last write left the orders
    # SUBMITTING for the sweeper (minutes later, and sent again). 0: one try.
    failover_retry_s: float = 0.0


class OrderProcessor:
    """Submits orders named by key; every outcome is written to the ledger before returning."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        ledger: BatchLedger,
        dead_letters: DeadLetterStore,
        lock: LockTokens,
        limiter: TokenBucket,
        breaker: Breaker,
        jetti: JettiSubmit,
        publisher: BatchPublisher,
        rules: Rules,
        stats: StatsCounters,
        executor: Executor,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
        canceller: Cancellations | None = None,
        stop_exceptions: tuple[type[BaseException], ...] = (),
        tracer: Tracer = NOOP_TRACER,
    ) -> None:
        self._cfg = config
        self._tracer = tracer  # spans per batch, order and Jetti call (worker/pipeline/spans.py)
        self._canceller = canceller  # orders cancelled upstream (worker/pipeline/canceller.py)
        self._ledger = ledger
        self._lock = lock
        self._breaker = breaker
        self._jetti = jetti
        self._publisher = publisher
        self._rules = rules
        self._stats = stats
        self._executor = executor
        self._clock = clock
        self._lock_parts = lock.key_parts()
        # Celery's soft time limit (given by the runtime): not one order's failure but the
        # batch's end; it goes up through `_guard` so the batch stops and flushes.
        self.stop_exceptions = stop_exceptions
        self._outcomes = OutcomeRecorder(
            worker_id=config.worker_id,
            retry=config.retry,
            breaker_probe_s=config.breaker_probe_s,
            ledger=ledger,
            dead_letters=dead_letters,
            limiter=limiter,
            breaker=breaker,
            clock=clock,
            rand=rand,
        )
        self._submitter: Submitter[LockedOrder, SubmitAnswer] = Submitter(
            limiter=limiter,
            executor=executor,
            concurrency=config.submit_concurrency,
            max_token_wait_s=config.max_token_wait_s,
            clock=clock,
            sleep=sleep,
            stop_exceptions=stop_exceptions,
        )

    def close(self) -> None:
        """Stop the submit threads (running sends finish; nothing new starts)."""
        self._executor.shutdown(wait=False)

    # --- batch ------------------------------------------------------------------------
    def handle_batch(self, order_keys: Sequence[str], *, task_id: str) -> None:
        """Handle every key of one message; one key's failure never affects another.

        Raises ClaimFailed when the orders could not be claimed (nothing was begun)."""
        unique = list(dict.fromkeys(order_keys))
        started_s = time.time()  # spans are wall-clock time, whatever clock the tests inject
        batch = Batch(task_id=task_id, tally=self._stats.tally(), now=self._clock())
        try:
            orders = self._claim(unique, batch)
        except Exception as exc:
            # Redis unreachable: nothing was locked or started. Raise, so the message is not
            # acked: Celery redelivers it instead of leaving its orders to the sweeper
            # (reliability L8).
            log.exception("batch_claim_failed", task_id=task_id, keys=len(unique))
            raise ClaimFailed(f"cannot claim {len(unique)} orders: {type(exc).__name__}") from exc
        batch_span = open_spans(self._tracer, batch, orders, keys=len(unique), started_s=started_s)
        try:
            sendable = [order for order in orders if self._decide(order)]
            self._submitter.run(
                self._gate(sendable, batch),
                self._send,
                answered=self._answered,
                deferred=self._deferred,
            )
        except self.stop_exceptions:
            # Celery's soft time limit: no new work; the flush below still writes the outcomes
            # known so far and releases the locks before the hard limit kills the process.
            log.warning("batch_soft_time_limit", task_id=task_id, orders=len(orders))
        except Exception:
            # An infrastructure failure mid-batch: write what is known; orders without an
            # outcome stay SUBMITTING (a strike each) and the sweeper re-publishes them.
            log.exception("batch_handling_failed", task_id=task_id)
        finally:
            try:
                self._flush(orders, batch)
            finally:
                close_spans(batch_span, orders)

    @contextmanager
    def _context(self, order: LockedOrder) -> Iterator[None]:
        """Log lines inside carry the order's key, task, attempt and delivery number."""
        with structlog.contextvars.bound_contextvars(
            order_key=order.order_key,
            task_id=order.batch.task_id,
            attempt=order.entry.attempts + 1,
            delivery=order.entry.deliveries_started,
        ):
            yield

    def _guard(self, order: LockedOrder, step: Callable[[LockedOrder], object]) -> object:
        """Run one order's step in its log context; a bug or outage there stays with the order.

        A stop exception (the soft time limit) is not the order's: it goes up so the batch
        stops and flushes.
        """
        with self._context(order):
            try:
                return step(order)
            except self.stop_exceptions:
                raise
            except Exception:
                log.exception("order_handling_failed")
                return None

    # --- phase 1: lock + begin every order in one script ---------------------------------
    def _claim(self, order_keys: Sequence[str], batch: Batch) -> list[LockedOrder]:
        """Lock and begin every order; Redis errors propagate (nothing was begun then)."""
        claims = self._ledger.begin_batch(
            [(key, self._lock.make_token()) for key in order_keys],
            # Top the batch up with orders already waiting (a trickle of small messages would
            # otherwise cost a whole task, and at a slow Jetti a whole round trip, per order).
            fill=max(0, self._cfg.fill_to - len(order_keys)),
            fill_token=self._lock.make_token(),
            lock_head_tail=self._lock_parts,
            lock_ttl_s=self._cfg.lock_ttl_s,
            lock_busy_due_at=batch.now + self._cfg.lock_busy_retry_s,
            task_id=batch.task_id,
            worker=self._cfg.worker_id,
            now=batch.now,
            max_unfinished=self._cfg.max_unfinished_deliveries,
            retry_for_s=self._cfg.failover_retry_s,
        )
        orders: list[LockedOrder] = []
        for claim in claims:
            with structlog.contextvars.bound_contextvars(
                order_key=claim.order_key, task_id=batch.task_id
            ):
                order = self._locked(claim, batch)
            if order is None:
                continue
            orders.append(order)
            if claim.delivery is not None and claim.delivery.action is DeliveryAction.CRASH_LOOP:
                self._guard(order, self._crash_loop)
        return orders

    def _locked(self, claim: Claim, batch: Batch) -> LockedOrder | None:
        """The claimed order this worker now holds, or None (with the reason logged)."""
        if claim.isolate:
            # It may be the order that killed this message's last delivery: alone, it cannot
            # take the others with it again (reliability #11).
            log.info("order_isolated")
            batch.isolate.append(claim.order_key)
            return None
        if claim.locked:
            # Another worker holds the order. It re-reads the version after submitting, so this
            # message only needs to come back later, spending no attempt.
            log.info("order_locked_elsewhere", retry_in_s=self._cfg.lock_busy_retry_s)
            return None
        delivery = claim.delivery
        entry = delivery.entry if delivery is not None else None
        if delivery is None or entry is None or delivery.action is DeliveryAction.UNKNOWN:
            # A message whose ledger write was lost (a failover, a flushed Redis): counted, so
            # the loss shows in metrics and not only in a log line (L6).
            log.warning("order_unknown")
            batch.tally.count_unknown()
            return None
        if delivery.action in (DeliveryAction.NOTHING_TO_DO, DeliveryAction.NOT_DUE):
            log.info("order_nothing_to_do", action=str(delivery.action), state=str(entry.state))
            return None
        return LockedOrder(
            order_key=claim.order_key,
            entry=entry,
            token=claim.token,
            started=delivery.action is DeliveryAction.PROCEED,
            batch=batch,
        )

    def _crash_loop(self, order: LockedOrder) -> None:
        entry = order.entry
        self._outcomes.dead_letter(
            order,
            DeadReason.WORKER_LOST,
            f"{entry.deliveries_started - entry.deliveries_finished} deliveries ended without an"
            " outcome (a crash, an exception, the soft time limit or a failed dead-letter write)",
        )

    # --- phase 2: decide per order (pure, no Redis on the happy path) ------------------
    def _decide(self, order: LockedOrder) -> bool:
        """True when the order must be sent (`order.built` is set)."""
        if not order.started or order.outcome is not None:
            return False
        return self._guard(order, self._deliver) is not None

    def _deliver(self, order: LockedOrder) -> Built | None:
        """What to send for a started delivery, or None when the order is settled without it."""
        entry = order.entry
        if self._canceller is not None and self._canceller.handle(entry, now=order.batch.now):
            order.outcome_written = True  # cancelled upstream: the cancel path wrote the outcome
            return None
        built = self._build(order)
        if built is None:
            return None
        if entry.payload_hash == built.payload_hash:
            # A new raw version that yields the same payload: Jetti already has it.
            self._outcomes.accepted(order, built, sale_id=entry.sale_id, status=None, sent=False)
            return None
        dropped = sorted(set(entry.line_ids) - set(built.line_ids))
        if dropped and not self._cfg.allow_line_changes:
            why = "update drops line ids already sent: " + ", ".join(dropped[:20])
            self._outcomes.dead_letter(order, DeadReason.LINES_CHANGED, why, payload=built.body)
            return None
        order.built = built
        return built

    def _build(self, order: LockedOrder) -> Built | None:
        entry = order.entry
        if entry.resend_payload is not None:  # `dlq replay --resend-stored`: send it as stored
            return stored_built(entry.resend_payload)
        if entry.raw is None:
            self._outcomes.dead_letter(order, DeadReason.INVALID_INPUT, "raw order body missing")
            return None
        try:
            return build_payload(entry.raw, entry.order_key, self._rules, self._cfg.build)
        except InvalidOrder as exc:
            self._outcomes.dead_letter(order, DeadReason.INVALID_INPUT, str(exc))
        except TransformError as exc:
            self._outcomes.dead_letter(order, DeadReason.TRANSFORM_ERROR, str(exc))
        return None

    # --- phase 3: the fleet breaker, once for the whole batch ------------------------------
    def _gate(self, orders: list[LockedOrder], batch: Batch) -> list[LockedOrder]:
        """The orders that may go now; the others wait without spending an attempt."""
        if not orders:
            return []
        now = self._clock()
        admission = self._breaker.admit(now=now)
        if admission == "all":
            return orders
        admitted = orders[:1] if admission == "probe" else []
        batch.probe = admission == "probe"
        for order in orders[len(admitted) :]:
            with self._context(order):
                self._outcomes.wait(order, now + self._cfg.breaker_probe_s, WaitReason.BREAKER_OPEN)
        return admitted

    # --- phase 4: tokens and submissions (`Submitter`), each answer settled once ------------
    def _send(self, order: LockedOrder) -> SubmitAnswer:
        """POST the order's body (runs on a submit thread)."""
        assert order.built is not None
        return traced_submit(self._jetti, order, order.built.body)

    def _deferred(self, orders: Sequence[LockedOrder], due_at: float) -> None:
        for order in orders:
            with self._context(order):
                self._outcomes.wait(order, due_at, WaitReason.RATE_LIMITED_LOCALLY)

    def _answered(self, order: LockedOrder, answer: SubmitAnswer | Exception) -> None:
        self._guard(order, partial(self._outcomes.settle, answer=answer))

    # --- phase 5: every outcome, finish marker and unlock in one script ------------------
    def _flush(self, orders: list[LockedOrder], batch: Batch) -> None:
        # Only a delivery that ends with a recorded outcome gets its finish marker. One that
        # ends without (an exception, the soft time limit, a failed dead-letter write) counts
        # toward the crash-loop bound like a dead process, so a deterministic failure becomes a
        # `worker_lost` dead letter instead of looping through the sweeper (reliability #7).
        items = [
            Finish(o.order_key, o.outcome, o.started and o.has_outcome, o.token) for o in orders
        ]
        for order in orders:
            if order.started and not order.has_outcome:
                batch.tally.count_no_outcome()
                with self._context(order):
                    log.warning("delivery_ended_without_outcome")
        try:
            replies = self._ledger.finish_batch(
                items,
                lock_head_tail=self._lock_parts,
                now=self._clock(),
                also=batch.tally.queue if batch.tally else None,
                retry_for_s=self._cfg.failover_retry_s,
            )
        except Exception:
            # The orders stay SUBMITTING under locks that expire; the sweeper re-publishes them.
            log.exception("batch_flush_failed", task_id=batch.task_id, orders=len(orders))
            return
        for order, reply in zip(orders, replies, strict=True):
            try:
                self._guard(order, partial(self._outcomes.after_flush, reply=reply))
            except self.stop_exceptions:
                # The outcomes are written: finish their follow-ups (dead letters) too.
                log.warning("batch_soft_time_limit", task_id=batch.task_id, orders=len(orders))
        self._publish(batch)

    def _publish(self, batch: Batch) -> None:
        if batch.republish:
            try:
                self._publisher.publish(batch.republish)
            except Exception:
                # The orders are PENDING in the ledger: the sweeper publishes them.
                log.exception("republish_failed", orders=len(batch.republish))
        if batch.isolate:
            try:
                self._publisher.publish(batch.isolate, batch_size=1)
            except Exception:
                # Still SUBMITTING with a strike: the sweeper publishes each alone.
                log.exception("isolate_publish_failed", orders=len(batch.isolate))
