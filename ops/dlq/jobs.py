"""Bulk replay jobs as the CLI and the console create, follow and cancel them.

`estimate` counts what a filter selects and shows a sample (nothing is written);
`create_replay_job` snapshots the selected order keys into a pending job that the worker fleet
runs (`worker.pipeline.job_runner`); `job_status`, `list_jobs` and `cancel_job` read and cancel.
Creation and cancel are audited with the actor (the job's end is audited by its runner).
Neither the CLI nor the console process ever replays a key of a job itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from worker.core.dead_entry import DeadEntry
from worker.core.jobs import KIND_DLQ_REPLAY, Job, JobError, ReplayOptions, parse_job_id
from worker.core.states import DeadStatus
from worker.store.dead_query import DeadFilter, iter_entries
from worker.store.jobs import JobStore, select_dead_keys
from worker.wiring import Stores

# The audit actions of a job's creation and cancel.
AUDIT_CREATE = "job_create"
AUDIT_CANCEL = "job_cancel"
# Entries an estimate shows unless told otherwise.
DEFAULT_SAMPLE = 10
# Jobs `list_jobs` returns unless told otherwise.
DEFAULT_LIST_LIMIT = 20


class JobNotFound(LookupError):
    """No job under that id (never created, or ended more than JOB_KEPT_S ago)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} (ended jobs are kept 7 days)")
        self.job_id = job_id


@dataclass(frozen=True)
class Estimate:
    """What a replay job over a filter would take: `count` entries (not resolved, dead-lettered
    up to the estimate), the first `sample` of them, newest first."""

    count: int
    sample: list[DeadEntry]


def filter_doc(flt: DeadFilter) -> dict[str, Any]:
    """The filter as JSON-ready values (only the filters that are set)."""
    doc: dict[str, Any] = {}
    for f in fields(flt):
        value = getattr(flt, f.name)
        if value is not None:
            doc[f.name] = str(value) if f.name in ("reason", "status") else value
    return doc


def _selected_keys(stores: Stores, flt: DeadFilter, now: float) -> list[str]:
    """Keys a job over `flt` takes: not resolved, dead-lettered at or before `now` (an entry
    dead-lettered after the job was created is never in it), newest first. From the indexes
    when the filter allows; otherwise by reading the entries."""
    keys = select_dead_keys(stores.client, stores.keys, flt, until=now)
    if keys is not None:
        return keys
    return [
        entry.order_key
        for entry in iter_entries(stores.dead, flt.bounded(now))
        if entry.status is not DeadStatus.RESOLVED
    ]


def estimate(stores: Stores, flt: DeadFilter, *, sample: int = DEFAULT_SAMPLE) -> Estimate:
    """Count the entries a replay job over `flt` would take now, and read the first `sample`."""
    keys = _selected_keys(stores, flt, time.time())
    shown = [e for e in (stores.dead.get(k) for k in keys[:sample]) if e is not None]
    return Estimate(len(keys), shown)


def create_replay_job(
    stores: Stores,
    flt: DeadFilter,
    *,
    options: Mapping[str, Any],
    actor: str,
    now: float,
) -> Job:
    """Snapshot the keys `flt` selects at `now` into a pending replay job, audit it under
    `actor` and return it. `options`: `ReplayOptions` as a dict (`{}`: re-transform, no line
    changes). Raises JobError for unknown options. A job over no entry is created all the
    same (it ends done at once), so a caller always has an id to report."""
    opts = ReplayOptions.from_mapping(options)
    keys = _selected_keys(stores, flt, now)
    job = JobStore(stores.client, stores.keys).create(
        kind=KIND_DLQ_REPLAY,
        filter_doc=filter_doc(flt),
        options=opts.to_dict(),
        created_by=actor,
        order_keys=keys,
        now=now,
    )
    stores.audit.record(
        AUDIT_CREATE,
        actor=actor,
        now=now,
        details={
            "job": job.id,
            "kind": job.kind,
            "total": job.total,
            "filter": dict(job.filter),
            "options": dict(job.options),
        },
    )
    return job


def job_status(stores: Stores, job_id: str) -> Job | None:
    """The job, None when there is none. Raises JobError for a malformed id."""
    return JobStore(stores.client, stores.keys).get(job_id)


def list_jobs(stores: Stores, limit: int = DEFAULT_LIST_LIMIT) -> list[Job]:
    """The newest `limit` jobs, newest first."""
    return JobStore(stores.client, stores.keys).list(limit=limit)


def cancel_job(stores: Stores, job_id: str, *, actor: str) -> Job:
    """Cancel the job for `actor` and return it as it is now: a pending job is cancelled at
    once, a running one once its runner finishes the chunk in hand (`cancel_requested`); an
    ended job is returned unchanged and nothing is audited. Raises JobError for a malformed
    id, JobNotFound when there is no such job."""
    job_id = parse_job_id(job_id)
    now = time.time()
    before = JobStore(stores.client, stores.keys).get(job_id)
    if before is None:
        raise JobNotFound(job_id)
    job = JobStore(stores.client, stores.keys).request_cancel(job_id, actor=actor, now=now)
    if job is None:
        raise JobNotFound(job_id)
    if not before.state.is_final:
        stores.audit.record(
            AUDIT_CANCEL,
            actor=actor,
            now=now,
            details={"job": job_id, "state": str(job.state), "done": job.done, "total": job.total},
        )
    return job


__all__ = [
    "AUDIT_CANCEL",
    "AUDIT_CREATE",
    "Estimate",
    "JobError",
    "JobNotFound",
    "cancel_job",
    "create_replay_job",
    "estimate",
    "filter_doc",
    "job_status",
    "list_jobs",
]
