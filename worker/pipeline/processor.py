"""Handling the order keys of one message: lock, ledger, transform, limiter, submit, outcome.

This is the pipeline's one decision-making adapter. The Celery task is a thin shell around
`OrderProcessor.handle_batch`; everything here takes its collaborators as arguments (the
`Runtime` wires the real ones), and the clock and randomness are injected.

A message's keys go through in phases, so Redis round trips are paid per message, not per order:

    claim   ── ONE script: per order, lock (SET NX PX) + begin_delivery; a lock held elsewhere
               reschedules the order (no attempt spent)                                 1 RTT
    decide  ── per order, pure: parse + transform (`_build`), same payload already accepted,
               lines check (`_deliver`)                                                 0 RTT
    gate    ── the fleet breaker (`admit`: all / one probe / none), then N limiter tokens 2 RTT
    submit  ── every admitted order concurrently on the process's HTTP pool; each answer is
               classified once (`_settle`):
                  ├─ 2xx ─────────────► `_accepted` (mark_submitted; re-publish a newer version)
                  ├─ RateLimited ─────► fleet block + `_wait` (no attempt spent)
                  ├─ ConfigurationError ► trip the breaker + `_wait` (no attempt spent)
                  ├─ RetryableError ──► `_retry`: policy.decide ─► retry schedule | dead letter
                  └─ Rejected ───────► `_dead_letter` `rejected`
    flush   ── ONE script: per order, the outcome, the delivery's finish marker (only with an
               outcome: a delivery without one is a strike toward the crash-loop bound), the
               lock release (token compare), plus the batch's counters in the same pipeline 1 RTT

Outcome handlers only record what to write (`Job.outcome`); `_flush` writes them all at once, in
the same per-order order as before (outcome, finish marker, unlock). A dead letter is stored
before its ledger mark, so a crash in between repeats it and never loses it. A crash anywhere
leaves orders SUBMITTING with a started delivery: the sweeper re-publishes them and the delivery
markers bound a crash loop, exactly as for one order at a time. So does any delivery that ends
without a recorded outcome (an exception, the soft time limit, a failed dead-letter write):
`max_unfinished_deliveries` of them dead-letter the order as `worker_lost`. Retryable
Jetti answers are outcomes (a retry), so they spend attempts and never count as strikes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import structlog
from celery.exceptions import SoftTimeLimitExceeded

from worker.core.contract import parse_raw_order
from worker.core.errors import (
    ClaimFailed,
    ConfigurationError,
    InvalidOrder,
    JettiRelayError,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryableError,
    TransformError,
)
from worker.core.jsonio import loads_document
from worker.core.policy import GiveUp, RetryPolicy, decide
from worker.core.records import Attempt
from worker.core.rules import Rules
from worker.core.states import DeadReason
from worker.core.transform import Built, transform
from worker.jetti.client import JettiClient, SubmitResult
from worker.pipeline.canceller import Canceller
from worker.pipeline.replayer import stored_built
from worker.publisher import Publisher
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.leases import OrderLock
from worker.store.ledger import (
    Dead,
    DeliveryAction,
    Finish,
    Ledger,
    OrderEntry,
    Retry,
    Submitted,
)
from worker.store.rate_limit import RateLimiter
from worker.store.stats import Stats, StatsTally

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
    max_line_items: int
    auto_connect_default: bool | None
    allow_line_changes: bool
    retry: RetryPolicy
    submit_concurrency: int = 8  # requests in flight per process (the submit thread pool's size)
    fill_to: int = 0  # a message with fewer keys takes on waiting PENDING orders up to this many


@dataclass(eq=False)
class Batch:
    """What one message's orders share: the task, the counters and what to re-publish."""

    task_id: str
    tally: StatsTally
    now: float
    probe: bool = False  # admitted as the breaker's probe: report the outcome to the breaker
    republish: list[str] = field(default_factory=list)
    isolate: list[str] = field(default_factory=list)  # suspects, published one per message


@dataclass(eq=False)
class Job:
    """One order of a batch under its lock, as it moves through the phases."""

    order_key: str
    entry: OrderEntry
    token: str | None  # the lock token this worker holds (released by the flush)
    started: bool  # a delivery began: it ends with a finish marker only if it has an outcome
    batch: Batch
    built: Built | None = None
    outcome: Submitted | Retry | Dead | None = None  # what the flush writes
    outcome_written: bool = False  # the cancel path wrote the outcome itself
    on_written: Callable[[int], None] | None = None  # called with the flush's answer


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
        canceller: Canceller | None = None,
    ) -> None:
        self._cfg = config
        self._canceller = canceller  # orders cancelled upstream (worker/pipeline/canceller.py)
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
        self._lock_parts = lock.key_parts()
        # One slot per submit thread: a token is only taken for a request that can start now.
        self._slots = threading.Semaphore(max(1, config.submit_concurrency))

    # --- batch ------------------------------------------------------------------------
    def handle_batch(self, order_keys: Sequence[str], *, task_id: str) -> None:
        """Handle every key of one message; one key's failure never affects another.

        Raises ClaimFailed when the orders could not be claimed (nothing was begun)."""
        unique = list(dict.fromkeys(order_keys))
        batch = Batch(task_id=task_id, tally=self._stats.tally(), now=self._clock())
        try:
            jobs = self._claim(unique, batch)
        except Exception as exc:
            # Redis unreachable: nothing was locked or started. Raise, so the message is not
            # acked: Celery redelivers it instead of leaving its orders to the sweeper
            # (reliability L8).
            log.exception("batch_claim_failed", task_id=task_id, keys=len(unique))
            raise ClaimFailed(f"cannot claim {len(unique)} orders: {type(exc).__name__}") from exc
        try:
            sendable = [job for job in jobs if self._decide(job)]
            self._submit_all(self._gate(sendable, batch))
        except SoftTimeLimitExceeded:
            # Celery's soft time limit: no new work; the flush below still writes the outcomes
            # known so far and releases the locks before the hard limit kills the process.
            log.warning("batch_soft_time_limit", task_id=task_id, orders=len(jobs))
        except Exception:
            # An infrastructure failure mid-batch: write what is known; orders without an
            # outcome stay SUBMITTING (a strike each) and the sweeper re-publishes them.
            log.exception("batch_handling_failed", task_id=task_id)
        finally:
            self._flush(jobs, batch)

    def handle(self, order_key: str, *, task_id: str) -> None:
        """Handle one order key (a batch of one)."""
        self.handle_batch([order_key], task_id=task_id)

    @contextmanager
    def _context(self, job: Job) -> Iterator[None]:
        """Log lines inside carry the order's key, task, attempt and delivery number."""
        with structlog.contextvars.bound_contextvars(
            order_key=job.order_key,
            task_id=job.batch.task_id,
            attempt=job.entry.attempts + 1,
            delivery=job.entry.deliveries_started,
        ):
            yield

    # --- phase 1: lock + begin every order in one script ---------------------------------
    def _claim(self, order_keys: Sequence[str], batch: Batch) -> list[Job]:
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
        )
        jobs: list[Job] = []
        for claim in claims:
            with structlog.contextvars.bound_contextvars(
                order_key=claim.order_key, task_id=batch.task_id
            ):
                if claim.isolate:
                    # It may be the order that killed this message's last delivery: alone, it
                    # cannot take the others with it again (reliability #11).
                    log.info("order_isolated")
                    batch.isolate.append(claim.order_key)
                    continue
                if claim.locked:
                    # Another worker holds the order. It re-reads the version after submitting,
                    # so this message only needs to come back later, spending no attempt.
                    log.info("order_locked_elsewhere", retry_in_s=self._cfg.lock_busy_retry_s)
                    continue
                delivery = claim.delivery
                entry = delivery.entry if delivery is not None else None
                if delivery is None or entry is None or delivery.action is DeliveryAction.UNKNOWN:
                    # A message whose ledger write was lost (a failover, a flushed Redis):
                    # counted, so the loss shows in metrics and not only in a log line (L6).
                    log.warning("order_unknown")
                    batch.tally.count_unknown()
                    continue
                if delivery.action in (DeliveryAction.NOTHING_TO_DO, DeliveryAction.NOT_DUE):
                    log.info(
                        "order_nothing_to_do", action=str(delivery.action), state=str(entry.state)
                    )
                    continue
                job = Job(
                    order_key=claim.order_key,
                    entry=entry,
                    token=claim.token,
                    started=delivery.action is DeliveryAction.PROCEED,
                    batch=batch,
                )
                jobs.append(job)
                if delivery.action is DeliveryAction.CRASH_LOOP:
                    self._guard(
                        job,
                        lambda j: self._dead_letter(
                            j,
                            DeadReason.WORKER_LOST,
                            f"{j.entry.deliveries_started - j.entry.deliveries_finished} deliveries"
                            " ended without an outcome (a crash, an exception, the soft"
                            " time limit or a failed dead-letter write)",
                            now=batch.now,
                        ),
                    )
        return jobs

    def _guard(self, job: Job, step: Callable[[Job], object]) -> object:
        """Run one order's step in its log context; a bug or outage there stays with the order.

        Celery's soft time limit is not the order's: it goes up so the batch stops and flushes.
        """
        with self._context(job):
            try:
                return step(job)
            except SoftTimeLimitExceeded:
                raise
            except Exception:
                log.exception("order_handling_failed")
                return None

    # --- phase 2: decide per order (pure, no Redis on the happy path) ------------------
    def _decide(self, job: Job) -> bool:
        """True when the order must be sent (`job.built` is set)."""
        if not job.started or job.outcome is not None:
            return False
        return self._guard(job, self._deliver) is not None

    def _deliver(self, job: Job) -> Built | None:
        """What to send for a started delivery, or None when the order is settled without it."""
        entry, now = job.entry, job.batch.now
        if self._canceller is not None and self._canceller.handle(entry, now=now):
            job.outcome_written = True  # cancelled upstream: the cancel path wrote the outcome
            return None
        built = self._build(job, now)
        if built is None:
            return None
        if entry.payload_hash == built.payload_hash:
            # A new raw version that yields the same payload: Jetti already has it.
            self._accepted(job, built, sale_id=entry.sale_id, status=None, sent=False)
            return None
        dropped = sorted(set(entry.line_ids) - set(built.line_ids))
        if dropped and not self._cfg.allow_line_changes:
            self._dead_letter(
                job,
                DeadReason.LINES_CHANGED,
                "update drops line ids already sent: " + ", ".join(dropped[:20]),
                now=now,
                payload=built.body,
            )
            return None
        job.built = built
        return built

    def _build(self, job: Job, now: float) -> Built | None:
        entry = job.entry
        if entry.resend_payload is not None:  # `dlq replay --resend-stored`: send it as stored
            return stored_built(entry.resend_payload)
        if entry.raw is None:
            self._dead_letter(job, DeadReason.INVALID_INPUT, "raw order body missing", now=now)
            return None
        try:
            order = parse_raw_order(loads_document(entry.raw))
        except InvalidOrder as exc:
            self._dead_letter(job, DeadReason.INVALID_INPUT, str(exc), now=now)
            return None
        try:
            return transform(
                order,
                self._rules,
                max_units_per_line=self._cfg.max_units_per_line,
                max_line_items=self._cfg.max_line_items,
                auto_connect_default=self._cfg.auto_connect_default,
                external_id=entry.order_key,
            )
        except TransformError as exc:
            self._dead_letter(job, DeadReason.TRANSFORM_ERROR, str(exc), now=now)
            return None

    # --- phase 3: the fleet breaker, once for the whole batch ------------------------------
    def _gate(self, jobs: list[Job], batch: Batch) -> list[Job]:
        """The orders that may go now; the others wait without spending an attempt."""
        if not jobs:
            return []
        now = self._clock()
        admission = self._breaker.admit(now=now)
        if admission != "all":
            admitted = jobs[:1] if admission == "probe" else []
            batch.probe = admission == "probe"
            for job in jobs[len(admitted) :]:
                with self._context(job):
                    self._wait(job, due_at=now + self._cfg.breaker_probe_s, why="breaker_open")
            jobs = admitted
        return jobs

    # --- phase 4: tokens and submissions, overlapped ---------------------------------------
    def _submit_all(self, jobs: list[Job]) -> None:
        """Submit every admitted order, each as soon as its fleet token is granted, at most
        `submit_concurrency` in flight; then classify each answer once (`_settle`).

        Tokens are asked for in bulk (one round trip for as many as can go now), but never
        ahead of a free submit thread: a token held while its request queues would let a burst
        through later and break the fleet rate. A missing token is waited for briefly; orders
        whose wait would be long go back to the schedule without spending an attempt.
        """
        if not jobs:
            return
        pending = list(jobs)
        running: dict[Future[SubmitResult | Exception], Job] = {}
        answers: dict[int, SubmitResult | Exception] = {}
        waited_s = 0.0
        slots = self._slots
        try:
            while pending:
                slots.acquire()  # blocks until a submit thread is free
                free = 1
                while free < len(pending) and slots.acquire(blocking=False):
                    free += 1
                try:
                    taken, wait_s = self._limiter.acquire_many(free)
                except BaseException:
                    for _ in range(free):
                        slots.release()
                    raise
                for _ in range(free - taken):
                    slots.release()
                if taken and len(jobs) == 1:
                    answers[id(pending[0])] = self._send_in_slot(pending[0])  # no thread hop
                    pending = []
                    break
                for job in pending[:taken]:
                    running[self._executor.submit(self._send_in_slot, job)] = job
                pending = pending[taken:]
                if not pending or taken == free:
                    continue
                if waited_s + wait_s > self._cfg.max_token_wait_s:
                    due_at = self._clock() + wait_s
                    for job in pending:
                        with self._context(job):
                            self._wait(job, due_at=due_at, why="rate_limited_locally")
                    break
                self._sleep(wait_s)
                waited_s += wait_s
        finally:
            # Also when the limiter failed midway: every request already sent is answered and
            # its outcome recorded, so no order is left in flight behind a released lock. Past
            # the soft time limit nothing more is awaited (the hard limit is near): the answers
            # already in are still recorded, the rest stay SUBMITTING for the sweeper.
            stopped: SoftTimeLimitExceeded | None = None
            for future, job in running.items():
                if stopped is not None and not future.done():
                    continue
                try:
                    answers[id(job)] = future.result()
                except SoftTimeLimitExceeded as exc:
                    stopped = exc
            for job in jobs:
                if id(job) in answers:
                    try:
                        self._guard(job, partial(self._settle, answer=answers[id(job)]))
                    except SoftTimeLimitExceeded as exc:
                        stopped = exc
            if stopped is not None:
                raise stopped

    def _send_in_slot(self, job: Job) -> SubmitResult | Exception:
        try:
            return self._send(job)
        finally:
            self._slots.release()

    def _send(self, job: Job) -> SubmitResult | Exception:
        """POST the order's body; the answer or the exception (runs on a submit thread)."""
        assert job.built is not None
        try:
            return self._jetti.submit(job.built.body)
        except Exception as exc:
            return exc

    def _settle(self, job: Job, answer: SubmitResult | Exception) -> None:
        built = job.built
        assert built is not None
        tally = job.batch.tally
        if isinstance(answer, SubmitResult):
            if job.batch.probe:
                self._breaker.record_success()
            tally.count_submission("accepted", answer.status)
            self._accepted(job, built, sale_id=answer.sale_id, status=answer.status, sent=True)
        elif isinstance(answer, RateLimited):
            now = self._clock()
            retry_after = answer.retry_after_s
            pause_s = retry_after if retry_after is not None else self._cfg.blocked_default_s
            self._limiter.block(until=now + pause_s)
            tally.count_submission("rate_limited", answer.status)
            if answer.retry_after_note is not None:
                tally.count_surprise(f"retry_after_{answer.retry_after_note}")
            self._wait(job, due_at=now + pause_s, why="rate_limited", attempt=self._attempt(answer))
        elif isinstance(answer, ConfigurationError):
            now = self._clock()
            self._breaker.trip(reason=answer.detail, status=answer.status, now=now)
            tally.count_submission("config_error", answer.status)
            log.error("fleet_paused", status=answer.status)
            self._wait(
                job,
                due_at=now + self._cfg.breaker_probe_s,
                why="breaker_open",
                attempt=self._attempt(answer),
            )
        elif isinstance(answer, Rejected):
            tally.count_submission("rejected", answer.status)
            self._dead_letter(
                job,
                DeadReason.REJECTED,
                str(answer),
                now=self._clock(),
                payload=built.body,
                attempt=self._attempt(answer),
            )
        elif isinstance(answer, RetryableError):
            self._retry(job, built, answer)
        else:
            # A bug, not an answer from Jetti: the order stays SUBMITTING for the sweeper.
            log.error("order_submit_failed", exc_info=answer)

    def _retry(self, job: Job, built: Built, exc: RetryableError) -> None:
        entry = job.entry
        now = self._clock()
        status = getattr(exc, "status", None)
        job.batch.tally.count_submission(
            "unknown" if isinstance(exc, OutcomeUnknown) else "retry", status
        )
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
            self._dead_letter(
                job, decision.reason, str(exc), now=now, payload=built.body, attempt=attempt
            )
            return
        job.outcome = Retry(
            due_at=decision.due_at, spend_attempt=decision.spend_attempt, attempt=attempt
        )
        log.info(
            "order_retry_scheduled",
            error=type(exc).__name__,
            status=status,
            retry_in_s=round(decision.due_at - now, 3),
        )

    # --- outcomes (recorded on the job; `_flush` writes them) ----------------------------
    def _accepted(
        self,
        job: Job,
        built: Built,
        *,
        sale_id: int | None,
        status: int | None,
        sent: bool,
    ) -> None:
        entry = job.entry
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
        job.outcome = Submitted(
            version=entry.version,
            payload_hash=built.payload_hash,
            line_ids=built.line_ids,
            sale_id=sale_id,
            attempt=attempt,
        )
        if sent:
            job.batch.tally.observe_latency(now - entry.enqueued_at)

        def written(reply: int) -> None:
            newer = reply == 1
            if entry.dead_reason is not None or entry.replayed:
                self._dead.mark_resolved(job.order_key, now=now)
            log.info("order_submitted", status=status, sent=sent, newer_version_waiting=newer)
            if newer:
                # A newer version arrived while this one was in flight: it goes out next.
                job.batch.republish.append(job.order_key)

        job.on_written = written

    def _wait(self, job: Job, *, due_at: float, why: str, attempt: Attempt | None = None) -> None:
        """Back to the retry schedule without spending an attempt."""
        job.outcome = Retry(due_at=due_at, spend_attempt=False, attempt=attempt)
        log.info("order_waiting", why=why, retry_in_s=round(due_at - self._clock(), 3))

    def _dead_letter(
        self,
        job: Job,
        reason: DeadReason,
        error: str,
        *,
        now: float,
        payload: bytes | None = None,
        attempt: Attempt | None = None,
    ) -> None:
        """Store the dead letter now; the ledger mark follows in the flush, so a crash in
        between repeats it and never loses it."""
        entry = job.entry
        attempts = [*self._ledger.attempts(job.order_key), *([attempt] if attempt else [])]
        self._dead.put(
            job.order_key,
            reason=reason,
            raw=entry.raw,
            payload=payload,
            payload_version=entry.version,  # every payload here is built from this version
            attempts=attempts,
            source=entry.source,
            error=error,
            now=now,
        )
        job.outcome = Dead(reason=reason, attempt=attempt, version=entry.version)
        job.batch.tally.count_dead(reason)
        log.warning("order_dead_lettered", reason=str(reason), error=error[:500])

        def written(reply: int) -> None:
            if reply == 2:
                # A newer version arrived while this one failed: the ledger made it PENDING on
                # a fresh budget; the dead letter is about the superseded version.
                self._dead.mark_resolved(job.order_key, now=self._clock())
                log.info("order_dead_superseded", reason=str(reason))
                job.batch.republish.append(job.order_key)

        job.on_written = written

    def _attempt(self, exc: JettiRelayError) -> Attempt:
        return Attempt(
            at=self._clock(),
            status=getattr(exc, "status", None),
            error_class=type(exc).__name__,
            excerpt=str(exc)[:500],
            worker=self._cfg.worker_id,
            outcome="error",
        )

    # --- phase 5: every outcome, finish marker and unlock in one script ------------------
    def _flush(self, jobs: list[Job], batch: Batch) -> None:
        # Only a delivery that ends with a recorded outcome gets its finish marker. One that
        # ends without (an exception, the soft time limit, a failed dead-letter write) counts
        # toward the crash-loop bound like a dead process, so a deterministic failure becomes a
        # `worker_lost` dead letter instead of looping through the sweeper (reliability #7).
        items = [
            Finish(j.order_key, j.outcome, j.started and _has_outcome(j), j.token) for j in jobs
        ]
        for job in jobs:
            if job.started and not _has_outcome(job):
                batch.tally.count_no_outcome()
                with self._context(job):
                    log.warning("delivery_ended_without_outcome")
        try:
            replies = self._ledger.finish_batch(
                items,
                lock_head_tail=self._lock_parts,
                now=self._clock(),
                also=batch.tally.queue if batch.tally else None,
            )
        except Exception:
            # The orders stay SUBMITTING under locks that expire; the sweeper re-publishes them.
            log.exception("batch_flush_failed", task_id=batch.task_id, orders=len(jobs))
            return
        for job, reply in zip(jobs, replies, strict=True):
            if job.on_written is not None:
                try:
                    self._guard(job, partial(_call_on_written, reply=reply))
                except SoftTimeLimitExceeded:
                    # The outcomes are written: finish their follow-ups (dead letters) too.
                    log.warning("batch_soft_time_limit", task_id=batch.task_id, orders=len(jobs))
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


def _has_outcome(job: Job) -> bool:
    return job.outcome is not None or job.outcome_written


def _call_on_written(job: Job, *, reply: int) -> None:
    if job.on_written is not None:
        job.on_written(reply)
