"""The verdict on a Redis server's durability settings, and version parsing (pure)."""

from __future__ import annotations

import pytest

from worker.core.limits import MIN_REDIS_VERSION
from worker.redisconn import RedisTooOld, ServerFacts, parse_version

SAFE = ServerFacts(
    appendonly=True,
    save="",
    eviction_policy="noeviction",
    maxmemory_bytes=1 << 30,
    used_memory_bytes=1 << 20,
)


def facts(**changes: object) -> ServerFacts:
    return ServerFacts(**{**SAFE.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("6.2.14", (6, 2, 14)),
        ("7.2.4-rc1", (7, 2, 4)),
        ("7.0", (7, 0)),
        ("255.255.255", (255,) * 3),
    ],
)
def test_versions_parse_to_comparable_tuples(text: str, parsed: tuple[int, ...]) -> None:
    assert parse_version(text) == parsed


def test_the_minimum_is_6_2_and_the_refusal_names_both_versions() -> None:
    assert MIN_REDIS_VERSION == (6, 2, 0)
    assert parse_version("6.0.16") < MIN_REDIS_VERSION <= parse_version("6.2.14")
    message = str(RedisTooOld("6.0.16"))
    assert "6.0.16" in message and "6.2.0" in message and "\n" not in message


@pytest.mark.parametrize(
    ("changes", "verdict", "problems"),
    [
        ({}, "ok", 0),
        ({"appendonly": False, "save": "3600 1"}, "ok", 0),  # RDB snapshots are persistence
        ({"appendonly": False}, "degraded", 1),
        ({"eviction_policy": "allkeys-lru"}, "degraded", 1),
        ({"maxmemory_bytes": 0}, "degraded", 1),
        (
            {"appendonly": False, "maxmemory_bytes": 0, "eviction_policy": "volatile-lru"},
            "degraded",
            3,
        ),
        ({"save": None, "appendonly": False}, "unknown", 0),  # CONFIG refused, AOF off per INFO
        ({"save": None, "appendonly": True}, "ok", 0),  # AOF on is enough
        ({"eviction_policy": None}, "unknown", 0),
        ({"save": None, "appendonly": None, "maxmemory_bytes": 0}, "degraded", 1),
    ],
)
def test_the_verdict(changes: dict[str, object], verdict: str, problems: int) -> None:
    result = facts(**changes)
    assert (result.verdict, len(result.problems)) == (verdict, problems)
