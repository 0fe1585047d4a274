"""A Celery child that `jetti-relay worker` starts again rides a replication outage out.

The first start refuses fewer replicas than JETTI_RELAY_MIN_REPLICAS_ACK (exit 2: a
configuration mistake; test_sentinel_failover.py). A child restarted after a crash during a
replica outage must not: it used to refuse with exit 2, which the parent took as final, and the
whole worker (pump, sweeper, intake too) ended until an operator acted. Real processes: a primary
and its replica (`replicated_group`), `jetti-relay worker`, the sandbox over HTTP; the in-process
checks run the `worker_init` hook's check on a real Redis with no replica at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import structlog

from ops.harness.ha import RedisHA
from ops.harness.workers import worker_target_env
from producers.enqueue import enqueue
from tests.factories import raw_order
from tests.fixtures.pipeline import PipelineFactory, PipelineProcess, wait_until
from tests.fixtures.sandbox import Sandbox
from worker import wiring
from worker.settings import CHILD_RESTART_VARIABLE, EXIT_CONFIG, Settings, get_settings
from worker.startup_replication import (
    REPLICAS_WAIT_S,
    check_replication_at_start,
    refuse_short_replication,
)

pytestmark = pytest.mark.integration


def celery_main_pid(worker: PipelineProcess) -> int:
    """The Celery main process: the one child of `jetti-relay worker`."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(worker.process.pid)], capture_output=True, text=True
    ).stdout
    [pid] = [int(line) for line in out.split()]
    return pid


def test_a_restarted_child_starts_and_consumes_while_a_replica_is_down(
    replicated_group: RedisHA, sandbox: Sandbox, tmp_path: Path
) -> None:
    """MIN_REPLICAS_ACK=1 and the only replica goes down; the Celery child is killed (-9). The
    parent starts it again after 1 s, the new child logs the shortage and starts instead of
    exiting 2, and the worker stays up and delivers an order enqueued after the restart."""
    primary_url = replicated_group.nodes[0].url
    env = {
        **worker_target_env(
            primary_url,
            base_url=sandbox.base_url,
            webhook_hash=sandbox.webhook_hash,
            api_token=sandbox.api_token,
            channel_id=sandbox.channel_id,
        ),
        "JETTI_RELAY_JETTI_MODE": "async",
        "JETTI_RELAY_MIN_REPLICAS_ACK": "1",
    }
    settings = Settings(_env_file=None, redis_url=primary_url, broker_url=primary_url)
    client = wiring.redis_client(settings)
    publisher = wiring.publisher(settings)
    factory = PipelineFactory(tmp_path=tmp_path, base_env=env)
    stopped = False
    try:
        worker = factory(concurrency=1, pump=False)
        primary, replica = replicated_group.nodes
        replica.stop()
        stopped = True
        wait_until(
            lambda: replicated_group.connected_replicas(primary) == 0,
            what="the primary without its replica",
        )
        first = celery_main_pid(worker)
        worker.ready_file.unlink()
        os.kill(first, signal.SIGKILL)

        worker.wait_ready()  # fails at once if the parent ends

        assert worker.alive(), worker.log()
        assert celery_main_pid(worker) != first
        log = worker.log()
        assert "celery exited with -9" in log and "starting it again in 1 s (restart 1)" in log
        assert "redis_replication_short_on_restart" in log, log
        assert "refusing to start" not in log, log
        enqueue([raw_order("restarted-1")], client=client, publisher=publisher)
        wait_until(lambda: bool(sandbox.sales("restarted-1")), what="the order reaching Jetti")
        assert worker.alive(), worker.log()
    finally:
        factory.stop_all()
        client.close()
        if stopped:
            replicated_group.nodes[1].start()
            replicated_group.wait_replicas(1)


@pytest.fixture
def short_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The environment of a Celery worker on a Redis without replicas, MIN_REPLICAS_ACK=1."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK", "1")
    get_settings.cache_clear()
    return get_settings()


def test_a_first_start_still_refuses_a_replication_shortage(
    short_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain `celery -A worker.celery_app worker` (no marker): one line, exit 2."""
    with pytest.raises(SystemExit) as exited:
        check_replication_at_start(short_env, restart=0, wait_s=0.0)
    assert exited.value.code == EXIT_CONFIG
    [line] = capsys.readouterr().err.splitlines()
    assert "refusing to start" in line and "JETTI_RELAY_MIN_REPLICAS_ACK=1" in line


def test_the_worker_init_hook_lets_a_restarted_child_start(
    short_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the parent's marker, the `worker_init` hook returns at once (no 10 s wait) and logs
    one WARNING naming what is missing and which restart this is."""
    monkeypatch.setenv(CHILD_RESTART_VARIABLE, "3")
    started_s = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        refuse_short_replication()
    assert time.monotonic() - started_s < REPLICAS_WAIT_S / 2
    [event] = [e for e in logs if e["event"] == "redis_replication_short_on_restart"]
    assert event["log_level"] == "warning"
    assert event["restart"] == 3 and event["min_replicas_ack"] == 1
    assert "0 replica(s) online" in event["problem"]
    assert capsys.readouterr().err == ""


def test_sigterm_during_the_pause_before_a_restart_stops_the_worker_at_once(
    start_pipeline: PipelineFactory,
) -> None:
    """The Celery child is killed twice in a row, so the parent pauses 2 s before starting it
    again; SIGTERM in that pause ends the worker at once, with no new child, and its exit status
    is the killed child's."""
    worker = start_pipeline(concurrency=1, pump=False)
    worker.ready_file.unlink()
    os.kill(celery_main_pid(worker), signal.SIGKILL)
    worker.wait_ready()
    os.kill(celery_main_pid(worker), signal.SIGKILL)
    wait_until(lambda: "starting it again in 2 s" in worker.log(), what="the second restart")
    started_s = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(timeout=10)
    assert time.monotonic() - started_s < 1.5, worker.log()
    assert code == -signal.SIGKILL % 256, worker.log()  # sys.exit(-9) is status 247
    before, after = worker.log_path.read_text().split("starting it again in 2 s", 1)
    # Each Celery child logs its broker connection once it starts.
    assert "Connected to redis://" in before and "Connected to" not in after
