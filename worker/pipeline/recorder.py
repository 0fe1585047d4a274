"""What each order of a batch ends with: the outcome the flush writes, and its follow-ups.

`OrderProcessor` (worker/pipeline/processor.py) runs the phases; this module holds the orders
as they move through them (`Batch`, `LockedOrder`) and records their outcomes
(`OutcomeRecorder`): Jetti's answer settled by `worker.core.outcome.settle` (the decision the
canceller applies too), an acceptance, a wait, a dead letter. Nothing is written to the ledger
here: `LockedOrder.outcome` is what the processor's flush writes in one script, and
`OutcomeRecorder.after_flush` acts on the script's answer for each order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from worker.core.outcome import (
    ANSWER_ERRORS,
    Backoff,
    Block,
    DeadLetter,
    Sent,
    Trip,
    Wait,
    WaitReason,
    error_attempt,
    settle,
)
from worker.core.policy import RetryPolicy
from worker.core.records import Attempt, Dead, OrderEntry, Retry, Submitted
from worker.core.states import DeadReason, DeadReply, FinishReply, SubmitReply
from worker.core.tracing import NOOP_SPAN, Span
from worker.core.transform import Built
from worker.pipeline.ports import (
    BatchLedger,
    Breaker,
    DeadLetterStore,
    StatsTally,
    SubmitAnswer,
    TokenBucket,
)

log = structlog.get_logger("jetti_relay.processor")


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
class LockedOrder:
    """One order of a batch under its lock, as it moves through the phases."""

    order_key: str
    entry: OrderEntry
    token: str | None  # the lock token this worker holds (released by the flush)
    started: bool  # a delivery began: it ends with a finish marker only if it has an outcome
    batch: Batch
    built: Built | None = None
    outcome: Submitted | Retry | Dead | None = None  # what the flush writes
    outcome_written: bool = False  # the cancel path wrote the outcome itself
    status: int | None = None  # Jetti's status when it accepted this delivery's submission
    span: Span = NOOP_SPAN  # this delivery's `jetti_relay.order` span (worker.pipeline.spans)

    @property
    def has_outcome(self) -> bool:
        """True when this delivery ends with a recorded outcome (it gets its finish marker)."""
        return self.outcome is not None or self.outcome_written


class OutcomeRecorder:
    """Records each order's outcome on the order (`LockedOrder.outcome`) for the flush.

    A dead letter is stored at once (its ledger mark follows in the flush, so a crash in
    between repeats it and never loses it); the fleet effects of an answer (a limiter block, a
    breaker trip) are applied at once too.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        retry: RetryPolicy,
        breaker_probe_s: float,
        ledger: BatchLedger,
        dead_letters: DeadLetterStore,
        limiter: TokenBucket,
        breaker: Breaker,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._worker_id = worker_id
        self._retry = retry
        self._probe_s = breaker_probe_s
        self._ledger = ledger
        self._dead = dead_letters
        self._limiter = limiter
        self._breaker = breaker
        self._clock = clock
        self._rand = rand

    def settle(self, order: LockedOrder, answer: SubmitAnswer | Exception) -> None:
        """Apply `worker.core.outcome.settle`'s decision on Jetti's answer to the order."""
        built = order.built
        assert built is not None
        if isinstance(answer, Exception) and not isinstance(answer, ANSWER_ERRORS):
            # A bug, not an answer from Jetti: the order stays SUBMITTING for the sweeper.
            log.error("order_submit_failed", exc_info=answer)
            return
        error = None if not isinstance(answer, Exception) else answer
        now = self._clock()
        outcome = settle(
            error,
            entry=order.entry,
            policy=self._retry,
            breaker_probe_s=self._probe_s,
            now=now,
            rand=self._rand,
        )
        tally = order.batch.tally
        if isinstance(outcome, Sent):
            assert not isinstance(answer, Exception)
            if order.batch.probe:
                self._breaker.record_success()
            tally.count_submission(outcome.label, answer.status)
            self.accepted(order, built, sale_id=answer.sale_id, status=answer.status, sent=True)
            return
        assert error is not None
        status = getattr(error, "status", None)
        attempt = error_attempt(error, at=now, worker=self._worker_id)
        if outcome.label is not None:
            tally.count_submission(outcome.label, status)
        if isinstance(outcome, Wait):
            if isinstance(outcome.effect, Block):
                self._limiter.block(until=outcome.effect.until)
            elif isinstance(outcome.effect, Trip):
                self._breaker.trip(
                    reason=outcome.effect.reason, status=outcome.effect.status, now=now
                )
                log.error("fleet_paused", status=status)
            if outcome.retry_after_note is not None:
                tally.count_surprise(f"retry_after_{outcome.retry_after_note}")
            self.wait(order, outcome.due_at, outcome.why, attempt=attempt)
        elif isinstance(outcome, Backoff):
            order.outcome = Retry(due_at=outcome.due_at, spend_attempt=True, attempt=attempt)
            log.info(
                "order_retry_scheduled",
                error=type(error).__name__,
                status=status,
                retry_in_s=round(outcome.due_at - now, 3),
            )
        elif isinstance(outcome, DeadLetter):
            self.dead_letter(order, outcome.reason, str(error), payload=built.body, attempt=attempt)

    # --- outcomes (recorded on the order; `_flush` writes them) --------------------------
    def accepted(
        self,
        order: LockedOrder,
        built: Built,
        *,
        sale_id: int | None,
        status: int | None,
        sent: bool,
    ) -> None:
        entry = order.entry
        now = self._clock()
        attempt = (
            Attempt(
                at=now,
                status=status,
                error_class=None,
                excerpt=None,
                worker=self._worker_id,
                outcome="submitted",
            )
            if sent
            else None
        )
        order.outcome = Submitted(
            version=entry.version,
            payload_hash=built.payload_hash,
            line_ids=built.line_ids,
            sale_id=sale_id,
            attempt=attempt,
        )
        order.status = status
        if sent:
            order.batch.tally.observe_latency(now - entry.enqueued_at)

    def wait(
        self, order: LockedOrder, due_at: float, why: WaitReason, *, attempt: Attempt | None = None
    ) -> None:
        """Back to the retry schedule without spending an attempt."""
        order.outcome = Retry(due_at=due_at, spend_attempt=False, attempt=attempt)
        log.info("order_waiting", why=str(why), retry_in_s=round(due_at - self._clock(), 3))

    def dead_letter(
        self,
        order: LockedOrder,
        reason: DeadReason,
        error: str,
        *,
        payload: bytes | None = None,
        attempt: Attempt | None = None,
    ) -> None:
        """Store the dead letter now; the ledger mark follows in the flush, so a crash in
        between repeats it and never loses it."""
        entry = order.entry
        attempts = [*self._ledger.attempts(order.order_key), *([attempt] if attempt else [])]
        self._dead.put(
            order.order_key,
            reason=reason,
            raw=entry.raw,
            payload=payload,
            payload_version=entry.version,  # every payload here is built from this version
            attempts=attempts,
            source=entry.source,
            error=error,
            now=self._clock(),
        )
        order.outcome = Dead(reason=reason, attempt=attempt, version=entry.version)
        order.batch.tally.count_dead(reason)
        log.warning("order_dead_lettered", reason=str(reason), error=error[:500])

    def after_flush(self, order: LockedOrder, *, reply: FinishReply) -> None:
        """What the flush's answer for `order` calls for: a resolved dead letter, a newer
        version to re-publish."""
        outcome = order.outcome
        if isinstance(outcome, Submitted):
            newer = reply is SubmitReply.REPUBLISH
            if order.entry.dead_reason is not None or order.entry.replayed:
                self._dead.mark_resolved(order.order_key, now=self._clock())
            sent = outcome.attempt is not None
            log.info("order_submitted", status=order.status, sent=sent, newer_version_waiting=newer)
            if newer:
                # A newer version arrived while this one was in flight: it goes out next.
                order.batch.republish.append(order.order_key)
        elif isinstance(outcome, Dead) and reply is DeadReply.SUPERSEDED:
            # A newer version arrived while this one failed: the ledger made it PENDING on a
            # fresh budget; the dead letter is about the superseded version.
            self._dead.mark_resolved(order.order_key, now=self._clock())
            log.info("order_dead_superseded", reason=str(outcome.reason))
            order.batch.republish.append(order.order_key)
