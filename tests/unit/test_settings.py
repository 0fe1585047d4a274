"""Settings: defaults, environment, secrets, the timeout chain, and the documented table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.docs import doc_section
from worker.settings import Settings, check_timeouts, settings_table


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No stray JETTI_RELAY_* variable or .env file may leak into a test.
    for name in list(os.environ):
        if name.startswith("JETTI_RELAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_broker_url_defaults_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without JETTI_RELAY_BROKER_URL the broker is the configured Redis."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", "redis://example:6380/2")
    assert Settings().broker_url == "redis://example:6380/2"


def test_sync_mode_defaults_to_documented_write_throttle() -> None:
    """In sync mode the rate defaults to Jetti's documented 1 write/s with no burst."""
    settings = Settings(jetti_mode="sync")
    assert (settings.rate_per_s, settings.rate_burst) == (1.0, 1)


def test_explicit_rate_wins_over_mode_default() -> None:
    """An explicit rate is kept in either mode."""
    assert Settings(jetti_mode="sync", rate_per_s=5.0).rate_per_s == 5.0


def test_secrets_never_render(monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook hash and API token do not appear in the settings' repr or str."""
    monkeypatch.setenv("JETTI_RELAY_WEBHOOK_HASH", "hash-s3cret")
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "token-s3cret")
    settings = Settings()
    assert settings.webhook_hash.get_secret_value() == "hash-s3cret"
    for text in (repr(settings), str(settings)):
        assert "s3cret" not in text


def test_reads_dotenv_file(tmp_path: Path) -> None:
    """A .env file in the working directory is read."""
    (tmp_path / ".env").write_text("JETTI_RELAY_KEY_PREFIX=fromfile\n")
    assert Settings().key_prefix == "fromfile"


def test_default_timeouts_are_consistent_on_prefork() -> None:
    """The shipped defaults satisfy HTTP < soft < hard < visibility."""
    assert check_timeouts(Settings(), "prefork") == []


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pools_without_time_limits_are_refused(pool: str) -> None:
    """Pools that enforce no time limits are refused by name."""
    (problem,) = check_timeouts(Settings(), pool)
    assert pool in problem and "prefork" in problem


def test_hard_limit_above_visibility_names_both_settings() -> None:
    """A hard limit at or above the visibility timeout names both variables."""
    problems = check_timeouts(Settings(hard_time_limit_s=400, visibility_timeout_s=300), "prefork")
    assert any("HARD_TIME_LIMIT_S" in p and "VISIBILITY_TIMEOUT_S" in p for p in problems)


def test_soft_limit_not_below_hard_is_reported() -> None:
    """A soft limit at or above the hard limit is reported on prefork."""
    problems = check_timeouts(Settings(soft_time_limit_s=150, hard_time_limit_s=150), "prefork")
    assert any("SOFT_TIME_LIMIT_S" in p for p in problems)


def test_gevent_checks_http_against_hard_limit() -> None:
    """Without a soft limit on gevent, HTTP timeouts must sum below the hard limit."""
    settings = Settings(soft_time_limit_s=10, hard_time_limit_s=40, visibility_timeout_s=300)
    assert check_timeouts(settings, "gevent") != []
    assert check_timeouts(settings.model_copy(update={"hard_time_limit_s": 100}), "gevent") == []


def test_settings_page_lists_every_setting() -> None:
    """docs/settings.md holds the table generated from the model."""
    section = doc_section("docs/settings.md", "settings")
    for name in Settings.model_fields:
        assert f"`JETTI_RELAY_{name.upper()}`" in section, name
    assert settings_table() in section


def test_sentinels_derive_a_sentinel_broker_with_the_urls_credentials_and_database() -> None:
    settings = Settings(
        redis_url="redis://:pw@ignored:1/3", redis_sentinels="10.0.0.1:26379, [::1]:26380"
    )
    assert settings.broker_url == ("sentinel://:pw@10.0.0.1:26379/3;sentinel://:pw@[::1]:26380/3")


@pytest.mark.parametrize("bad", ["host", "host:port", "h:0", "h:70000", ":26379", " , "])
def test_a_sentinel_address_that_is_not_host_port_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="redis_sentinels"):
        Settings(redis_sentinels=bad)


def test_replica_wait_must_end_before_the_socket_gives_up() -> None:
    """A WAIT outlasting the socket timeout would read as 'Redis unreachable'."""
    with pytest.raises(ValidationError, match="MIN_REPLICAS_ACK_TIMEOUT_S"):
        Settings(min_replicas_ack=1, min_replicas_ack_timeout_s=10, redis_socket_timeout_s=10)
    assert Settings(min_replicas_ack=0, min_replicas_ack_timeout_s=30).min_replicas_ack == 0
