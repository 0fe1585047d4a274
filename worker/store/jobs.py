"""Bulk jobs in Redis: the job hash, its snapshot of order keys, and the index by creation time.

Layout (names from `worker.core.keys.Keys`; the hash's fields are spelled here only):

    jobs()          sorted set: job id -> created_at (epoch s)
    job(id)         hash: the fields of JOB_FIELDS below
    job_keys(id)    list: the order keys the job works through, fixed at creation

A job is written in one MULTI (keys, hash, index), so a reader never sees a job without its
keys. State changes that race (a cancel against a runner taking the job) run under WATCH on
the hash; progress is written only by the holder named in the hash (`save_progress` compares
it), so a runner whose lease ran out while it was slow cannot move the cursor back over its
successor's work. An ended job and its keys expire after JOB_KEPT_S; its index entry goes
when a listing finds the hash gone.
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.client import Pipeline

from worker.core.jobs import (
    ACTIVE_STATES,
    Job,
    JobCounts,
    JobState,
    eta_s,
    new_job_id,
    parse_job_id,
)
from worker.core.keys import Keys
from worker.core.states import DeadStatus
from worker.store.dead_query import DeadFilter

# How long an ended job stays listed (and its key snapshot kept), seconds.
JOB_KEPT_S = 7 * 86400.0
# Keys pushed per RPUSH when a job is created.
PUSH_CHUNK = 1000
# Most recent jobs a runner looks through for active ones.
ACTIVE_SCAN_LIMIT = 1000
# Members per ZMSCORE when the resolved entries are taken out of a selection.
SCORE_CHUNK = 1000

# The job hash's fields.
F_KIND = "kind"
F_STATE = "state"
F_FILTER = "filter"  # JSON
F_OPTIONS = "options"  # JSON
F_CREATED_BY = "created_by"
F_CREATED_AT = "created_at"
F_UPDATED_AT = "updated_at"
F_TOTAL = "total"
F_CURSOR = "cursor"
F_COUNTS = "counts"  # JSON, JobCounts.to_dict
F_RATE = "rate_per_s"
F_LAST_PROGRESS_AT = "last_progress_at"
F_HOLDER = "holder"
F_ERROR = "error"
F_CANCEL_REQUESTED = "cancel_requested"  # "1" once asked
F_CANCELLED_BY = "cancelled_by"
F_WAITING = "waiting_reason"
F_ENDED_AT = "ended_at"
JOB_FIELDS = (
    F_KIND,
    F_STATE,
    F_FILTER,
    F_OPTIONS,
    F_CREATED_BY,
    F_CREATED_AT,
    F_UPDATED_AT,
    F_TOTAL,
    F_CURSOR,
    F_COUNTS,
    F_RATE,
    F_LAST_PROGRESS_AT,
    F_HOLDER,
    F_ERROR,
    F_CANCEL_REQUESTED,
    F_CANCELLED_BY,
    F_WAITING,
    F_ENDED_AT,
)

T = TypeVar("T")


def _now_mode(pipe: Pipeline[bytes]) -> redis.Redis[bytes]:
    # A WATCHing pipeline runs commands at once until multi(); the stubs type them as queued.
    return cast("redis.Redis[bytes]", pipe)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def parse_job(job_id: str, fields: Mapping[str, str]) -> Job:
    """The `Job` a job hash describes (decoded field -> value)."""
    state = JobState(fields.get(F_STATE, JobState.FAILED.value))
    total = int(fields.get(F_TOTAL) or 0)
    done = int(fields.get(F_CURSOR) or 0)
    rate = _float(fields.get(F_RATE))
    return Job(
        id=job_id,
        kind=fields.get(F_KIND, ""),
        state=state,
        total=total,
        done=done,
        counts=JobCounts.from_mapping(json.loads(fields.get(F_COUNTS) or "{}")),
        rate_per_s=rate,
        eta_s=None if state.is_final else eta_s(total, done, rate),
        created_by=fields.get(F_CREATED_BY, ""),
        created_at=float(fields.get(F_CREATED_AT) or 0.0),
        updated_at=float(fields.get(F_UPDATED_AT) or 0.0),
        cancel_requested=fields.get(F_CANCEL_REQUESTED) == "1",
        waiting_reason=fields.get(F_WAITING) or None,
        error=fields.get(F_ERROR) or None,
        filter=json.loads(fields.get(F_FILTER) or "{}"),
        options=json.loads(fields.get(F_OPTIONS) or "{}"),
        holder=fields.get(F_HOLDER) or None,
        last_progress_at=_float(fields.get(F_LAST_PROGRESS_AT)),
        ended_at=_float(fields.get(F_ENDED_AT)),
    )


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {bytes(k).decode(): bytes(v).decode() for k, v in raw.items()}


def select_dead_keys(
    client: redis.Redis[bytes], keys: Keys, flt: DeadFilter, *, until: float
) -> builtins.list[str] | None:
    """The keys of the dead letters a replay job over `flt` takes: matching, not resolved,
    dead-lettered at or before `until`; newest first, from the indexes alone (no entry read).
    None when the filter needs the entries themselves (error text, HTTP status, source): the
    caller then walks them (`dead_query.iter_entries`). About 10 ms for 10,000 entries where
    reading them takes a second."""
    if flt.error_contains is not None or flt.http_status is not None or flt.source is not None:
        return None
    bounded = flt.bounded(until)
    if bounded.reason is not None:
        base = keys.dead_reason_index(bounded.reason)
    elif bounded.status is not None:
        base = keys.dead_status_index(bounded.status)
    else:
        base = keys.dead_index()
    hi = "+inf" if bounded.until is None else repr(bounded.until)
    lo = "-inf" if bounded.since is None else repr(bounded.since)
    found = [bytes(m).decode() for m in client.zrevrangebyscore(base, hi, lo)]
    if bounded.key_glob is not None:
        found = [k for k in found if fnmatch.fnmatchcase(k, bounded.key_glob)]
    if bounded.status is DeadStatus.RESOLVED:
        return []
    checks = [(keys.dead_status_index(DeadStatus.RESOLVED), False)]
    if bounded.status is not None and bounded.reason is not None:
        checks.append((keys.dead_status_index(bounded.status), True))
    for index, keep_when_in in checks:
        kept: builtins.list[str] = []
        for start in range(0, len(found), SCORE_CHUNK):
            part = found[start : start + SCORE_CHUNK]
            scores = client.execute_command("ZMSCORE", index, *part)
            kept += [
                k for k, s in zip(part, scores, strict=True) if (s is not None) == keep_when_in
            ]
        found = kept
    return found


class JobStore:
    """Create, read, claim, advance, cancel and end jobs (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        nonce: Callable[[], int] = lambda: secrets.randbits(32),
    ) -> None:
        self._client = client
        self._keys = keys
        self._nonce = nonce

    # --- create and read ---------------------------------------------------------------
    def create(
        self,
        *,
        kind: str,
        filter_doc: Mapping[str, Any],
        options: Mapping[str, Any],
        created_by: str,
        order_keys: Sequence[str],
        now: float,
    ) -> Job:
        """Record a pending job over `order_keys` (in this order) and return it. `filter_doc`
        and `options` are stored as JSON, as given (for display; the runner reads `options`)."""
        while True:
            job_id = new_job_id(now, self._nonce())
            if not self._client.exists(self._keys.job(job_id)):
                break
        fields: dict[str, str] = {
            F_KIND: kind,
            F_STATE: JobState.PENDING.value,
            F_FILTER: json.dumps(dict(filter_doc), sort_keys=True),
            F_OPTIONS: json.dumps(dict(options), sort_keys=True),
            F_CREATED_BY: created_by,
            F_CREATED_AT: repr(float(now)),
            F_UPDATED_AT: repr(float(now)),
            F_TOTAL: str(len(order_keys)),
            F_CURSOR: "0",
            F_COUNTS: json.dumps(JobCounts().to_dict()),
            F_CANCEL_REQUESTED: "0",
        }
        list_key = self._keys.job_keys(job_id)
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(list_key)
            for start in range(0, len(order_keys), PUSH_CHUNK):
                pipe.rpush(list_key, *order_keys[start : start + PUSH_CHUNK])
            pipe.hset(self._keys.job(job_id), mapping=fields)  # type: ignore[arg-type]
            pipe.zadd(self._keys.jobs(), {job_id: now})
            pipe.execute()
        return parse_job(job_id, fields)

    def get(self, job_id: str) -> Job | None:
        """The job, None when there is none under that id; raises JobError for a malformed id."""
        job_id = parse_job_id(job_id)
        raw = self._client.hgetall(self._keys.job(job_id))
        return parse_job(job_id, _decode(raw)) if raw else None

    def list(self, *, limit: int = 50) -> list[Job]:
        """The newest `limit` jobs, newest first (ids whose hash expired are dropped)."""
        ids = [bytes(i).decode() for i in self._client.zrevrange(self._keys.jobs(), 0, limit - 1)]
        with self._client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self._keys.job(job_id))
            rows = pipe.execute()
        jobs, gone = [], []
        for job_id, raw in zip(ids, rows, strict=True):
            if raw:
                jobs.append(parse_job(job_id, _decode(raw)))
            else:
                gone.append(job_id)
        if gone:
            self._client.zrem(self._keys.jobs(), *gone)
        return jobs

    def active(self) -> builtins.list[tuple[str, JobState]]:
        """(id, state) of the pending and running jobs among the ACTIVE_SCAN_LIMIT newest,
        oldest first (the order runners take them in)."""
        ids = [
            bytes(i).decode()
            for i in self._client.zrevrange(self._keys.jobs(), 0, ACTIVE_SCAN_LIMIT - 1)
        ]
        with self._client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._keys.job(job_id), F_STATE)
            states = pipe.execute()
        found = []
        for job_id, state in zip(reversed(ids), reversed(states), strict=True):
            if state is not None and JobState(bytes(state).decode()) in ACTIVE_STATES:
                found.append((job_id, JobState(bytes(state).decode())))
        return found

    def keys_slice(self, job_id: str, start: int, count: int) -> builtins.list[str]:
        """Up to `count` order keys of the snapshot from index `start`."""
        rows = self._client.lrange(self._keys.job_keys(job_id), start, start + count - 1)
        return [bytes(k).decode() for k in rows]

    # --- state changes -----------------------------------------------------------------
    def _transact(self, job_id: str, body: Callable[[Pipeline[bytes], dict[str, str]], T]) -> T:
        """Run `body(pipe, fields)` under WATCH on the job hash, retrying when it changed before
        EXEC; `fields` is the hash as read ({} when there is none)."""
        key = self._keys.job(job_id)
        while True:
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    fields = _decode(_now_mode(pipe).hgetall(key))
                    result = body(pipe, fields)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def start(self, job_id: str, *, holder: str, now: float) -> Job | None:
        """Take the job for `holder` (who holds its lease): pending or running -> running with
        `holder` named. None when the job is gone or has ended (a pending job cancelled)."""

        def body(pipe: Pipeline[bytes], fields: dict[str, str]) -> Job | None:
            if not fields or JobState(fields[F_STATE]).is_final:
                return None
            changes = {
                F_STATE: JobState.RUNNING.value,
                F_HOLDER: holder,
                F_UPDATED_AT: repr(float(now)),
            }
            pipe.multi()
            pipe.hset(self._keys.job(job_id), mapping=changes)  # type: ignore[arg-type]
            return parse_job(job_id, {**fields, **changes})

        return self._transact(job_id, body)

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
        """Record that `holder` worked through the keys before `cursor`; clears a waiting
        reason. False (nothing written) when the job is no longer running under `holder`."""
        changes = {
            F_CURSOR: str(cursor),
            F_COUNTS: json.dumps(counts.to_dict()),
            F_LAST_PROGRESS_AT: repr(float(now)),
            F_UPDATED_AT: repr(float(now)),
            F_WAITING: "",
        }
        if rate_per_s is not None:
            changes[F_RATE] = repr(float(rate_per_s))
        return self._write_if_holder(job_id, holder, changes)

    def set_waiting(self, job_id: str, *, holder: str, reason: str | None, now: float) -> bool:
        """Show why the running job holds back (None: it goes on). False when not `holder`'s."""
        changes = {F_WAITING: reason or "", F_UPDATED_AT: repr(float(now))}
        return self._write_if_holder(job_id, holder, changes)

    def _write_if_holder(self, job_id: str, holder: str, changes: Mapping[str, str]) -> bool:
        def body(pipe: Pipeline[bytes], fields: dict[str, str]) -> bool:
            if fields.get(F_STATE) != JobState.RUNNING.value or fields.get(F_HOLDER) != holder:
                return False
            pipe.multi()
            pipe.hset(self._keys.job(job_id), mapping=dict(changes))  # type: ignore[arg-type]
            return True

        return self._transact(job_id, body)

    def finish(
        self, job_id: str, *, holder: str, state: JobState, error: str | None, now: float
    ) -> Job | None:
        """End the running job held by `holder` in `state` (done, cancelled or failed), and let
        it, its keys and its index entry expire after JOB_KEPT_S. None when not `holder`'s."""
        if not state.is_final:
            raise ValueError(f"finish needs a final state, got {state}")

        def body(pipe: Pipeline[bytes], fields: dict[str, str]) -> Job | None:
            if fields.get(F_STATE) != JobState.RUNNING.value or fields.get(F_HOLDER) != holder:
                return None
            changes = {
                F_STATE: state.value,
                F_ERROR: error or "",
                F_WAITING: "",
                F_ENDED_AT: repr(float(now)),
                F_UPDATED_AT: repr(float(now)),
            }
            pipe.multi()
            self._end(pipe, job_id, changes)
            return parse_job(job_id, {**fields, **changes})

        return self._transact(job_id, body)

    def request_cancel(self, job_id: str, *, actor: str, now: float) -> Job | None:
        """Cancel the job for `actor`: a pending job ends cancelled at once; a running one gets
        `cancel_requested`, which its runner honours after the chunk in hand; an ended job is
        returned unchanged. None when there is no such job."""

        def body(pipe: Pipeline[bytes], fields: dict[str, str]) -> Job | None:
            if not fields:
                return None
            state = JobState(fields[F_STATE])
            if state.is_final:
                return parse_job(job_id, fields)
            changes = {
                F_CANCEL_REQUESTED: "1",
                F_CANCELLED_BY: actor,
                F_UPDATED_AT: repr(float(now)),
            }
            pipe.multi()
            if state is JobState.PENDING:
                changes.update({F_STATE: JobState.CANCELLED.value, F_ENDED_AT: repr(float(now))})
                self._end(pipe, job_id, changes)
            else:
                pipe.hset(self._keys.job(job_id), mapping=changes)  # type: ignore[arg-type]
            return parse_job(job_id, {**fields, **changes})

        return self._transact(job_id, body)

    def _end(self, pipe: Pipeline[bytes], job_id: str, changes: Mapping[str, str]) -> None:
        kept_ms = int(JOB_KEPT_S * 1000)
        pipe.hset(self._keys.job(job_id), mapping=dict(changes))  # type: ignore[arg-type]
        pipe.pexpire(self._keys.job(job_id), kept_ms)
        pipe.pexpire(self._keys.job_keys(job_id), kept_ms)
