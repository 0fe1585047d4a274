"""`jetti-relay dlq replay --job`, `--status JOB`, `--cancel JOB` and `dlq jobs` against a real
Redis: the command estimates, creates, shows and cancels; the worker fleet's runner (here one
`JobRunner` as `jetti-relay worker` builds it, in a thread, publishing to the Redis broker) is
what replays.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.fixtures.dead_letters import DeadLetterDesk
from worker.core.exit_codes import ExitCode
from worker.core.jobs import JobState
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.audit import os_user
from worker.store.jobs import JobStore

pytestmark = pytest.mark.integration


@pytest.fixture
def jobs_desk(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[DeadLetterDesk]:
    """Dead letters and the `dlq` command on the test Redis (no sandbox: nothing is sent)."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", redis_url)
    desk = DeadLetterDesk(redis_url)
    yield desk
    desk.client.close()


def _created_id(output: str) -> str:
    line = next(x for x in output.splitlines() if x.startswith("job ") and "created" in x)
    return line.split()[1]


def test_job_with_yes_and_detach_creates_a_pending_job_and_replays_nothing(
    jobs_desk: DeadLetterDesk,
) -> None:
    """--job --yes --detach snapshots what the filter selects into a pending job, audited with
    the OS user, and returns: the command itself re-arms no order."""
    jobs_desk.make_dead("jc-1", reason=DeadReason.REJECTED)
    jobs_desk.make_dead("jc-2", reason=DeadReason.REJECTED)
    jobs_desk.make_dead("jc-3", reason=DeadReason.RETRIES_EXHAUSTED)

    result = jobs_desk.cli("replay", "--job", "--reason", "rejected", "--yes", "--detach")

    assert result.exit_code == ExitCode.OK, result.output
    job_id = _created_id(result.output)
    store = JobStore(jobs_desk.client, jobs_desk.keys)
    job = store.get(job_id)
    assert job is not None and job.state is JobState.PENDING and job.total == 2
    assert sorted(store.keys_slice(job_id, 0, 10)) == ["jc-1", "jc-2"]
    assert job.filter == {"reason": "rejected"} and job.created_by == os_user()
    assert [jobs_desk.state(k) for k in ("jc-1", "jc-2")] == [OrderState.DEAD] * 2
    created = jobs_desk.audit.read(action="job_create")
    assert [r.details["job"] for r in created] == [job_id]
    assert created[0].actor == os_user()


def test_job_dry_run_shows_the_count_and_a_sample_and_creates_nothing(
    jobs_desk: DeadLetterDesk,
) -> None:
    """--job --dry-run --json: how many a job would take and the first --sample entries."""
    for n in range(4):
        jobs_desk.make_dead(f"jd-{n}")

    result = jobs_desk.cli("replay", "--job", "--all", "--dry-run", "--sample", "2", "--json")

    assert result.exit_code == ExitCode.OK, result.output
    doc = json.loads(result.output)
    assert doc["count"] == 4 and len(doc["sample"]) == 2
    assert JobStore(jobs_desk.client, jobs_desk.keys).list() == []


def test_job_without_yes_and_no_answer_creates_nothing(jobs_desk: DeadLetterDesk) -> None:
    """Asked to confirm with no answer to read: exit 2, no job."""
    jobs_desk.make_dead("jn-1")

    result = jobs_desk.cli("replay", "--job", "--all")

    assert result.exit_code == ExitCode.USAGE, result.output
    assert JobStore(jobs_desk.client, jobs_desk.keys).list() == []


@pytest.mark.parametrize(
    "args",
    [["jn-1"], ["--all", "--rate", "5"], ["--all", "--limit", "3"], []],
    ids=["a key", "--rate", "--limit", "no filter"],
)
def test_job_refuses_what_a_job_cannot_take(jobs_desk: DeadLetterDesk, args: list[str]) -> None:
    """A job takes filters (or --all), never KEYs, --rate or --limit: exit 2, nothing created."""
    jobs_desk.make_dead("jn-1")

    result = jobs_desk.cli("replay", "--job", "--yes", "--detach", *args)

    assert result.exit_code == ExitCode.USAGE, result.output
    assert JobStore(jobs_desk.client, jobs_desk.keys).list() == []


def test_status_prints_the_progress_and_its_json_twin(jobs_desk: DeadLetterDesk) -> None:
    """--status JOB shows state and progress; with --json, the job's `to_dict`."""
    jobs_desk.make_dead("js-1")
    job_id = _created_id(jobs_desk.cli("replay", "--job", "--all", "--yes", "--detach").output)

    shown = jobs_desk.cli("replay", "--status", job_id)
    as_json = jobs_desk.cli("replay", "--status", job_id, "--json")

    assert shown.exit_code == ExitCode.OK, shown.output
    assert "pending" in shown.output and "0 of 1" in shown.output
    assert json.loads(as_json.output)["id"] == job_id
    assert json.loads(as_json.output)["state"] == "pending"


@pytest.mark.parametrize(
    ("job_id", "code"),
    [("0123456789abcdef", ExitCode.NOT_FOUND), ("not-a-job", ExitCode.USAGE)],
    ids=["unknown", "malformed"],
)
def test_status_of_no_such_job(jobs_desk: DeadLetterDesk, job_id: str, code: ExitCode) -> None:
    """An unknown id exits 3; a malformed one exits 2 with the form expected."""
    result = jobs_desk.cli("replay", "--status", job_id)

    assert result.exit_code == code, result.output
    if code is ExitCode.USAGE:
        assert "hex digits" in result.output


def test_cancel_ends_a_pending_job_at_once_and_refuses_an_ended_one(
    jobs_desk: DeadLetterDesk,
) -> None:
    """--cancel of a pending job: cancelled, audited; again: exit 7, nothing changes."""
    jobs_desk.make_dead("jx-1")
    job_id = _created_id(jobs_desk.cli("replay", "--job", "--all", "--yes", "--detach").output)

    first = jobs_desk.cli("replay", "--cancel", job_id)
    again = jobs_desk.cli("replay", "--cancel", job_id)

    assert first.exit_code == ExitCode.OK, first.output
    job = JobStore(jobs_desk.client, jobs_desk.keys).get(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    assert again.exit_code == ExitCode.WRONG_STATE, again.output
    assert [r.actor for r in jobs_desk.audit.read(action="job_cancel")] == [os_user()]
    assert jobs_desk.state("jx-1") is OrderState.DEAD


def test_jobs_lists_the_newest_first(jobs_desk: DeadLetterDesk) -> None:
    """`dlq jobs --json` lists the jobs, newest first."""
    jobs_desk.make_dead("jl-1")
    first = _created_id(jobs_desk.cli("replay", "--job", "--all", "--yes", "--detach").output)
    second = _created_id(jobs_desk.cli("replay", "--job", "--all", "--yes", "--detach").output)

    result = jobs_desk.cli("jobs", "--json")

    assert result.exit_code == ExitCode.OK, result.output
    assert [j["id"] for j in json.loads(result.output)] == [second, first]


def test_a_followed_job_is_run_by_the_fleet_to_done(
    jobs_desk: DeadLetterDesk, redis_url: str
) -> None:
    """Without --detach the command follows the job that a worker's runner works through:
    it exits 0 once the job is done, every key re-armed and marked replayed."""
    from worker.runtime import build_job_runner, build_maintenance_parts
    from worker.settings import Settings

    keys = [f"jf-{n}" for n in range(5)]
    for key in keys:
        jobs_desk.make_dead(key)
    settings = Settings(
        _env_file=None, redis_url=redis_url, broker_url=redis_url, pump_interval_s=0.1
    )
    runner = build_job_runner(build_maintenance_parts(settings))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    try:
        result = jobs_desk.cli("replay", "--job", "--all", "--yes")
    finally:
        stop.set()
        thread.join(timeout=10)

    assert result.exit_code == ExitCode.OK, result.output
    assert "done: 5 of 5 worked through; replayed 5" in result.output
    assert {jobs_desk.state(k) for k in keys} == {OrderState.PENDING}
    assert {jobs_desk.status(k) for k in keys} == {DeadStatus.REPLAYED}
