"""The worker's consumer on a primary that refuses writes for want of replicas (NOREPLICAS):
it loses its connection and reconnects, instead of raising the reply that Celery calls
unrecoverable (worker/broker_transport.py; chaos 16 and a replica outage ended workers so)."""

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
