"""Shared fixtures: each service fixture lives in its own module under tests/fixtures/; plain test
data lives in tests/factories.py.

Every test starts from the same process state, whatever ran before it or whatever the shell
exports: no JETTI_RELAY_* variable in the environment, no cached Settings, and structlog and the
relay's log handler as an unconfigured process has them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from worker import logconfig
from worker.settings import ENV_PREFIX, Settings, get_settings

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.pipeline",
    "tests.fixtures.sandbox",
    "tests.fixtures.dead_letters",
    "tests.fixtures.http_intake",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.replication",
    "tests.fixtures.console",
]


@pytest.fixture(autouse=True)
def clean_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear JETTI_RELAY_* and the cached Settings before the test; after it, forget the
    Settings again and undo any logging configuration the test (or a command it ran) made."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    # configure_logging is once per process; a command run through CliRunner configures it with
    # a handler on CliRunner's stderr, closed afterwards. Forget it, so the next test's command
    # configures logging afresh on its own streams.
    logconfig.reset_logging()


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Factory: `make_settings(redis_url=..., **overrides)`: Settings from the defaults and the
    overrides only (the environment is already clear; no `.env` file is read)."""

    def make(**overrides: Any) -> Settings:
        return Settings(_env_file=None, **overrides)

    return make
