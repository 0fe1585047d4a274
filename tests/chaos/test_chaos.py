"""Chaos scenarios at CI scale: the real pipeline (redis-server with AOF, `jetti-relay worker`
processes with the pump and the sweeper, the sandbox over HTTP) broken on purpose, then the books
checked: every accepted order is in Jetti with its latest version or dead-lettered with a reason,
none lost, no payload sent twice without a crash or unknown outcome to explain it, no version
ever replaced by an older one. `jetti-relay chaos` runs the same scenarios at full scale.
"""

from __future__ import annotations

import pytest

from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult
from ops.chaos.run import run_one
from ops.chaos.scenarios import CI_SCALE

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]


def run(cluster: Cluster, name: str) -> ScenarioResult:
    result = run_one(cluster, name, CI_SCALE)
    books = result.books
    detail = f"{result.summary()}\nfailures: {result.failures}\nbooks: {books.problems}"
    assert books.lost == 0, detail
    assert books.harmful_duplicates == 0, detail
    assert books.regressions == 0, detail
    assert books.delivered + books.dead_lettered + books.cancelled == books.sent, detail
    assert result.failures == [], detail
    assert result.recover_s is not None, detail
    return result


def test_kill_9_mid_submission_loses_nothing(cluster: Cluster) -> None:
    """kill -9 of the pool process holding a submission, three times while orders flow: every
    order lands once more at most, and only where Jetti already had it (harmless)."""
    result = run(cluster, "kill")
    assert result.figures["kills"] == CI_SCALE.kills
    assert result.books.delivered == result.books.sent


def test_redis_restarts_graceful_and_kill_9_with_aof(cluster: Cluster) -> None:
    """Redis restarted twice mid-run (SIGTERM, then SIGKILL) with AOF everysec: the same worker
    processes resume by themselves and every order is delivered."""
    result = run(cluster, "redis")
    assert result.books.delivered == result.books.sent


def test_jetti_outage_then_recovery(cluster: Cluster) -> None:
    """503s and dropped connections for every request for 3 s: all delivered after recovery."""
    result = run(cluster, "outage")
    assert result.figures["failed_requests"] > 0
    assert result.books.delivered == result.books.sent


def test_429_storm_pauses_the_fleet_and_spends_no_attempt(cluster: Cluster) -> None:
    """A 429 storm with Retry-After: no attempt spent, nothing dead, few requests in the storm."""
    result = run(cluster, "throttle")
    assert result.figures["responses_429"] > 0
    assert result.books.dead_lettered == 0


def test_slow_answers_end_in_exactly_one_final_state(cluster: Cluster) -> None:
    """Answers slower than the client timeout: unknown outcomes resend the same payload only."""
    result = run(cluster, "slow")
    assert result.figures["unknown_outcomes"] > 0
    assert result.books.delivered == result.books.sent


def test_duplicate_and_reordered_messages_two_producers(cluster: Cluster) -> None:
    """Two producers race the same versions (one shuffled) plus duplicate messages: Jetti ends
    on each order's newest version and never goes backwards."""
    result = run(cluster, "duplicates")
    assert result.figures["stale_versions_ignored"] > 0
    assert result.books.harmless_duplicates == 0


def test_dead_letter_replay_after_success_and_killed_replay(cluster: Cluster) -> None:
    """Replaying a dead letter whose order meanwhile succeeded sends nothing; a replay killed
    half-way and run again delivers each order once."""
    run(cluster, "replay")


def test_rolling_restart_needs_no_visibility_timeout(cluster: Cluster) -> None:
    """SIGTERM each worker in turn while orders flow: warm shutdowns, nothing waits for the
    visibility timeout or the sweeper."""
    result = run(cluster, "rolling")
    assert result.books.delivered == result.books.sent


def test_hostile_input_is_rejected_or_dead_lettered_with_a_reason(cluster: Cluster) -> None:
    """1,000 hypothesis-generated hostile orders: rejected at the edge or dead-lettered with a
    reason; the worker neither crashes nor stalls."""
    result = run(cluster, "bad-input")
    assert result.books.rejected_at_edge > 0
    assert result.books.dead_lettered > 0


def test_the_sweeper_finds_orders_whose_message_was_lost_or_flushed(cluster: Cluster) -> None:
    """Orders with no message and a flushed queue are all delivered by the sweeper."""
    result = run(cluster, "lost-message")
    assert result.books.delivered == result.books.sent
