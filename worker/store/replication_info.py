"""Reads the replication state from Redis and Sentinel (the judging is worker/core/replication).

The primary is read with INFO replication; each sentinel with SENTINEL MASTER (where the
primary is, the failover epoch, the quorum) and SENTINEL REPLICAS (what replicas it knows).
Reads only, a handful of small replies: `health` and every metrics scrape run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from worker.core.replication import (
    DOWN_FLAGS,
    PrimaryView,
    Replica,
    ReplicationState,
    SentinelView,
)

# What Sentinel answers for a master name it does not monitor.
_UNKNOWN_MASTER = "no such master"


def read_primary(client: redis.Redis[bytes]) -> PrimaryView | None:
    """The primary's INFO replication; None when it cannot be reached or refuses INFO."""
    try:
        info: Mapping[str, Any] = client.info("replication")
    except redis.RedisError:
        return None
    offset = int(info.get("master_repl_offset", 0))
    replicas = tuple(
        Replica(
            address=f"{value.get('ip')}:{value.get('port')}",
            online=value.get("state") == "online",
            lag_bytes=max(0, offset - int(value.get("offset", 0))),
            lag_s=float(value.get("lag", 0)),
        )
        for key, value in sorted(info.items())
        if key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict)
    )
    return PrimaryView(role=str(info.get("role", "")), replicas=replicas)


def _pairs(reply: Any) -> dict[str, str]:
    """A Sentinel reply of alternating names and values (RESP2) as text."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(item) for item in reply]
    return dict(zip(items[0::2], items[1::2], strict=False))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_sentinel(client: redis.Redis[bytes], address: str, master: str) -> SentinelView:
    """One sentinel's view of `master`; `error` says why there is none (see SentinelView)."""
    try:
        facts = _pairs(client.execute_command("SENTINEL", "MASTER", master))
        replicas = client.execute_command("SENTINEL", "REPLICAS", master)
    except redis.ResponseError as exc:
        if _UNKNOWN_MASTER in str(exc).lower():
            return SentinelView(address, error="unknown master")
        return SentinelView(address, error="unreachable")
    except redis.RedisError:
        return SentinelView(address, error="unreachable")
    flags = set(facts.get("flags", "").split(","))
    return SentinelView(
        address,
        primary=f"{facts.get('ip')}:{facts.get('port')}",
        primary_down=bool(flags & DOWN_FLAGS),
        epoch=int(facts.get("config-epoch", 0)),
        since_s=int(facts.get("role-reported-time", 0)) / 1000.0,
        quorum=int(facts.get("quorum", 0)),
        known_replicas=len(replicas or ()),
    )


def read_state(
    primary: redis.Redis[bytes],
    sentinels: Iterable[tuple[str, redis.Redis[bytes]]],
    master: str,
) -> ReplicationState:
    """Every sentinel's view (`sentinels`: (host:port, client) pairs), then the primary's. The
    primary is not asked when there are sentinels and none of them answered: a client that
    finds the primary through them could only wait for its retries to run out."""
    views = tuple(read_sentinel(client, address, master) for address, client in sentinels)
    if views and all(view.error for view in views):
        return ReplicationState(primary=None, sentinels=views)
    return ReplicationState(primary=read_primary(primary), sentinels=views)
