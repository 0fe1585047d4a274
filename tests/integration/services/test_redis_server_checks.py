"""Redis persistence, eviction and memory are checked, not assumed (reliability review #15).

Each test runs its own redis-server (so CONFIG SET never touches the session's), and judges it
through `jetti-relay health`, the exporter and the worker's start-up check.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog

from ops.harness.ports import free_port, wait_for
from tests.fixtures.exporter import run_health, running_exporter, scrape, value
from tests.fixtures.redis_server import RedisServer
from worker import celery_app
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.settings import get_settings

pytestmark = pytest.mark.integration


def _server_binary() -> str | None:
    return os.environ.get("REDIS_SERVER_BINARY") or None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, redis.Redis[bytes]]]:
    """A redis-server with no persistence and no maxmemory (what the test fixtures run)."""
    server = RedisServer(tmp_path, appendonly=False, binary=_server_binary())
    server.start()
    client: redis.Redis[bytes] = redis.Redis.from_url(server.url)
    yield server.url, client
    client.close()
    server.stop(kill=True)  # a shutdown would wait for the AOF a test switched on


@pytest.fixture
def managed_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server whose CONFIG command is renamed away, as managed services do (with
    maxmemory and noeviction, which INFO still shows)."""
    port = free_port()
    argv = RedisServer(tmp_path, appendonly=False, port=port, binary=_server_binary()).argv()
    process = subprocess.Popen(
        [*argv, "--maxmemory", "100mb", "--rename-command", "CONFIG", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis.Redis.from_url(url).ping(), "redis-server", process=process)
    yield url
    process.terminate()
    process.wait(timeout=20)


def checks(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in doc["checks"]}  # type: ignore[attr-defined,index]


def make_safe(client: redis.Redis[bytes]) -> None:
    client.config_set("appendonly", "yes")
    client.config_set("maxmemory", str(512 * 1024 * 1024))
    client.config_set("maxmemory-policy", "noeviction")


def test_health_says_degraded_without_persistence_or_maxmemory(
    private_redis: tuple[str, redis.Redis[bytes]],
) -> None:
    url, _client = private_redis
    _code, doc = run_health(url, "--only", "redis_server")
    check = checks(doc)["redis_server"]
    assert check["status"] == "warn", doc
    assert str(check["detail"]).startswith("degraded")
    assert "no persistence" in str(check["detail"]) and "no maxmemory" in str(check["detail"])


def test_health_fails_an_evicting_policy_and_passes_a_safe_redis(
    private_redis: tuple[str, redis.Redis[bytes]],
) -> None:
    url, client = private_redis
    make_safe(client)
    code, doc = run_health(url, "--only", "redis_server")
    assert code == 0 and checks(doc)["redis_server"]["status"] == "ok", doc
    client.config_set("maxmemory-policy", "allkeys-lru")
    code, doc = run_health(url, "--only", "redis_server")
    assert code == 1, doc
    assert "allkeys-lru" in str(checks(doc)["redis_server"]["detail"])


def test_health_says_unknown_where_config_is_refused(managed_redis: str) -> None:
    """Without CONFIG, maxmemory and its policy still come from INFO; the save setting cannot
    be read, so durability is unknown (a warning), not degraded."""
    code, doc = run_health(managed_redis, "--only", "redis_server")
    check = checks(doc)["redis_server"]
    assert code == 0 and check["status"] == "warn", doc
    assert str(check["detail"]).startswith("unknown"), doc


def test_memory_and_bytes_per_order_in_health_and_metrics(
    private_redis: tuple[str, redis.Redis[bytes]],
) -> None:
    url, client = private_redis
    make_safe(client)
    client.zadd(Keys().state_index(OrderState.PENDING), {"a": 1.0, "b": 2.0})
    _code, doc = run_health(url, "--only", "memory")
    memory = checks(doc)["memory"]
    assert memory["status"] == "ok" and "per order (2 in the ledger)" in str(memory["detail"])
    with running_exporter(url) as exporter:
        samples = scrape(exporter)
    used = value(samples, "jetti_relay_redis_memory_used_bytes")
    assert used > 0
    assert value(samples, "jetti_relay_redis_memory_max_bytes") == 512 * 1024 * 1024
    assert value(samples, "jetti_relay_redis_bytes_per_order") > 0
    assert value(samples, "jetti_relay_redis_config", verdict="ok") == 1


def test_the_worker_warns_once_at_start_on_an_unsafe_redis(
    private_redis: tuple[str, redis.Redis[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Celery worker's start-up check logs one WARNING naming every problem."""
    url, client = private_redis
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", url)
    get_settings.cache_clear()
    try:
        with structlog.testing.capture_logs() as logs:
            celery_app._check_redis()
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert [e["event"] for e in warnings] == ["redis_unsafe"]
        assert len(warnings[0]["problems"]) == 2
        make_safe(client)
        with structlog.testing.capture_logs() as logs:
            celery_app._check_redis()
        assert not [e for e in logs if e["log_level"] == "warning"]
    finally:
        get_settings.cache_clear()
