"""Chaos scenarios of issues 12 and 14 at CI scale: hostile producers, configuration faults,
Retry-After extremes and killed intake processes, on the same real pipeline as
tests/chaos/test_chaos.py. Each depends on fixes named per test; `jetti-relay chaos -s
hostile-producers -s config -s retry-after -s intake` runs them at full scale.
"""

from __future__ import annotations

import pytest

from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult
from ops.chaos.run import run_one
from ops.chaos.scenarios import CI_SCALE

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(300)]


def run(cluster: Cluster, name: str) -> ScenarioResult:
    result = run_one(cluster, name, CI_SCALE)
    books = result.books
    detail = f"{result.summary()}\nfailures: {result.failures}\nbooks: {books.problems}"
    assert result.failures == [], detail
    assert (books.lost, books.harmful_duplicates, books.regressions) == (0, 0, 0), detail
    assert books.delivered + books.cancelled == books.sent, detail
    assert result.recover_s is not None, detail
    return result


def test_hostile_producers_lose_nothing(cluster: Cluster) -> None:
    """Colliding ids (`A:events` before `A`, `X:attempts`, `idx:all`, braces, `*`, non-ASCII),
    an updated_at in 2099 and a huge order (refused at the edge with a reason, exit 1 from
    `enqueue`), copies and a cancellation without updated_at (applied by arrival), a copy after a
    cancellation (not sent): every accepted order delivered or cancelled once in Jetti.
    Needs the keys, producer and poison fixes (reliability #1, #3, #12)."""
    result = run(cluster, "hostile-producers")
    assert result.figures["refused_at_edge"] >= 3
    assert result.books.cancelled == 2


def test_configuration_faults_stop_the_start_or_open_the_breaker(cluster: Cluster) -> None:
    """A misspelt variable and an empty webhook hash: exit 2, one line; a wrong async path: the
    breaker opens, nothing is dead-lettered; fixed, everything is delivered.
    Needs the config fix (issue 12 point 8) and the jetti fix (reliability #10)."""
    result = run(cluster, "config")
    assert result.books.delivered == result.books.sent


def test_retry_after_extremes_never_block_longer_than_the_bound(cluster: Cluster) -> None:
    """429s with Retry-After inf, nan, garbage, 1e9 and a date in 2100: the fleet block and
    every retry stay within JETTI_RELAY_RETRY_AFTER_MAX_S; no attempt spent; all delivered.
    Needs the jetti fix (reliability #8)."""
    result = run(cluster, "retry-after")
    assert result.books.delivered == result.books.sent


def test_killed_intake_processes_lose_no_acknowledged_order(cluster: Cluster) -> None:
    """Issue 14: two upstreams that are not the Python library (XADD, NDJSON over HTTP) send
    while stream consumers and the HTTP intake are SIGKILLed and restarted: every order whose
    XADD returned, or which the HTTP intake answered 202, reaches Jetti once; no entry is left
    pending and none valid is rejected."""
    result = run(cluster, "intake")
    assert result.figures["stream_kills"] >= 1
    assert result.figures["http_kills"] >= 1
    assert result.books.delivered == result.books.sent
