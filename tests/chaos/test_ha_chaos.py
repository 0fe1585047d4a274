"""Chaos with the ledger under Sentinel (issue 15): a primary, two replicas and three sentinels
on loopback (ops/harness/ha.py), `min-replicas-to-write 1` on every node. The primary is killed
with kill -9, or stalled with SIGSTOP past the sentinels' down-after time and continued; the
producer and the same worker processes must follow the failover through the sentinels, and the
books must balance: every order acknowledged upstream delivered, none twice with different
content."""

from __future__ import annotations

import pytest

from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult
from ops.chaos.run import run_one
from ops.chaos.scenarios import CI_SCALE

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(300)]


def _balanced(result: ScenarioResult) -> str:
    books = result.books
    detail = f"{result.summary()}\nfailures: {result.failures}\nbooks: {books.problems}"
    assert books.lost == 0, detail
    assert books.harmful_duplicates == 0, detail
    assert books.regressions == 0, detail
    assert books.delivered == books.sent, detail
    assert result.failures == [], detail
    assert result.recover_s is not None, detail
    return detail


def test_killing_the_primary_loses_no_acknowledged_order(cluster: Cluster) -> None:
    """kill -9 of the primary mid-run: the sentinels promote a replica, the producer's resends
    and the worker reach it without a restart, and every order acknowledged before the kill is
    delivered."""
    result = run_one(cluster, "redis-primary-kill", CI_SCALE)
    detail = _balanced(result)
    assert 0 < float(result.figures["failover_s"]) < 30, detail
    assert int(result.figures["acked_before_kill"]) > 0, detail


def test_a_stalled_primary_loses_nothing_with_or_without_replica_acks(cluster: Cluster) -> None:
    """SIGSTOP past the down-after time, failover, SIGCONT: with MIN_REPLICAS_ACK 0 and 1 the
    books balance and the figures of both runs are reported side by side. (At full scale the
    stall is long enough to check that the workers follow the failover before SIGCONT.)"""
    result = run_one(cluster, "redis-primary-stall", CI_SCALE)
    detail = _balanced(result)
    for ack in (0, 1):
        assert result.figures[f"ack{ack}_acked"] == CI_SCALE.orders, detail
        assert result.figures[f"ack{ack}_lost"] == 0, detail
        assert float(result.figures[f"ack{ack}_failover_s"]) > 0, detail
