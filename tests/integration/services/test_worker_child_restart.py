"""A Celery child that `jetti-relay worker` starts again rides a replication outage out.

The first start refuses fewer replicas than JETTI_RELAY_MIN_REPLICAS_ACK (exit 2: a
configuration mistake; test_sentinel_failover.py). A child restarted after a crash during a
replica outage must not: it used to refuse with exit 2, which the parent took as final, and the
whole worker (pump, sweeper, intake too) ended until an operator acted. Real processes: a primary
and its replica (`replicated_group`), `jetti-relay worker`, the sandbox over HTTP; the in-process
checks run the `worker_init` hook's check on a real Redis with no replica at all.
"""

from __future__ import annotations

import time

import pytest
import structlog

from worker.settings import CHILD_RESTART_VARIABLE, EXIT_CONFIG, Settings, get_settings
from worker.startup_replication import (
    REPLICAS_WAIT_S,
    check_replication_at_start,
    refuse_short_replication,
)

pytestmark = pytest.mark.integration


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
