"""The worker's broker transport (worker/broker_transport.py) turns what a Redis failover does
to kombu into connection errors, which Celery's consumer recovers from by reconnecting, instead
of errors Celery calls unrecoverable (its worker exits and cuts the deliveries in flight)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.harness.redis import RedisProcess
from worker.celery_app import create_app
from worker.settings import Settings

pytestmark = [pytest.mark.integration]


@pytest.fixture
def primary_without_replicas(tmp_path: Path) -> Iterator[RedisProcess]:
    node = RedisProcess(tmp_path, appendonly=False)
    node.start()
    yield node
    node.stop()


def test_noreplicas_on_the_consumers_brpop_is_a_lost_connection(
    primary_without_replicas: RedisProcess,
) -> None:
    """BRPOP (a write) answered NOREPLICAS reaches kombu as a connection error, which Celery's
    consumer recovers from by reconnecting; the server's reply is kept as the cause."""
    url = primary_without_replicas.url
    app = create_app(Settings(_env_file=None, redis_url=url, broker_url=url))
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("noreplicas-probe")
        admin = redis.Redis.from_url(url)
        try:
            # From now on the primary needs one replica in sync to write; it has none.
            admin.config_set("min-replicas-to-write", 1)
            with pytest.raises(redis.ConnectionError) as caught:
                queue.get(timeout=1)
        finally:
            admin.config_set("min-replicas-to-write", 0)
            admin.close()
            queue.close()
    assert isinstance(caught.value, connection.connection_errors)
    assert "NOREPLICAS" in str(caught.value.__cause__)


def test_a_channel_closed_after_its_connection_fails_as_a_lost_connection(
    primary_without_replicas: RedisProcess,
) -> None:
    """A channel whose connection kombu already detached (Celery dropping a failed connection
    closes its channels after that) refuses to build a pool with a connection error, which
    kombu ignores while closing; kombu 5.7's own AttributeError ended the worker in chaos 15."""
    url = primary_without_replicas.url
    app = create_app(Settings(_env_file=None, redis_url=url, broker_url=url))
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        transport = channel.connection
        client, transport.client = transport.client, None
        try:
            with pytest.raises(redis.ConnectionError):
                channel._connparams()
        finally:
            transport.client = client
