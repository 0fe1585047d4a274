"""Chaos with RabbitMQ as the broker (issue 15): a private RabbitMQ node carries the Celery
messages, the ledger stays in the private Redis; the node is restarted gracefully and then
kill -9'd while orders flow, and the books must still balance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.chaos.cluster import Cluster
from ops.chaos.rabbitmq import rabbitmq_restart
from ops.chaos.run import SCENARIOS
from ops.harness.rabbitmq import node_available
from tests.chaos.test_chaos import run

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def amqp_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = node_available()
    if problem is not None:
        # Not a skip: the proof needs this scenario on every CI machine.
        pytest.fail(f"the RabbitMQ chaos scenario cannot start its node: {problem}")
    started = Cluster(tmp_path_factory.mktemp("chaos-amqp"), broker="amqp").start()
    yield started
    started.close()


def test_rabbitmq_restarts_graceful_and_kill_9_lose_nothing(amqp_cluster: Cluster) -> None:
    """RabbitMQ restarted twice mid-run (SIGTERM, then SIGKILL): the same worker processes
    reconnect, an order enqueued after each restart is settled, every order is delivered and
    none twice with different content."""
    assert SCENARIOS["rabbitmq"][1] is rabbitmq_restart
    result = run(amqp_cluster, "rabbitmq")
    assert result.books.delivered == result.books.sent
    assert result.figures["graceful_down_s"] > 0
    assert result.figures["kill9_down_s"] > 0
