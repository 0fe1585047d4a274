"""Bulk jobs in a real Redis: creation (the key snapshot, the audit), the holder's claim and
progress, cancel, and the service the CLI and the console share (ops/dlq/jobs.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ops.dlq.jobs import (
    AUDIT_CANCEL,
    AUDIT_CREATE,
    JobNotFound,
    cancel_job,
    create_replay_job,
    estimate,
    job_status,
    list_jobs,
)
from tests.fixtures.dead_letters import DeadLetterDesk
from worker.core.jobs import KIND_DLQ_REPLAY, JobCounts, JobError, JobState
from worker.core.replay_plan import Action
from worker.core.states import DeadReason
from worker.settings import Settings
from worker.store.dead_query import DeadFilter
from worker.store.jobs import JOB_KEPT_S, JobStore
from worker.wiring import Stores, build_stores


@pytest.fixture
def desk(redis_url: str) -> Iterator[DeadLetterDesk]:
    """Dead letters under the default prefix, on the flushed test Redis (no sandbox needed)."""
    d = DeadLetterDesk(redis_url)
    yield d
    d.client.close()


@pytest.fixture
def stores(
    redis_client: redis.Redis[bytes], redis_url: str, make_settings: Callable[..., Settings]
) -> Stores:
    return build_stores(make_settings(redis_url=redis_url), redis_client)


@pytest.fixture
def jobs(stores: Stores) -> JobStore:
    return JobStore(stores.client, stores.keys)


def seed(desk: DeadLetterDesk, count: int, *, at: float, **kwargs: Any) -> list[str]:
    keys = [f"shop:{i:04d}" for i in range(count)]
    for key in keys:
        desk.make_dead(key, now=at, **kwargs)
    return keys


def test_a_job_snapshots_the_selected_keys_and_not_later_dead_letters(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    """The keys are fixed at creation: an entry dead-lettered afterwards is not in the job,
    nor one the filter leaves out, nor a resolved one."""
    now = time.time()
    wanted = seed(desk, 3, at=now - 60)
    desk.make_dead("other:1", reason=DeadReason.REJECTED, now=now - 60)
    desk.make_dead("shop:resolved", now=now - 60)
    desk.dead.mark_resolved("shop:resolved", now=now - 30)
    job = create_replay_job(
        stores,
        DeadFilter(reason=DeadReason.RETRIES_EXHAUSTED),
        options={},
        actor="ana",
        now=now,
    )
    desk.make_dead("shop:late", now=now + 1)
    assert job.total == 3
    assert sorted(jobs.keys_slice(job.id, 0, 100)) == wanted
    assert job.state is JobState.PENDING
    assert job.kind == KIND_DLQ_REPLAY
    assert job.filter == {"reason": "retries_exhausted"}
    assert job.options == {"resend_stored": False, "accept_line_changes": False}
    assert job_status(stores, job.id) == job


def test_no_filter_means_every_entry_not_resolved(desk: DeadLetterDesk, stores: Stores) -> None:
    """`DeadFilter()` (the benchmark's call) takes every dead letter that is not resolved."""
    now = time.time()
    seed(desk, 4, at=now - 10)
    desk.make_dead("other:1", reason=DeadReason.REJECTED, now=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="bench", now=now)
    assert job.total == 5


def test_creation_and_cancel_are_audited_with_the_actor(
    desk: DeadLetterDesk, stores: Stores
) -> None:
    now = time.time()
    seed(desk, 2, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    cancel_job(stores, job.id, actor="bob")
    (created,) = stores.audit.read(action=AUDIT_CREATE)
    assert created.actor == "ana"
    (cancelled,) = stores.audit.read(action=AUDIT_CANCEL)
    assert cancelled.actor == "bob"


def test_an_estimate_counts_and_samples_without_writing(
    desk: DeadLetterDesk, stores: Stores
) -> None:
    now = time.time()
    seed(desk, 7, at=now - 10)
    found = estimate(stores, DeadFilter(key_glob="shop:*"), sample=3)
    assert found.count == 7
    assert len(found.sample) == 3
    assert list_jobs(stores) == []


def test_unknown_options_are_refused_before_anything_is_written(
    desk: DeadLetterDesk, stores: Stores
) -> None:
    seed(desk, 1, at=time.time() - 10)
    with pytest.raises(JobError, match="unknown edit"):
        create_replay_job(stores, DeadFilter(), options={"edit": True}, actor="a", now=time.time())
    assert list_jobs(stores) == []


def test_a_pending_job_is_cancelled_at_once_and_never_started(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    now = time.time()
    seed(desk, 2, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    cancelled = cancel_job(stores, job.id, actor="bob")
    assert cancelled.state is JobState.CANCELLED
    assert jobs.start(job.id, holder="w1", now=now + 1) is None
    assert jobs.active() == []


def test_a_running_job_is_asked_to_cancel_and_its_holder_ends_it(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    """Cancel of a running job only sets the flag; the holder ends it, and it then expires
    after JOB_KEPT_S with its key list."""
    now = time.time()
    seed(desk, 2, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    assert jobs.start(job.id, holder="w1", now=now) is not None
    asked = cancel_job(stores, job.id, actor="bob")
    assert asked.state is JobState.RUNNING
    assert asked.cancel_requested
    ended = jobs.finish(job.id, holder="w1", state=JobState.CANCELLED, error=None, now=now + 1)
    assert ended is not None and ended.state is JobState.CANCELLED
    ttl_s = stores.client.ttl(stores.keys.job(job.id))
    assert 0 < ttl_s <= JOB_KEPT_S
    assert 0 < stores.client.ttl(stores.keys.job_keys(job.id)) <= JOB_KEPT_S


def test_cancelling_an_ended_job_changes_nothing(desk: DeadLetterDesk, stores: Stores) -> None:
    now = time.time()
    seed(desk, 1, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    cancel_job(stores, job.id, actor="bob")
    again = cancel_job(stores, job.id, actor="carl")
    assert again.state is JobState.CANCELLED
    assert len(stores.audit.read(action=AUDIT_CANCEL)) == 1


def test_only_the_holder_named_in_the_job_saves_progress(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    """A runner whose lease ran out (w1) cannot move the cursor its successor (w2) set."""
    now = time.time()
    seed(desk, 5, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    jobs.start(job.id, holder="w1", now=now)
    counts = JobCounts().add("shop:0000", Action.REPLAY)
    assert jobs.save_progress(
        job.id, holder="w1", cursor=1, counts=counts, rate_per_s=2.0, now=now + 1
    )
    jobs.start(job.id, holder="w2", now=now + 2)
    assert jobs.save_progress(
        job.id, holder="w2", cursor=4, counts=counts, rate_per_s=2.0, now=now + 3
    )
    assert not jobs.save_progress(
        job.id, holder="w1", cursor=2, counts=counts, rate_per_s=2.0, now=now + 4
    )
    assert jobs.finish(job.id, holder="w1", state=JobState.DONE, error=None, now=now + 5) is None
    current = job_status(stores, job.id)
    assert current is not None
    assert (current.done, current.holder, current.state) == (4, "w2", JobState.RUNNING)
    assert current.rate_per_s == 2.0
    assert current.eta_s == pytest.approx(0.5)


def test_a_waiting_reason_shows_until_the_next_progress(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    now = time.time()
    seed(desk, 2, at=now - 10)
    job = create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now)
    jobs.start(job.id, holder="w1", now=now)
    jobs.set_waiting(job.id, holder="w1", reason="900 orders pending", now=now)
    waiting = job_status(stores, job.id)
    assert waiting is not None and waiting.waiting_reason == "900 orders pending"
    jobs.save_progress(
        job.id, holder="w1", cursor=1, counts=JobCounts(), rate_per_s=None, now=now + 1
    )
    going = job_status(stores, job.id)
    assert going is not None and going.waiting_reason is None


def test_listing_is_newest_first_and_active_is_oldest_first(
    desk: DeadLetterDesk, stores: Stores, jobs: JobStore
) -> None:
    now = time.time()
    seed(desk, 1, at=now - 10)
    first = create_replay_job(stores, DeadFilter(), options={}, actor="a", now=now)
    second = create_replay_job(stores, DeadFilter(), options={}, actor="a", now=now + 1)
    third = create_replay_job(stores, DeadFilter(), options={}, actor="a", now=now + 2)
    cancel_job(stores, second.id, actor="a")
    assert [j.id for j in list_jobs(stores)] == [third.id, second.id, first.id]
    assert [job_id for job_id, _ in jobs.active()] == [first.id, third.id]


def test_a_bad_job_id_is_refused_and_an_unknown_one_is_not_found(stores: Stores) -> None:
    with pytest.raises(JobError, match="not a job id"):
        job_status(stores, "../x")
    assert job_status(stores, "0" * 16) is None
    with pytest.raises(JobNotFound, match="no job"):
        cancel_job(stores, "0" * 16, actor="a")
