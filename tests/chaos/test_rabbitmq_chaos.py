"""Chaos with RabbitMQ as the broker (issue 15): a private RabbitMQ node carries the Celery
messages, the ledger stays in the private Redis; the node is restarted gracefully and then
kill -9'd while orders flow, and the books must still balance."""

from __future__ import annotations

import pytest

from ops.chaos.cluster import Cluster
from ops.chaos.run import run_one
from ops.chaos.scenarios import CI_SCALE

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]


def test_rabbitmq_restarts_graceful_and_kill_9_lose_nothing(amqp_cluster: Cluster) -> None:
    """RabbitMQ restarted twice mid-run (SIGTERM, then SIGKILL): the same worker processes
    reconnect, an order enqueued after each restart is settled, every order is delivered and
    none twice with different content."""
    result = run_one(amqp_cluster, "rabbitmq", CI_SCALE)
    books = result.books
    detail = f"{result.summary()}\nfailures: {result.failures}\nbooks: {books.problems}"
    assert books.lost == 0, detail
    assert books.harmful_duplicates == 0, detail
    assert books.regressions == 0, detail
    assert books.delivered == books.sent, detail
    assert result.failures == [], detail
    assert result.recover_s is not None, detail
    assert result.figures["graceful_down_s"] > 0
    assert result.figures["kill9_down_s"] > 0
