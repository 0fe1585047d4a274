"""The per-order lock (taken and released by the ledger's batch scripts) and leader leases,
against a real Redis."""

from __future__ import annotations

import pytest
import redis

from worker.core.keys import Keys
from worker.core.records import NewVersion
from worker.store.leases import Leader, OrderLock
from worker.store.ledger import Claim, Finish, Ledger

T0 = 1_800_000_000.0


@pytest.fixture
def lock(redis_client: redis.Redis[bytes], keys: Keys) -> OrderLock:
    return OrderLock(redis_client, keys)


def claim(ledger: Ledger, lock: OrderLock, key: str, token: str, *, ttl_s: float = 30.0) -> Claim:
    """The worker's claim of one order: its lock is taken inside `begin_batch`."""
    (one,) = ledger.begin_batch(
        [(key, token)],
        lock_head_tail=lock.key_parts(),
        lock_ttl_s=ttl_s,
        lock_busy_due_at=T0 + 60,
        task_id="t",
        worker="w",
        now=T0,
        max_unfinished=3,
    )
    return one


def release(ledger: Ledger, lock: OrderLock, key: str, token: str) -> None:
    """Hand a lock back as the worker does, through `finish_batch` (no outcome)."""
    ledger.finish_batch([Finish(key, None, False, token)], lock_head_tail=lock.key_parts(), now=T0)


def pending(ledger: Ledger, key: str) -> None:
    ledger.record(NewVersion(order_key=key, raw=b"{}", updated_at=None, source="t"), now=T0)


def test_a_claim_holds_the_lock_and_a_second_claim_finds_it_taken(
    ledger: Ledger, lock: OrderLock
) -> None:
    """The claim takes the order's lock with its token; a second worker's claim of the same
    order, while the lock lives, gets `locked` and the lock keeps its holder."""
    pending(ledger, "o-1")
    first = claim(ledger, lock, "o-1", "t-1")
    assert first.token == "t-1" and lock.holder("o-1") == "t-1"
    second = claim(ledger, lock, "o-1", "t-2")
    assert second.locked and second.token is None
    assert lock.holder("o-1") == "t-1"


def test_the_lock_lives_for_the_ttl_given(
    ledger: Ledger, lock: OrderLock, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """The lock expires on its own after `lock_ttl_s`, so a worker that died frees it."""
    pending(ledger, "o-1")
    claim(ledger, lock, "o-1", "t-1", ttl_s=5)
    assert 0 < redis_client.pttl(keys.lock("o-1")) <= 5000


def test_only_the_holder_releases(ledger: Ledger, lock: OrderLock) -> None:
    """A release with a wrong token leaves the lock in place; the holder's token frees it."""
    pending(ledger, "o-1")
    claim(ledger, lock, "o-1", "t-1")
    release(ledger, lock, "o-1", "not-the-token")
    assert lock.holder("o-1") == "t-1"
    release(ledger, lock, "o-1", "t-1")
    assert lock.holder("o-1") is None


def test_an_expired_lock_can_be_taken_and_the_old_holder_cannot_free_it(
    ledger: Ledger, lock: OrderLock, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Once a lock's key is gone (expired), another worker takes it and the stale holder's release
    does not free the new holder's lock."""
    pending(ledger, "o-1")
    claim(ledger, lock, "o-1", "old")
    redis_client.delete(keys.lock("o-1"))  # what expiry does, without waiting for it
    assert claim(ledger, lock, "o-1", "new").token == "new"
    release(ledger, lock, "o-1", "old")
    assert lock.holder("o-1") == "new"


def test_tokens_are_unique(lock: OrderLock) -> None:
    """Each token is fresh and random."""
    assert len({lock.make_token() for _ in range(100)}) == 100


def test_one_leader_per_role(redis_client: redis.Redis[bytes]) -> None:
    """While one holder's lease lives, another holder cannot lead the same role; another role is
    independent."""
    leader = Leader(redis_client, Keys())
    assert leader.try_lead("pump", holder="host-a", ttl_s=30) is True
    assert leader.try_lead("pump", holder="host-b", ttl_s=30) is False
    assert leader.try_lead("sweeper", holder="host-b", ttl_s=30) is True
    assert leader.current("pump") == "host-a"


def test_the_leader_renews_its_lease(redis_client: redis.Redis[bytes]) -> None:
    """A leader calling try_lead again keeps leading and its lease is pushed out."""
    keys = Keys()
    leader = Leader(redis_client, keys)
    assert leader.try_lead("pump", holder="host-a", ttl_s=5) is True
    assert leader.try_lead("pump", holder="host-a", ttl_s=600) is True
    assert redis_client.pttl(keys.leader("pump")) > 5000


def test_another_host_takes_over_after_the_lease_ends(redis_client: redis.Redis[bytes]) -> None:
    """When the lease is gone (expired or resigned), the next host to ask becomes leader, and the
    old leader's resign does not remove the new leader."""
    keys = Keys()
    leader = Leader(redis_client, keys)
    assert leader.try_lead("pump", holder="host-a", ttl_s=30) is True
    assert leader.resign("pump", holder="host-b") is False
    assert leader.resign("pump", holder="host-a") is True
    assert leader.try_lead("pump", holder="host-b", ttl_s=30) is True
    assert leader.resign("pump", holder="host-a") is False
    assert leader.current("pump") == "host-b"
