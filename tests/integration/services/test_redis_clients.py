"""Every Redis client has timeouts, and every process refuses a Redis older than supported.

Two stand-in servers on loopback, both real TCP: one that accepts connections and never answers
(a half-open connection after a silent partition, reliability review #14), and one that speaks
just enough RESP to say it is Redis 6.0.16 (older than worker.core.limits.MIN_REDIS_VERSION).
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.monitoring.sources import RedisQueue, Sources
from worker.celery_app import create_app
from worker.core.limits import MIN_REDIS_VERSION
from worker.redisconn import redis_client
from worker.runtime import build_maintenance_parts
from worker.settings import Settings

pytestmark = pytest.mark.integration

# A test that fails hangs until this guard, instead of forever.
HANG_GUARD_S = 60.0
OLDEST = ".".join(map(str, MIN_REDIS_VERSION))
# Short timeouts for the commands run against the silent server.
FAST_TIMEOUTS = {
    "JETTI_RELAY_REDIS_CONNECT_TIMEOUT_S": "0.5",
    "JETTI_RELAY_REDIS_SOCKET_TIMEOUT_S": "0.5",
}


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A TCP port whose connections the kernel accepts (backlog) and nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


class _OldRedis(socketserver.StreamRequestHandler):
    """Answers PING and INFO as a Redis 6.0.16 would; anything else is an unknown command."""

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if not line.startswith(b"*"):
                continue
            args = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2])
            name = args[0].upper() if args else b""
            if name == b"HELLO":  # what redis-py negotiates first (RESP3), as Redis 6.0 answers
                self.wfile.write(
                    b"%3\r\n+server\r\n+redis\r\n+version\r\n+6.0.16\r\n+proto\r\n:3\r\n"
                )
            elif name == b"PING":
                self.wfile.write(b"+PONG\r\n")
            elif name == b"INFO":
                body = b"# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n"
                self.wfile.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                self.wfile.write(b"-ERR unknown command\r\n")


@pytest.fixture
def old_redis_url() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _OldRedis)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    server.shutdown()
    server.server_close()


def run_cli(
    *args: str, url: str, stdin: bytes = b"", **env: str
) -> subprocess.CompletedProcess[str]:
    # A webhook hash, so the worker's own start-up checks (issue 12 point 8) pass and the Redis
    # check is the one that speaks.
    full_env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": url,
        "JETTI_RELAY_BROKER_URL": url,
        "JETTI_RELAY_WEBHOOK_HASH": "not-a-secret",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_a_client_gives_up_on_a_server_that_never_answers(silent_url: str) -> None:
    """The factory's client raises TimeoutError instead of waiting for TCP keepalive (2 h)."""
    client = redis_client(silent_url, connect_timeout_s=0.5, socket_timeout_s=0.5)
    with pytest.raises(redis.TimeoutError):
        client.ping()
    client.close()


def test_every_long_lived_client_has_the_settings_timeouts() -> None:
    """The worker's, pump's and sweeper's client, the exporter's and health's, and the Celery
    broker connection (publisher and consumer) all carry the configured timeouts."""
    settings = Settings(
        redis_connect_timeout_s=1.5, redis_socket_timeout_s=7.0, broker_url="redis://127.0.0.1:1/1"
    )
    parts = build_maintenance_parts(settings)
    sources = Sources.from_settings(settings)
    assert isinstance(sources.broker, RedisQueue)
    for client in (parts.redis, sources.client, sources.broker.client):
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.5, 7.0)
    options = create_app(settings).conf.broker_transport_options
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.5, 7.0)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("enqueue", "-"), 4),
        (("dlq", "list"), 4),
        (("order", "show", "A"), 4),
        (("reconcile", "status"), 4),
        (("migrate-keys",), 4),
        (("health", "--min-workers", "0"), 1),
        (("pause",), 1),
    ],
)
def test_commands_fail_fast_on_a_server_that_never_answers(
    silent_url: str, args: tuple[str, ...], code: int
) -> None:
    """Each command ends with its "Redis unreachable" exit code within the timeouts."""
    order = b'{"id": "A", "lines": []}\n'
    done = run_cli(*args, url=silent_url, stdin=order, **FAST_TIMEOUTS)
    assert done.returncode == code, done.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("enqueue", "-"), 4),
        (("dlq", "list"), 4),
        (("order", "show", "A"), 4),
        (("reconcile", "status"), 4),
        (("migrate-keys",), 4),
        (("pause",), 1),
        (("metrics", "--port", "0"), 4),
        (("worker", "--no-pump"), 78),
        (("pump",), 78),
    ],
)
def test_every_process_refuses_an_older_redis_in_one_line(
    old_redis_url: str, args: tuple[str, ...], code: int
) -> None:
    """Redis 6.0.16 is refused at start-up with the oldest supported version in one line."""
    done = run_cli(*args, url=old_redis_url, stdin=b'{"id": "A"}\n')
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if "6.0.16" in line]
    assert len(lines) == 1, done.stderr
    assert f"older than {OLDEST}" in lines[0]


def test_health_fails_the_redis_check_on_an_older_redis(old_redis_url: str) -> None:
    done = run_cli("health", "--json", "--only", "redis", url=old_redis_url)
    assert done.returncode == 1, done.stderr
    assert "6.0.16" in done.stdout and f"older than {OLDEST}" in done.stdout


def test_the_celery_worker_itself_refuses_an_older_redis(
    old_redis_url: str, tmp_path: Path
) -> None:
    """`celery -A worker.celery_app worker` run directly (not through `jetti-relay worker`)."""
    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": old_redis_url,
        "JETTI_RELAY_BROKER_URL": old_redis_url,
        "JETTI_RELAY_WEBHOOK_HASH": "not-a-secret",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "--pool",
            "prefork",
            "-c",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD_S,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 78, done.stderr[-2000:]
    assert f"older than {OLDEST}" in done.stderr
