"""Storage is bounded by documented retention (reliability review #17, L7): one constant per
retention, and the heartbeat hashes forget processes that are gone."""

from __future__ import annotations

import redis

from worker.core.keys import Keys
from worker.core.limits import DEFAULT_TOMBSTONE_TTL_S, HEARTBEAT_KEPT_S
from worker.runtime import build_maintenance_parts
from worker.settings import Settings
from worker.store.ledger import Ledger


def test_one_tombstone_retention_for_the_ledger_and_the_settings() -> None:
    """The ledger's default is the settings' default (it was 90 days against 30)."""
    client: redis.Redis[bytes] = redis.Redis()  # never connected
    assert Ledger(client, Keys()).tombstone_ttl_s == DEFAULT_TOMBSTONE_TTL_S
    assert Settings().tombstone_ttl_s == DEFAULT_TOMBSTONE_TTL_S


def test_a_heartbeat_forgets_holders_silent_for_too_long(
    redis_client: redis.Redis[bytes], redis_url: str
) -> None:
    """Each restart is a new host:pid; a field not refreshed for HEARTBEAT_KEPT_S goes at the
    next heartbeat of the role, and a recent one stays."""
    parts = build_maintenance_parts(Settings(redis_url=redis_url, key_prefix="hb"))
    key = parts.keys.heartbeat("pump")
    now = 1_800_000_000.0
    redis_client.hset(
        key,
        mapping={"old-host:1": repr(now - HEARTBEAT_KEPT_S - 1), "other-host:2": repr(now - 60)},
    )
    parts.heartbeat("pump", now)
    fields = {f.decode() for f in redis_client.hkeys(key)}
    assert fields == {"other-host:2", parts.holder}
