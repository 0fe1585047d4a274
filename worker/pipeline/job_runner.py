"""The job runner: bulk replay jobs worked through by the worker fleet, never by the CLI or the
console that created them.

Every `jetti-relay worker` and `jetti-relay pump` runs one `JobRunner` loop in its maintenance
thread (`worker.runtime.build_maintenance`). Each pass looks at the pending and running jobs,
oldest first; for each it tries the job's own lease (`Leader` role `job:<id>`), and the runner
that gets it works the job's key snapshot through in chunks from the saved cursor:

    per chunk:  the job still ours and not cancelled?  the backlog small enough?
                each key: the dead letter through `Replayer.replay` (the same logic as
                `jetti-relay dlq replay`: audit, re-arm, mark replayed, publish), paced
                cursor, counts and rate saved; the lease renewed

A holder killed with kill -9 loses at most the chunk in hand: its lease runs out, the next
runner resumes at the saved cursor, and the keys of the lost chunk are found already armed
(replay.lua answers not_dead, the plan says republish), so none is re-armed twice. A runner
stopped cleanly gives its lease up, so another takes over at once.

Pace. Re-arms take a share of the fleet's rate (`rate_per_s * rate_share`, split between the
jobs running at once) and then go through the normal fleet limiter like any order. While more
than `backlog_limit` orders are PENDING the job holds back (state stays running, the reason is
shown), so orders already waiting go first. This is a share, not a priority queue: a priority
queue would let replays use the whole rate when nothing else is waiting and step aside at
once, but needs a second queue that workers prefer and a limiter that knows two classes; the
share is a fixed cap that keeps the rest of the rate for new orders whatever the replay does,
at the price of a replay that is slower than it could be on an idle fleet. The backlog wait
covers the other side: under a burst of new orders the replay pauses instead of queueing ahead
of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from worker.core.jobs import (
    KIND_DLQ_REPLAY,
    Job,
    JobCounts,
    JobError,
    JobState,
    Pacer,
    ReplayOptions,
    blend_rate,
    chunk_size,
    replay_budget_per_s,
)
from worker.core.replay_plan import SENDING, Action, ReplayInputError
from worker.loop_failures import FailureStreak
from worker.pipeline.ports import (
    AuditTrail,
    JobBook,
    JobDeadLetters,
    JobLeases,
    KeyPublisher,
    ReplayLedger,
)
from worker.pipeline.replayer import Replayer

log = structlog.get_logger("jetti_relay.jobs")

# Most keys in one chunk, whatever the budget.
CHUNK_MAX = 100
# A job fails after this many chunks in a row end in an error (Redis or the broker away).
MAX_CHUNK_ERRORS = 5
# The audit action of a job's end (creation and cancel are audited by `ops.dlq.jobs`).
AUDIT_END = "job_end"


def job_role(job_id: str) -> str:
    """The lease role of one job (`Keys.leader(role)`)."""
    return f"job:{job_id}"


@dataclass(frozen=True)
class JobRunnerConfig:
    """`holder`: this process (host:pid); `fleet_rate_per_s` and `rate_share`: the replay
    budget; `backlog_limit`: PENDING orders above which a job waits (0: never);
    `lease_ttl_s`: a job's lease, renewed between chunks; `poll_interval_s`: how often the
    runner looks for jobs, and re-checks a waiting one."""

    holder: str
    fleet_rate_per_s: float
    rate_share: float
    backlog_limit: int
    lease_ttl_s: float
    poll_interval_s: float
    chunk_max: int = CHUNK_MAX


@dataclass
class _Chunk:
    worked: int
    counts: JobCounts
    error: Exception | None


class JobRunner:
    """Works the fleet's jobs through (see the module docstring); `run(stop)` is its loop."""

    def __init__(
        self,
        *,
        config: JobRunnerConfig,
        jobs: JobBook,
        leases: JobLeases,
        ledger: ReplayLedger,
        dead_letters: JobDeadLetters,
        publisher: KeyPublisher,
        audit: AuditTrail,
        pending: Callable[[], int],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = config
        self._jobs = jobs
        self._leases = leases
        self._ledger = ledger
        self._dead = dead_letters
        self._publisher = publisher
        self._audit = audit
        self._pending = pending  # orders PENDING in the ledger now
        self._clock = clock
        self._monotonic = monotonic
        self._errors: dict[str, int] = {}  # job id -> chunks in a row that ended in an error

    def run(self, stop: threading.Event) -> None:
        """Look for jobs every `poll_interval_s` until `stop` is set; errors are logged (the
        same error repeating as a line now and then: `FailureStreak`), and the job they hit is
        tried again on the next pass."""
        holder = self._cfg.holder
        failures = FailureStreak(
            log, failed="job_runner_pass_failed", recovered="job_runner_pass_recovered"
        )
        while not stop.is_set():
            failures.attempt(lambda: self.run_once(stop), holder=holder)
            stop.wait(self._cfg.poll_interval_s)

    def run_once(self, stop: threading.Event) -> list[str]:
        """Work every active job whose lease this holder gets until it ends, the lease is
        lost, a chunk fails or `stop` is set; returns the ids of the jobs worked on. After a
        failed chunk the lease is kept and the next pass resumes at the saved cursor (the job
        fails after MAX_CHUNK_ERRORS in a row). Redis errors outside a chunk propagate."""
        worked = []
        for job_id, _state in self._jobs.active():
            if stop.is_set():
                break
            role = job_role(job_id)
            if not self._leases.try_lead(
                role, holder=self._cfg.holder, ttl_s=self._cfg.lease_ttl_s
            ):
                continue
            worked.append(job_id)
            if self._work(job_id, stop):
                self._leases.resign(role, holder=self._cfg.holder)
        return worked

    # --- one job -----------------------------------------------------------------------
    def _work(self, job_id: str, stop: threading.Event) -> bool:
        """Work `job_id` on; True when this holder is done with it (ended, stopped, not
        ours any more) and should give its lease up."""
        holder = self._cfg.holder
        job = self._jobs.start(job_id, holder=holder, now=self._clock())
        if job is None:
            return True
        log.info("job_taken", job_id=job_id, holder=holder, cursor=job.done, total=job.total)
        try:
            if job.kind != KIND_DLQ_REPLAY:
                raise JobError(f"unknown job kind {job.kind!r}")
            options = ReplayOptions.from_mapping(job.options)
        except JobError as exc:
            self._end(job, JobState.FAILED, str(exc))
            return True
        replayer = Replayer(
            ledger=self._ledger,
            dead_letters=self._dead,
            publisher=self._publisher,
            audit=self._audit,
            actor=job.created_by,
            clock=self._clock,
        )
        replayer.run_id = job.id  # the replays' audit records name the job
        cursor, counts, rate = job.done, job.counts, job.rate_per_s
        pacer: Pacer | None = None
        while not stop.is_set():
            current = self._jobs.get(job_id)
            if current is None or current.state is not JobState.RUNNING or current.holder != holder:
                return True
            if current.cancel_requested:
                self._end(current, JobState.CANCELLED, None)
                return True
            if cursor >= current.total:
                self._end(current, JobState.DONE, None)
                return True
            if not self._leases.try_lead(
                job_role(job_id), holder=holder, ttl_s=self._cfg.lease_ttl_s
            ):
                log.warning("job_lease_lost", job_id=job_id, holder=holder, cursor=cursor)
                return False
            waiting = self._waiting_reason()
            if waiting is not None:
                if current.waiting_reason != waiting:
                    self._jobs.set_waiting(job_id, holder=holder, reason=waiting, now=self._clock())
                stop.wait(self._cfg.poll_interval_s)
                continue
            budget = replay_budget_per_s(
                self._cfg.fleet_rate_per_s, self._cfg.rate_share, self._running_jobs()
            )
            if pacer is None or abs(pacer.interval_s * budget - 1.0) > 1e-9:
                pacer = Pacer(budget)
            keys = self._jobs.keys_slice(
                job_id, cursor, chunk_size(budget, self._cfg.lease_ttl_s, most=self._cfg.chunk_max)
            )
            if not keys:
                self._end(
                    current,
                    JobState.FAILED,
                    f"the job's key list is gone (expired or deleted) at key {cursor} of "
                    f"{current.total}",
                )
                return True
            started = self._monotonic()
            chunk = self._chunk(replayer, keys, options, counts, pacer, stop)
            cursor, counts = cursor + chunk.worked, chunk.counts
            rate = blend_rate(rate, chunk.worked, self._monotonic() - started)
            if not self._jobs.save_progress(
                job_id,
                holder=holder,
                cursor=cursor,
                counts=counts,
                rate_per_s=rate,
                now=self._clock(),
            ):
                return False  # cancelled and ended, or taken over, meanwhile
            if chunk.error is not None:
                return self._chunk_failed(current, cursor, chunk.error)
            self._errors.pop(job_id, None)
        return True  # stopped: the lease goes, so another runner takes over at once

    def _chunk(
        self,
        replayer: Replayer,
        keys: list[str],
        options: ReplayOptions,
        counts: JobCounts,
        pacer: Pacer,
        stop: threading.Event,
    ) -> _Chunk:
        """Replay `keys` in order, paced; stops early when `stop` is set or a key raises
        anything but a refusal (the keys before it are counted, that one is not)."""
        worked = 0
        for key in keys:
            entry = self._dead.get(key)
            if entry is None:  # purged since the snapshot
                counts = counts.add(key, None)
                worked += 1
                continue
            if stop.wait(pacer.delay_s(self._monotonic())):
                break
            try:
                step = replayer.replay(
                    entry, mode=options.mode, accept_line_changes=options.accept_line_changes
                )
            except ReplayInputError as exc:
                counts = counts.add(key, Action.NOT_REPLAYABLE, str(exc))
            except Exception as exc:  # Redis or the broker: the next pass resumes at this key
                return _Chunk(worked, counts, exc)
            else:
                if step.action in SENDING:
                    pacer.sent(self._monotonic())
                counts = counts.add(key, step.action, step.why)
            worked += 1
        return _Chunk(worked, counts, None)

    def _chunk_failed(self, job: Job, cursor: int, error: Exception) -> bool:
        errors = self._errors.get(job.id, 0) + 1
        self._errors[job.id] = errors
        log.error(
            "job_chunk_failed",
            job_id=job.id,
            cursor=cursor,
            errors_in_a_row=errors,
            error_class=type(error).__name__,
            exc_info=error,
        )
        if errors < MAX_CHUNK_ERRORS:
            return False  # keep the lease; the next pass resumes at the cursor
        self._errors.pop(job.id, None)
        # The class only: a message may carry a connection URL, and the job is shown to anyone.
        self._end(
            job,
            JobState.FAILED,
            f"{type(error).__name__} {errors} times in a row at key {cursor} of {job.total}; "
            "see the worker log",
        )
        return True

    def _waiting_reason(self) -> str | None:
        limit = self._cfg.backlog_limit
        if limit <= 0:
            return None
        pending = self._pending()
        if pending <= limit:
            return None
        return (
            f"{pending} orders pending, more than the replay backlog limit of {limit}: "
            "new orders go first"
        )

    def _running_jobs(self) -> int:
        return sum(1 for _id, state in self._jobs.active() if state is JobState.RUNNING)

    def _end(self, job: Job, state: JobState, error: str | None) -> None:
        now = self._clock()
        ended = self._jobs.finish(
            job.id, holder=self._cfg.holder, state=state, error=error, now=now
        )
        if ended is None:
            return
        self._audit.record(
            AUDIT_END,
            actor=ended.created_by,
            now=now,
            details={
                "job": ended.id,
                "state": str(state),
                "done": ended.done,
                "total": ended.total,
                "holder": self._cfg.holder,
                "error": error,
            },
        )
        log.info(
            "job_ended",
            job_id=ended.id,
            state=str(state),
            done=ended.done,
            total=ended.total,
            error=error,
        )
