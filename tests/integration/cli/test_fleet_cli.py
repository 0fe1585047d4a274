"""`jetti-relay pause` and `resume` against the test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from ops.cli import main
from worker.core.keys import Keys
from worker.settings import get_settings
from worker.store.audit import FLEET_PAUSE, FLEET_RESUME, AuditLog, os_user
from worker.store.breaker import Breaker


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[None]:
    """settings_from_options writes --redis-url into the environment; undo it afterwards."""
    # setenv records the variable's prior value (or absence), so teardown restores it.
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("clean_settings")
def test_pause_then_resume_round_trips_the_fleet(
    redis_url: str, redis_client: redis.Redis[bytes]
) -> None:
    """pause stops every worker with the given reason; resume closes the breaker; both exit 0."""
    breaker = Breaker(redis_client, Keys(), probe_s=60)
    runner = CliRunner()

    paused = runner.invoke(
        main, ["pause", "--reason", "channel migration", "--redis-url", redis_url]
    )
    assert paused.exit_code == 0, paused.output
    assert paused.output.strip() == "fleet paused: channel migration"
    assert breaker.state().state == "paused"
    assert breaker.allow(now=4_000_000_000.0) is False

    resumed = runner.invoke(main, ["resume", "--redis-url", redis_url])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.strip() == "fleet resumed: breaker closed (was paused)"
    assert breaker.state().state == "closed"
    assert breaker.allow(now=4_000_000_000.0) is True


@pytest.mark.usefixtures("clean_settings")
def test_pause_has_a_default_reason(redis_url: str, redis_client: redis.Redis[bytes]) -> None:
    """Without --reason the pause records "paused by operator"."""
    result = CliRunner().invoke(main, ["pause", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert Breaker(redis_client, Keys(), probe_s=60).state().reason == "paused by operator"


@pytest.mark.usefixtures("clean_settings")
def test_pause_and_resume_are_audited_with_the_os_user(
    redis_url: str, redis_client: redis.Redis[bytes]
) -> None:
    """The audit log says who paused and resumed the fleet and why, as it does for the
    console's buttons."""
    runner = CliRunner()
    runner.invoke(main, ["pause", "--reason", "stock sync", "--redis-url", redis_url])
    runner.invoke(main, ["resume", "--redis-url", redis_url])
    newest_first = AuditLog(redis_client, Keys()).read(limit=2)
    assert [(r.action, r.actor, r.details) for r in newest_first] == [
        (FLEET_RESUME, os_user(), {"was": "paused"}),
        (FLEET_PAUSE, os_user(), {"reason": "stock sync"}),
    ]
