"""Ports of the job runner: the job store, the leases it works under and the dead letters it
replays (`worker.store.jobs.JobStore`, `worker.store.leases.Leader`,
`worker.store.dead_letters.DeadLetters`)."""

from __future__ import annotations

from typing import Protocol

from worker.core.dead_entry import DeadEntry
from worker.core.jobs import Job, JobCounts, JobState
from worker.pipeline.ports.upkeep import ReplayDeadLetters


class JobBook(Protocol):
    """The jobs as the runner reads and advances them (`worker.store.jobs.JobStore`)."""

    def get(self, job_id: str) -> Job | None:
        """The job, None when there is none."""
        ...

    def active(self) -> list[tuple[str, JobState]]:
        """(id, state) of the pending and running jobs, oldest first."""
        ...

    def keys_slice(self, job_id: str, start: int, count: int) -> list[str]:
        """Up to `count` order keys of the job's snapshot from index `start`."""
        ...

    def start(self, job_id: str, *, holder: str, now: float) -> Job | None:
        """Take the job (pending or running -> running under `holder`); None when ended."""
        ...

    def save_progress(
        self,
        job_id: str,
        *,
        holder: str,
        cursor: int,
        counts: JobCounts,
        rate_per_s: float | None,
        now: float,
    ) -> bool:
        """Record the cursor and counts; False when the job is no longer `holder`'s."""
        ...

    def set_waiting(self, job_id: str, *, holder: str, reason: str | None, now: float) -> bool:
        """Show why the job holds back (None: it goes on); False when not `holder`'s."""
        ...

    def finish(
        self, job_id: str, *, holder: str, state: JobState, error: str | None, now: float
    ) -> Job | None:
        """End the job in a final state; None when it is not `holder`'s."""
        ...


class JobLeases(Protocol):
    """Per-job leases (`worker.store.leases.Leader`, one role per job)."""

    def try_lead(self, role: str, *, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease of `role` for `ttl_s`; True while `holder` has it."""
        ...

    def resign(self, role: str, *, holder: str) -> bool:
        """Give the lease up so another runner takes over at once."""
        ...


class JobDeadLetters(ReplayDeadLetters, Protocol):
    """The dead letters a replay job reads and re-arms (`worker.store.dead_letters`)."""

    def get(self, order_key: str) -> DeadEntry | None:
        """The entry under `order_key`, None when there is none (purged)."""
        ...
