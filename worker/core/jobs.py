"""Bulk jobs run by the worker fleet, as values: ids, states, options, counts and pacing (pure).

A job (today one kind, `dlq_replay`) is created by an operator command or the console, stored
by `worker.store.jobs.JobStore` and worked through by `worker.pipeline.job_runner.JobRunner` in
every maintenance thread of the fleet. This module holds what needs no Redis and no clock: the
id format and its check, the state machine, the options a bulk replay takes, how the outcome of
one replayed entry is counted, the pacing arithmetic and the `Job` view that the CLI and the
console show (`Job.to_dict` is the JSON twin).

States:

    pending --(a runner takes its lease)--> running --> done       every key worked through
       |                                       |-----> cancelled  cancel_requested, honoured
       |                                       |                  between two chunks
       |                                       '-----> failed     the job cannot go on (error)
       '--(cancel)--> cancelled                                    at once: nothing was done
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from worker.core.replay_plan import Action, ReplayMode

# The one kind of job so far.
KIND_DLQ_REPLAY = "dlq_replay"

# A job id: 11 hex digits of creation time in ms (sortable until the year 2527), 5 random.
JOB_ID_TIME_DIGITS = 11
JOB_ID_RANDOM_DIGITS = 5
_JOB_ID = re.compile(rf"^[0-9a-f]{{{JOB_ID_TIME_DIGITS + JOB_ID_RANDOM_DIGITS}}}$")

# How much one new measurement moves the reported rate (an exponential moving average).
RATE_WEIGHT = 0.3
# Failed keys whose reason a job keeps, for the operator to look at (the rest are only counted).
FAILURES_KEPT = 20
# Reason under which an entry purged between the snapshot and its turn is skipped.
SKIP_GONE = "gone"


class JobState(StrEnum):
    """Where a job is (the job hash's `state`)."""

    PENDING = "pending"  # created, no runner has taken it yet
    RUNNING = "running"  # a runner works through it (or did, and its lease is running out)
    DONE = "done"  # every key was worked through
    CANCELLED = "cancelled"  # an operator cancelled it; `done` says how far it got
    FAILED = "failed"  # it could not go on; `error` says why

    @property
    def is_final(self) -> bool:
        """True for the states a job never leaves."""
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


ACTIVE_STATES = frozenset({JobState.PENDING, JobState.RUNNING})


class JobError(ValueError):
    """A job request that cannot be honoured (a bad id, unknown options); says what and where."""


def new_job_id(now_s: float, nonce: int) -> str:
    """A job id for a job created at `now_s` (epoch s): creation time in ms as hex, then the low
    20 bits of `nonce` (random, from the caller). Ids sort by creation time as text."""
    ms = int(now_s * 1000) % (16**JOB_ID_TIME_DIGITS)
    tail = nonce % (16**JOB_ID_RANDOM_DIGITS)
    return f"{ms:0{JOB_ID_TIME_DIGITS}x}{tail:0{JOB_ID_RANDOM_DIGITS}x}"


def parse_job_id(text: str) -> str:
    """`text` as a job id (trimmed, lower case); raises JobError naming the expected form."""
    candidate = text.strip().lower()
    if not _JOB_ID.match(candidate):
        raise JobError(
            f"{text!r} is not a job id: a job id is "
            f"{JOB_ID_TIME_DIGITS + JOB_ID_RANDOM_DIGITS} hex digits, as `jetti-relay dlq jobs` "
            "lists them"
        )
    return candidate


@dataclass(frozen=True)
class ReplayOptions:
    """The replay options a bulk job takes: the mode (re-transform, or resend the stored
    payload) and whether an update may drop lines already in Jetti. A corrected raw order is
    for one key and has no place in a bulk job."""

    resend_stored: bool = False
    accept_line_changes: bool = False

    @property
    def mode(self) -> ReplayMode:
        return ReplayMode.RESEND_STORED if self.resend_stored else ReplayMode.RETRANSFORM

    def to_dict(self) -> dict[str, bool]:
        return {
            "resend_stored": self.resend_stored,
            "accept_line_changes": self.accept_line_changes,
        }

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> ReplayOptions:
        """Options from their dict form (missing names take the defaults); raises JobError for
        an unknown name or a value that is not a boolean."""
        known = set(cls().to_dict())
        unknown = sorted(set(options) - known)
        if unknown:
            raise JobError(
                f"replay job options: unknown {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        for name, value in options.items():
            if not isinstance(value, bool):
                raise JobError(f"replay job options: {name} must be true or false, got {value!r}")
        return cls(**{name: bool(value) for name, value in options.items()})


# How each replay decision is counted: sent again, skipped (with why), or failed.
_SENT = frozenset({Action.REPLAY, Action.REPUBLISH})
_SKIPPED = frozenset({Action.IN_FLIGHT, Action.SUBMITTED, Action.RESOLVED})


@dataclass(frozen=True)
class JobCounts:
    """What a replay job did so far. `replayed`: keys sent through the pipeline again (armed,
    or an armed one published again after a takeover); `skipped`: keys with nothing to do, by
    reason (`in_flight`, `submitted`, `resolved`, `gone`: purged since the snapshot); `failed`:
    keys that cannot be replayed (no ledger entry, erased, a bad stored payload), with the
    first FAILURES_KEPT of them and why in `failures`."""

    replayed: int = 0
    failed: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def worked(self) -> int:
        """Keys counted, whatever their outcome."""
        return self.replayed + self.failed + sum(self.skipped.values())

    def add(self, order_key: str, action: Action | None, why: str = "") -> JobCounts:
        """These counts plus one key's outcome (`action` None: the entry is gone)."""
        if action in _SENT:
            return JobCounts(self.replayed + 1, self.failed, self.skipped, self.failures)
        if action is None or action in _SKIPPED:
            reason = SKIP_GONE if action is None else str(action)
            skipped = dict(self.skipped)
            skipped[reason] = skipped.get(reason, 0) + 1
            return JobCounts(self.replayed, self.failed, skipped, self.failures)
        failures = self.failures
        if len(failures) < FAILURES_KEPT:
            failures = (*failures, (order_key, why))
        return JobCounts(self.replayed, self.failed + 1, self.skipped, failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "failed": self.failed,
            "skipped": dict(sorted(self.skipped.items())),
            "failures": [{"order_key": k, "why": w} for k, w in self.failures],
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobCounts:
        """Counts from `to_dict`'s form; missing parts count zero."""
        return cls(
            replayed=int(data.get("replayed", 0)),
            failed=int(data.get("failed", 0)),
            skipped={str(k): int(v) for k, v in dict(data.get("skipped", {})).items()},
            failures=tuple(
                (str(f.get("order_key", "")), str(f.get("why", "")))
                for f in data.get("failures", [])
            ),
        )


def blend_rate(previous: float | None, keys: int, elapsed_s: float) -> float | None:
    """The reported rate (keys/s) after a chunk of `keys` took `elapsed_s`: an exponential
    moving average, so one slow chunk does not swing the ETA. None until measurable."""
    if keys <= 0 or elapsed_s <= 0:
        return previous
    sample = keys / elapsed_s
    if previous is None:
        return sample
    return previous + RATE_WEIGHT * (sample - previous)


def eta_s(total: int, done: int, rate_per_s: float | None) -> float | None:
    """Seconds until `total` keys are done at `rate_per_s`, None when unknown."""
    if rate_per_s is None or rate_per_s <= 0:
        return None
    return max(0, total - done) / rate_per_s


def replay_budget_per_s(fleet_rate_per_s: float, share: float, running_jobs: int) -> float:
    """Keys one job may re-arm per second: `share` of the fleet's rate, split evenly between
    the jobs running at once (so two jobs together still take one share)."""
    return fleet_rate_per_s * share / max(1, running_jobs)


def chunk_size(budget_per_s: float, lease_ttl_s: float, *, most: int) -> int:
    """Keys per chunk: about a fifth of the lease's life at `budget_per_s`, so the runner
    renews its lease (between chunks) well before it runs out; at least 1, at most `most`."""
    return max(1, min(most, int(budget_per_s * lease_ttl_s / 5)))


class Pacer:
    """At most `rate_per_s` sends, evenly spaced; times come from the caller (monotonic s)."""

    def __init__(self, rate_per_s: float) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s!r}")
        self.interval_s = 1.0 / rate_per_s
        self._next_at: float | None = None

    def delay_s(self, now: float) -> float:
        """How long to wait before the next send."""
        return 0.0 if self._next_at is None else max(0.0, self._next_at - now)

    def sent(self, now: float) -> None:
        """Record a send at `now` (after waiting `delay_s`)."""
        self._next_at = now + self.interval_s


@dataclass(frozen=True)
class Job:
    """One job as the CLI and the console show it. Times are epoch seconds; `done` is the
    cursor (keys of the snapshot worked through); `rate_per_s` the measured pace; `eta_s`
    the time left at that pace (None when unknown or ended); `waiting_reason` why a running
    job holds back (None while it goes); `filter` and `options` as it was created with."""

    id: str
    kind: str
    state: JobState
    total: int
    done: int
    counts: JobCounts
    rate_per_s: float | None
    eta_s: float | None
    created_by: str
    created_at: float
    updated_at: float
    cancel_requested: bool
    waiting_reason: str | None
    error: str | None
    filter: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    holder: str | None = None
    last_progress_at: float | None = None
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `--json` output and the console's API)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": str(self.state),
            "total": self.total,
            "done": self.done,
            "counts": self.counts.to_dict(),
            "rate_per_s": self.rate_per_s,
            "eta_s": self.eta_s,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "cancel_requested": self.cancel_requested,
            "waiting_reason": self.waiting_reason,
            "error": self.error,
            "filter": dict(self.filter),
            "options": dict(self.options),
            "holder": self.holder,
            "last_progress_at": self.last_progress_at,
            "ended_at": self.ended_at,
        }
