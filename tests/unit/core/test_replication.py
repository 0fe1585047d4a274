"""The worker's start-up verdict on the replication, and the figures read from it."""

from __future__ import annotations

import pytest

from worker.core.replication import (
    PrimaryView,
    Replica,
    ReplicationState,
    SentinelView,
    startup_verdict,
)

MASTER = "jr-primary"


def primary(*online: bool, role: str = "master") -> PrimaryView:
    return PrimaryView(
        role=role,
        replicas=tuple(
            Replica(f"10.0.0.{i}:6379", up, lag_bytes=10 * i, lag_s=float(i))
            for i, up in enumerate(online, start=1)
        ),
    )


def sentinel(
    port: int, *, epoch: int = 0, since_s: float = 5.0, replicas: int = 2, where: str = "a:1"
) -> SentinelView:
    return SentinelView(
        f"s:{port}", primary=where, epoch=epoch, since_s=since_s, quorum=2, known_replicas=replicas
    )


def verdict(state: ReplicationState, *, sentinels: int = 3, min_replicas: int = 0) -> str:
    found = startup_verdict(state, sentinels=sentinels, master=MASTER, min_replicas=min_replicas)
    return f"{found.action}: {found.reason}" if found.reason else found.action


def test_no_sentinel_and_no_replicas_required_starts_on_a_single_redis() -> None:
    """Without Sentinel and with JETTI_RELAY_MIN_REPLICAS_ACK=0 nothing is required."""
    assert verdict(ReplicationState(primary()), sentinels=0) == "start"


def test_unreachable_sentinels_are_refused_naming_the_variable() -> None:
    """No sentinel answered: refuse, naming JETTI_RELAY_REDIS_SENTINELS and the password."""
    state = ReplicationState(None, (SentinelView("s:1", error="unreachable"),))
    found = verdict(state)
    assert found.startswith("refuse: ")
    assert "JETTI_RELAY_REDIS_SENTINELS" in found
    assert "JETTI_RELAY_REDIS_SENTINEL_PASSWORD" in found


def test_a_master_name_no_sentinel_monitors_is_refused_naming_the_variable() -> None:
    """Every sentinel answered 'no such master': the master name is wrong."""
    views = tuple(SentinelView(f"s:{i}", error="unknown master") for i in range(3))
    found = verdict(ReplicationState(primary(True), views))
    assert found.startswith("refuse: ") and "JETTI_RELAY_REDIS_SENTINEL_MASTER" in found


def test_fewer_known_replicas_than_required_is_refused_at_once() -> None:
    """A group with one replica cannot satisfy MIN_REPLICAS_ACK=2: no waiting helps."""
    state = ReplicationState(primary(True), (sentinel(1, replicas=1),))
    found = verdict(state, min_replicas=2)
    assert found.startswith("refuse: ") and "JETTI_RELAY_MIN_REPLICAS_ACK=2" in found


@pytest.mark.parametrize(("online", "action"), [((True, False), "wait"), ((True, True), "start")])
def test_known_replicas_not_online_yet_are_waited_for(
    online: tuple[bool, ...], action: str
) -> None:
    """Replicas the sentinels know but the primary does not stream to yet: wait, then start."""
    state = ReplicationState(primary(*online), (sentinel(1),))
    assert verdict(state, min_replicas=2).split(":")[0] == action


def test_an_unreachable_primary_is_not_refused() -> None:
    """The worker waits for Redis as it always does; the sentinels answered."""
    assert verdict(ReplicationState(None, (sentinel(1),)), min_replicas=1) == "start"


def test_a_replica_as_primary_is_waited_for_when_replicas_are_required() -> None:
    """Right after a failover the client may still reach a demoted node: wait."""
    state = ReplicationState(primary(True, role="slave"), (sentinel(1),))
    assert verdict(state, min_replicas=1).startswith("wait")


def test_lag_figures_cover_online_replicas_only() -> None:
    """Max lag in bytes and seconds over online replicas; 0 with none."""
    view = primary(True, False, True)
    assert (view.online, view.max_lag_bytes, view.max_lag_s) == (2, 30, 3.0)
    assert (primary().max_lag_bytes, primary().max_lag_s) == (0, 0.0)


def test_last_failover_is_the_oldest_switch_among_sentinels_naming_the_primary() -> None:
    """Epoch 0: never failed over. After one, the sentinel that switched first tells when."""
    never = ReplicationState(primary(), (sentinel(1), sentinel(2)))
    assert never.last_failover_at(1000.0) is None
    after = ReplicationState(
        primary(),
        (
            sentinel(1, epoch=1, since_s=4.0, where="b:2"),
            sentinel(2, epoch=1, since_s=6.0, where="b:2"),
            sentinel(3, epoch=0, since_s=60.0, where="a:1"),  # not switched yet
        ),
    )
    assert after.primary_address == "b:2"
    assert after.last_failover_at(1000.0) == 994.0
    assert (after.epoch, after.seeing_primary, after.quorum) == (1, 2, 2)
