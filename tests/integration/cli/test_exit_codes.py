"""Exit codes of the operator commands, as documented in each `--help`: 4 when Redis cannot be
reached (one line on stderr, no traceback), and every `dlq` subcommand documents its codes.
The usage error for a malformed `--redis-url` (exit 2) is in tests/unit/test_cli_options.py;
the replay codes (2, 3, 1 for "done in part") are in test_dlq_replay.py."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ops.dlq.cli import dlq
from tests.factories import one_line_order
from tests.fixtures.cli import assert_one_clean_line, jetti_relay
from tests.fixtures.dead_letters import DeadLetterDesk

pytestmark = pytest.mark.integration

# Nothing listens on port 1: connections are refused at once.
DEAD_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings point at a Redis that refuses connections."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", DEAD_URL)
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", DEAD_URL)
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "t0ken")
    yield


def test_unreachable_redis_exits_4(desk: DeadLetterDesk) -> None:
    """A Redis that does not answer is one line on stderr and exit code 4, no traceback."""
    result = CliRunner().invoke(dlq, ["stats", "--redis-url", DEAD_URL])
    assert result.exit_code == 4
    assert "cannot reach Redis" in result.output


@pytest.mark.parametrize("sub", ["status", "run"])
def test_reconcile_without_redis_says_so_and_exits_4(no_redis: None, sub: str) -> None:
    """`reconcile status|run` with Redis down: one clean line, exit 4."""
    assert_one_clean_line(jetti_relay("reconcile", sub), 4, "cannot reach Redis")


def test_enqueue_without_redis_says_so_and_exits_4(no_redis: None) -> None:
    """`enqueue` with Redis down: one clean line, exit 4, as its `--help` documents."""
    order = json.dumps(one_line_order("e-1"))
    assert_one_clean_line(jetti_relay("enqueue", "-", input=order), 4, "cannot reach Redis")
    help_text = jetti_relay("enqueue", "--help").stdout
    assert "4 when Redis is unreachable" in " ".join(help_text.split())


@pytest.mark.parametrize(
    "command", ["list", "stats", "show", "replay", "export", "purge", "erase", "audit"]
)
def test_every_command_has_help_with_exit_codes(command: str) -> None:
    """`--help` works without Redis and documents the exit codes."""
    result = CliRunner().invoke(dlq, [command, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 done" in result.output and "--redis-url" in result.output
