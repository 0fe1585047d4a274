"""A background loop through a Redis outage logs one traceback, a few counted lines and its
recovery, not a traceback per pass (worker.loop_failures; issue 15's closing note).

The real Maintenance loop (pump and sweeper) on a real ledger and leases, against a private
redis-server that the test kills and starts again on the same port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from structlog.testing import capture_logs

from tests.fakes import FakePublisher
from tests.fixtures.pipeline import wait_until
from tests.fixtures.redis_server import RedisServer
from worker.core.keys import Keys
from worker.pipeline.maintenance import Maintenance, MaintenanceConfig
from worker.redisconn import redis_client
from worker.store.leases import Leader
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

PUMP_INTERVAL_S = 0.05
LOG_EVERY_S = 0.5
OUTAGE_S = 1.6


@pytest.fixture
def client(own_redis_server: RedisServer) -> Iterator[redis.Redis[bytes]]:
    client = redis_client(own_redis_server.url, connect_timeout_s=0.5, socket_timeout_s=0.5)
    yield client
    client.close()


def test_the_pump_logs_an_outage_once_then_counts_it_then_its_end(
    own_redis_server: RedisServer, client: redis.Redis[bytes]
) -> None:
    """Redis down for OUTAGE_S while the pump passes every PUMP_INTERVAL_S: the first failed
    pass is `maintenance_pass_failed` with its traceback, the next ones at most one warning per
    LOG_EVERY_S counting them, and the first good pass `maintenance_pass_recovered` with the
    total; the pump then beats again."""
    keys = Keys("t")
    beats: list[float] = []
    maintenance = Maintenance(
        config=MaintenanceConfig(
            holder="test",
            pump_interval_s=PUMP_INTERVAL_S,
            sweep_interval_s=PUMP_INTERVAL_S,
            stuck_after_s=60,
            hard_time_limit_s=5,
        ),
        ledger=Ledger(client, keys),
        leader=Leader(client, keys),
        publisher=FakePublisher(),
        heartbeat=lambda role, now: beats.append(now) if role == "pump" else None,
        failure_log_every_s=LOG_EVERY_S,
    )
    stop = threading.Event()
    with capture_logs() as logs:
        thread = maintenance.start(stop)
        try:
            wait_until(lambda: len(beats) > 0, timeout_s=5, what="a first pump pass")
            own_redis_server.stop(kill=True)
            stop.wait(OUTAGE_S)
            own_redis_server.start()
            wait_until(
                lambda: any(e["event"] == "maintenance_pass_recovered" for e in logs),
                timeout_s=5,
                what="the recovered event",
            )
            beats_after = len(beats)
            wait_until(lambda: len(beats) > beats_after, timeout_s=5, what="the pump again")
        finally:
            stop.set()
            thread.join(timeout=5)
    lines = [e for e in logs if e["event"].startswith("maintenance_pass")]
    first, *repeats, recovered = lines
    assert first["event"] == "maintenance_pass_failed"
    assert first["log_level"] == "error"
    assert isinstance(first["exc_info"], redis.ConnectionError)
    assert repeats, "no counted line during the outage"
    for line in repeats:
        assert (line["event"], line["log_level"]) == ("maintenance_pass_failed", "warning")
        assert "exc_info" not in line
        assert line["error"].startswith("ConnectionError")
    counts = [line["failures"] for line in repeats]
    assert counts == sorted(counts)
    assert len(repeats) <= OUTAGE_S / LOG_EVERY_S + 1
    assert recovered["event"] == "maintenance_pass_recovered"
    assert recovered["log_level"] == "info"
    # Many more passes failed than lines were written: the flood is gone.
    assert recovered["failures"] >= max(counts) >= 10
    assert recovered["for_s"] >= OUTAGE_S - LOG_EVERY_S
