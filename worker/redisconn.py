"""Every Redis client of the relay, and what each process checks about the server at start-up.

One factory (`redis_client`) so no client is ever built without connect and socket timeouts:
without them a half-open connection (a silent partition, a failover without RST) blocks a read
until TCP keepalive gives up, about 2 h 11 min on Linux, and the single pump with it (reliability
review #14). `require_supported` refuses a server older than `MIN_REDIS_VERSION` in one line;
`server_facts` reads what `health` and the worker judge about persistence, eviction and memory
(review #15).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from worker.core.limits import MIN_REDIS_VERSION

# A client pings a connection idle this long before reusing it (finds dead ones early).
HEALTH_CHECK_INTERVAL_S = 30
# The one eviction policy under which Redis never drops a ledger entry, lock or lease.
SAFE_EVICTION_POLICY = "noeviction"

Verdict = Literal["ok", "degraded", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("ok", "degraded", "unknown")


class RedisTooOld(Exception):
    """The server is older than MIN_REDIS_VERSION; `version` is what it reported."""

    def __init__(self, version: str) -> None:
        self.version = version
        oldest = ".".join(map(str, MIN_REDIS_VERSION))
        super().__init__(
            f"Redis {version} (JETTI_RELAY_REDIS_URL) is older than {oldest}, the oldest "
            "jetti-relay supports; upgrade it (docs/operations.md, Redis)"
        )


@dataclass(frozen=True)
class SentinelTarget:
    """Where the primary is found when Sentinel runs it: the sentinels' addresses, the master
    name they monitor, and their own password ("" for none)."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    password: str = ""


def redis_client(
    url: str,
    *,
    connect_timeout_s: float,
    socket_timeout_s: float,
    sentinel: SentinelTarget | None = None,
) -> redis.Redis[bytes]:
    """A client on `url` (bytes replies) that gives up connecting after `connect_timeout_s` and
    waiting for any reply after `socket_timeout_s`, raising `redis.TimeoutError`.

    With `sentinel`, the client asks the sentinels for the current primary on every new
    connection, so it follows a failover: a connection to the old primary fails (or is refused
    as READONLY once it was demoted, which redis-py turns into a ConnectionError) and the next
    one goes to the new primary. `url` then gives only the database and the credentials."""
    if sentinel is not None:
        return _sentinel_client(
            url, sentinel, connect_timeout_s=connect_timeout_s, socket_timeout_s=socket_timeout_s
        )
    client: redis.Redis[bytes] = redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
    return client


def _sentinel_client(
    url: str, target: SentinelTarget, *, connect_timeout_s: float, socket_timeout_s: float
) -> redis.Redis[bytes]:
    timeouts: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": socket_timeout_s,
        "socket_keepalive": True,
    }
    parts = parse_url(url)
    data: dict[str, Any] = {
        key: parts[key] for key in ("db", "username", "password") if parts.get(key) is not None
    }
    if url.startswith("rediss://"):
        data["ssl"] = True
    sentinels = Sentinel(
        list(target.addresses),
        sentinel_kwargs={**timeouts, "password": target.password or None},
        **timeouts,
    )
    client: redis.Redis[bytes] = sentinels.master_for(
        target.master,
        redis_class=redis.Redis,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        **data,
    )
    return client


def sentinel_clients(
    target: SentinelTarget, *, connect_timeout_s: float, socket_timeout_s: float
) -> list[tuple[str, redis.Redis[bytes]]]:
    """(host:port, client) for each sentinel of `target`, with its password and the timeouts:
    for reading what the sentinels know (`worker.store.replication_info`); the caller closes
    them."""
    return [
        (
            f"{host}:{port}",
            redis.Redis(
                host=host,
                port=port,
                password=target.password or None,
                socket_connect_timeout=connect_timeout_s,
                socket_timeout=socket_timeout_s,
                # One try: a snapshot of what each sentinel says now. redis-py's default retries
                # (10, with backoff) would make three silent or refusing sentinels cost 12 s.
                retry=Retry(NoBackoff(), 0),
            ),
        )
        for host, port in target.addresses
    ]


def parse_version(text: str) -> tuple[int, ...]:
    """`"6.2.14"` -> (6, 2, 14); a non-numeric tail (`"7.2.4-rc1"`) ends its part."""
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts)


def server_version(client: redis.Redis[bytes]) -> str | None:
    """The server's `redis_version`, or None when INFO is refused (ACL, rename-command)."""
    client.ping()  # connection and handshake errors propagate; only INFO may be refused
    try:
        info = client.info("server")
    except redis.ResponseError:
        return None
    version = info.get("redis_version")
    return None if version is None else str(version)


def require_supported(client: redis.Redis[bytes]) -> str | None:
    """Raise RedisTooOld when the server is older than MIN_REDIS_VERSION; return its version
    (None when the server does not tell: then nothing is refused). Connection errors propagate."""
    version = server_version(client)
    if version is not None and parse_version(version) < MIN_REDIS_VERSION:
        raise RedisTooOld(version)
    return version


@dataclass(frozen=True)
class ServerFacts:
    """What the relay needs from the server beyond commands: durability and memory bounds.

    None means unknown (CONFIG or INFO refused, as on managed Redis). `problems` lists each
    unsafe fact in words; `verdict` is ok, degraded (a problem is known) or unknown (nothing is
    known to be wrong, but something could not be read)."""

    appendonly: bool | None
    save: str | None
    eviction_policy: str | None
    maxmemory_bytes: int | None
    used_memory_bytes: int | None

    @property
    def persistent(self) -> bool | None:
        """AOF on, or RDB snapshots configured; None when that cannot be told."""
        if self.appendonly or (self.save is not None and self.save.strip()):
            return True
        if self.appendonly is None or self.save is None:
            return None
        return False

    @property
    def problems(self) -> list[str]:
        out: list[str] = []
        if self.persistent is False:
            out.append("no persistence (appendonly no and no save): a restart loses the ledger")
        if self.eviction_policy is not None and self.eviction_policy != SAFE_EVICTION_POLICY:
            out.append(
                f"maxmemory-policy {self.eviction_policy}: Redis may evict ledger entries, "
                f"locks and leases (set {SAFE_EVICTION_POLICY})"
            )
        if self.maxmemory_bytes == 0:
            out.append("no maxmemory: Redis grows until the kernel kills it")
        return out

    @property
    def verdict(self) -> Verdict:
        if self.problems:
            return "degraded"
        if None in (self.persistent, self.eviction_policy, self.maxmemory_bytes):
            return "unknown"
        return "ok"


def _config(client: redis.Redis[bytes], name: str) -> str | None:
    try:
        reply: dict[Any, Any] = client.config_get(name)
    except redis.ResponseError:
        # Managed Redis renames or forbids CONFIG (rename-command, ACL -@admin).
        return None
    for key, value in reply.items():
        key_text = key.decode() if isinstance(key, bytes) else str(key)
        if key_text == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def server_facts(client: redis.Redis[bytes]) -> ServerFacts:
    """Read persistence, eviction and memory from CONFIG GET, falling back to INFO where CONFIG
    is refused (INFO memory carries maxmemory and its policy, INFO persistence aof_enabled)."""
    try:
        info: dict[str, Any] = {**client.info("memory"), **client.info("persistence")}
    except redis.ResponseError:
        info = {}
    appendonly = _config(client, "appendonly")
    if appendonly is None and "aof_enabled" in info:
        appendonly = "yes" if int(info["aof_enabled"]) else "no"
    maxmemory = _config(client, "maxmemory")
    if maxmemory is None and "maxmemory" in info:
        maxmemory = str(info["maxmemory"])
    policy = _config(client, "maxmemory-policy") or info.get("maxmemory_policy")
    used = info.get("used_memory")
    return ServerFacts(
        appendonly=None if appendonly is None else appendonly == "yes",
        save=_config(client, "save"),
        eviction_policy=None if policy is None else str(policy),
        maxmemory_bytes=None if maxmemory is None else int(maxmemory),
        used_memory_bytes=None if used is None else int(used),
    )
