"""The chaos tests' cluster: one private Redis (AOF, everysec) and sandbox per test module;
each scenario starts its own workers. `amqp_cluster` adds a private RabbitMQ node as broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.chaos.cluster import Cluster
from ops.harness.rabbitmq import node_available


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("chaos")).start()
    yield started
    started.close()


@pytest.fixture(scope="module")
def amqp_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster whose Celery messages go through a private RabbitMQ node (the ledger in its
    Redis). A machine that cannot start the node fails the test: never a silent skip."""
    problem = node_available()
    if problem is not None:
        pytest.fail(f"the RabbitMQ chaos scenarios cannot start their node: {problem}")
    started = Cluster(tmp_path_factory.mktemp("chaos-amqp"), broker="amqp").start()
    yield started
    started.close()
