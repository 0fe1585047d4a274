"""The audit log stream against a real Redis."""

from __future__ import annotations

import redis

from worker.core.keys import Keys
from worker.store.audit import AuditLog, os_user


def test_records_read_back_newest_first(redis_client: redis.Redis[bytes]) -> None:
    """Every field written comes back, and the newest record is listed first."""
    log = AuditLog(redis_client, Keys())
    log.record(
        "replay", actor="ana", order_keys=["o-1", "o-2"], details={"mode": "stored"}, now=100.0
    )
    log.record("purge", actor="bo", order_keys=["o-3"], now=200.0)
    records = log.read()
    assert [r.action for r in records] == ["purge", "replay"]
    replay = records[1]
    assert (replay.actor, replay.at, replay.order_keys, replay.details) == (
        "ana",
        100.0,
        ("o-1", "o-2"),
        {"mode": "stored"},
    )
    assert log.count() == 2


def test_filters_by_action_actor_key_and_time(redis_client: redis.Redis[bytes]) -> None:
    """read() keeps only records matching every filter given."""
    log = AuditLog(redis_client, Keys())
    log.record("replay", actor="ana", order_keys=["o-1"], now=100.0)
    log.record("replay", actor="bo", order_keys=["o-2"], now=200.0)
    log.record("erase", actor="ana", order_keys=["o-1"], now=300.0)
    assert [r.at for r in log.read(action="replay")] == [200.0, 100.0]
    assert [r.at for r in log.read(actor="ana")] == [300.0, 100.0]
    assert [r.at for r in log.read(order_key="o-2")] == [200.0]
    assert [r.at for r in log.read(since=150.0, until=250.0)] == [200.0]


def test_limit_pages_past_the_first_page(redis_client: redis.Redis[bytes]) -> None:
    """A filtered read finds matches older than the first page of the stream, and stops at limit."""
    log = AuditLog(redis_client, Keys())
    log.record("erase", actor="ana", now=1.0)
    for i in range(600):
        log.record("replay", actor="bo", now=10.0 + i)
    assert [r.at for r in log.read(action="erase")] == [1.0]
    assert len(log.read(limit=550)) == 550


def test_os_user_names_someone() -> None:
    """os_user() returns a non-empty name for the current process."""
    assert os_user()
