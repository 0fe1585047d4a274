"""The job runner (worker/pipeline/job_runner.py) on a real Redis, with a real publisher on a Redis
broker (no worker consumes: the re-armed orders stay PENDING, their messages in the queue).

A job runs to done; a cancel stops it between chunks; a holder stopped cleanly, or killed with
SIGKILL in another process, is taken over and every key is re-armed exactly once; re-arms keep to
the replay share of the rate; the job waits while the PENDING backlog is over its limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from ops.dlq.jobs import cancel_job, create_replay_job, job_status
from tests.factories import one_line_order
from tests.fixtures.dead_letters import DeadLetterDesk
from tests.fixtures.pipeline import wait_until
from worker.core.jobs import Job, JobState
from worker.core.records import NewVersion
from worker.core.states import DeadStatus, OrderState
from worker.pipeline.job_runner import JobRunner, JobRunnerConfig
from worker.publisher import Publisher
from worker.settings import Settings
from worker.store.dead_query import DeadFilter
from worker.store.jobs import JobStore
from worker.store.leases import Leader
from worker.wiring import Stores, build_stores

REPO = Path(__file__).resolve().parents[3]
# Short enough that a take-over after a kill costs the test about a second.
LEASE_TTL_S = 1.0

# A runner in its own process, until it is killed (argv: redis URL, holder, fleet rate).
RUNNER_PROCESS = """
import sys, threading
from tests.integration.pipeline.test_job_runner import build_runner
runner = build_runner(sys.argv[1], holder=sys.argv[2], fleet_rate_per_s=float(sys.argv[3]))
runner.run(threading.Event())
"""


def build_runner(
    redis_url: str,
    *,
    holder: str,
    fleet_rate_per_s: float = 1000.0,
    rate_share: float = 1.0,
    backlog_limit: int = 0,
    chunk_max: int = 100,
) -> JobRunner:
    """A runner as `worker.runtime.build_job_runner` makes one, on the test Redis (default key
    prefix) with a short lease and a publisher on the Redis broker."""
    settings = Settings(redis_url=redis_url, broker_url=redis_url)
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    stores = build_stores(settings, client)
    publisher = Publisher.from_broker_url(
        redis_url,
        connect_timeout_s=5.0,
        socket_timeout_s=5.0,
        visibility_timeout_s=60.0,
        queue=stores.keys.orders_queue(),
    )
    return JobRunner(
        config=JobRunnerConfig(
            holder=holder,
            fleet_rate_per_s=fleet_rate_per_s,
            rate_share=rate_share,
            backlog_limit=backlog_limit,
            lease_ttl_s=LEASE_TTL_S,
            poll_interval_s=0.05,
            chunk_max=chunk_max,
        ),
        jobs=JobStore(client, stores.keys),
        leases=Leader(client, stores.keys),
        ledger=stores.ledger,
        dead_letters=stores.dead,
        publisher=publisher,
        audit=stores.audit,
        pending=lambda: stores.ledger.state_counts().get(OrderState.PENDING, 0),
    )


@pytest.fixture
def desk(redis_url: str) -> Iterator[DeadLetterDesk]:
    d = DeadLetterDesk(redis_url)
    yield d
    d.client.close()


@pytest.fixture
def stores(desk: DeadLetterDesk, redis_url: str) -> Stores:
    return build_stores(Settings(redis_url=redis_url, broker_url=redis_url), desk.client)


def dead_job(desk: DeadLetterDesk, stores: Stores, count: int) -> tuple[Job, list[str]]:
    """`count` dead letters and a pending replay job over them."""
    now = time.time()
    keys = [f"shop:{i:04d}" for i in range(count)]
    for key in keys:
        desk.make_dead(key, now=now - 60)
    return create_replay_job(stores, DeadFilter(), options={}, actor="ana", now=now), keys


def current(stores: Stores, job: Job) -> Job:
    found = job_status(stores, job.id)
    assert found is not None
    return found


def rearms(desk: DeadLetterDesk, key: str) -> int:
    """How many times the ledger re-armed the order (its `replay` events)."""
    return sum(1 for e in desk.ledger.events(key) if e.get("type") == "replay")


def in_thread(runner: JobRunner) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def test_a_job_runs_to_done_and_every_key_is_rearmed_and_published(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    job, keys = dead_job(desk, stores, 12)
    runner = build_runner(redis_url, holder="w1", chunk_max=5)
    assert runner.run_once(threading.Event()) == [job.id]
    ended = current(stores, job)
    assert (ended.state, ended.done, ended.total) == (JobState.DONE, 12, 12)
    assert ended.counts.replayed == 12
    assert ended.rate_per_s is not None and ended.rate_per_s > 0
    assert all(desk.state(k) is OrderState.PENDING for k in keys)
    assert all(desk.status(k) is DeadStatus.REPLAYED for k in keys)
    assert stores.client.llen(stores.keys.orders_queue()) == 12
    (end,) = stores.audit.read(action="job_end")
    assert end.details["state"] == "done"


def test_a_cancel_stops_the_job_between_chunks_and_reports_how_far_it_got(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    """At 20 keys/s (4-key chunks), a cancel after the first chunk ends the job cancelled with
    its counts; the keys after the cursor stay dead."""
    job, keys = dead_job(desk, stores, 60)
    thread, stop = in_thread(build_runner(redis_url, holder="w1", fleet_rate_per_s=20.0))
    try:
        wait_until(lambda: current(stores, job).done >= 4, timeout_s=20, what="a first chunk")
        cancel_job(stores, job.id, actor="bob")
        wait_until(
            lambda: current(stores, job).state is JobState.CANCELLED,
            timeout_s=20,
            what="the job to end cancelled",
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    ended = current(stores, job)
    assert 4 <= ended.done < 60
    assert ended.counts.replayed == ended.done
    snapshot = JobStore(stores.client, stores.keys).keys_slice(job.id, 0, len(keys))
    assert sorted(snapshot) == keys
    assert all(desk.state(k) is OrderState.PENDING for k in snapshot[: ended.done])
    assert all(desk.state(k) is OrderState.DEAD for k in snapshot[ended.done :])


def test_a_runner_stopped_mid_job_hands_it_to_another_at_once(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    """A clean stop gives the lease up: a second runner resumes at the cursor and finishes."""
    job, keys = dead_job(desk, stores, 30)
    thread, stop = in_thread(build_runner(redis_url, holder="w1", fleet_rate_per_s=20.0))
    wait_until(lambda: current(stores, job).done >= 4, timeout_s=20, what="a first chunk")
    stop.set()
    thread.join(timeout=10)
    stopped_at = current(stores, job).done
    assert stopped_at < 30
    survivor = build_runner(redis_url, holder="w2")
    assert survivor.run_once(threading.Event()) == [job.id]
    ended = current(stores, job)
    assert (ended.state, ended.done, ended.holder) == (JobState.DONE, 30, "w2")
    assert ended.counts.replayed == 30
    assert [rearms(desk, k) for k in keys] == [1] * 30


def test_a_killed_holder_is_taken_over_after_the_lease_and_nothing_is_rearmed_twice(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    """SIGKILL of the process holding the job: another runner gets the lease once it runs out
    (LEASE_TTL_S), resumes at the saved cursor, and each key is re-armed exactly once (the
    killed chunk's keys already armed are only published again)."""
    job, keys = dead_job(desk, stores, 40)
    doomed = subprocess.Popen(
        [sys.executable, "-c", RUNNER_PROCESS, redis_url, "doomed", "20"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: current(stores, job).done >= 8, timeout_s=30, what="two chunks")
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    killed_at = current(stores, job)
    assert killed_at.holder == "doomed"
    assert killed_at.state is JobState.RUNNING
    survivor = build_runner(redis_url, holder="survivor")
    deadline = time.monotonic() + 20
    while current(stores, job).state is JobState.RUNNING and time.monotonic() < deadline:
        survivor.run_once(threading.Event())  # refused until the lease runs out
        time.sleep(0.1)
    ended = current(stores, job)
    assert (ended.state, ended.done, ended.holder) == (JobState.DONE, 40, "survivor")
    assert ended.counts.replayed == 40
    assert [rearms(desk, k) for k in keys] == [1] * 40
    assert [desk.history(k).count("replayed") for k in keys] == [1] * 40


def test_rearms_keep_to_the_replay_share_of_the_rate(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    """A fleet rate of 40/s with a 0.25 share: at most 10 re-arms in any second (+1 for the
    window's edge), counted from the replays' audit times."""
    job, _keys = dead_job(desk, stores, 25)
    runner = build_runner(redis_url, holder="w1", fleet_rate_per_s=40.0, rate_share=0.25)
    runner.run_once(threading.Event())
    assert current(stores, job).state is JobState.DONE
    times = sorted(r.at for r in stores.audit.read(action="replay", limit=1000))
    assert len(times) == 25
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 11
    assert times[-1] - times[0] >= 24 / 10.0 * 0.9


def test_the_job_waits_while_the_pending_backlog_is_over_its_limit(
    desk: DeadLetterDesk, stores: Stores, redis_url: str
) -> None:
    """Five new orders PENDING over a limit of three: the job stays running, shows why and
    re-arms nothing; once they are gone (discarded here), it goes on to done."""
    job, _keys = dead_job(desk, stores, 3)
    now = time.time()
    fresh = [f"new:{i}" for i in range(5)]
    for key in fresh:
        desk.ledger.record(
            NewVersion(key, orjson.dumps(one_line_order(key)), None, "shop"),
            now=now,
        )
    thread, stop = in_thread(build_runner(redis_url, holder="w1", backlog_limit=3))
    try:
        wait_until(
            lambda: current(stores, job).waiting_reason is not None,
            timeout_s=20,
            what="the job to wait",
        )
        time.sleep(0.3)  # several polls: it still waits
        waiting = current(stores, job)
        assert waiting.state is JobState.RUNNING
        assert waiting.done == 0
        assert "5 orders pending" in (waiting.waiting_reason or "")
        for key in fresh:
            desk.ledger.discard(key, reason_text="test backlog", actor="t", now=time.time())
        wait_until(lambda: current(stores, job).state is JobState.DONE, timeout_s=20, what="done")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert current(stores, job).counts.replayed == 3
