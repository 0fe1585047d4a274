"""The per-order lock and leader leases against a real Redis."""

from __future__ import annotations

import redis

from worker.core.keys import Keys
from worker.store.leases import Leader, OrderLock


def test_second_acquire_fails_while_the_lock_is_held(redis_client: redis.Redis[bytes]) -> None:
    """A second worker cannot take an order's lock that another worker holds."""
    lock = OrderLock(redis_client, Keys())
    assert lock.acquire("o-1", ttl_s=30) is not None
    assert lock.acquire("o-1", ttl_s=30) is None


def test_only_the_holder_releases(redis_client: redis.Redis[bytes]) -> None:
    """Release with a wrong token leaves the lock in place; the holder's token frees it."""
    lock = OrderLock(redis_client, Keys())
    token = lock.acquire("o-1", ttl_s=30)
    assert token is not None
    assert lock.release("o-1", "not-the-token") is False
    assert lock.holder("o-1") == token
    assert lock.release("o-1", token) is True
    assert lock.acquire("o-1", ttl_s=30) is not None


def test_only_the_holder_extends(redis_client: redis.Redis[bytes]) -> None:
    """Extend with a wrong token fails and leaves the expiry alone; the holder's token resets it."""
    keys = Keys()
    lock = OrderLock(redis_client, keys)
    token = lock.acquire("o-1", ttl_s=5)
    assert token is not None
    assert lock.extend("o-1", "other", ttl_s=600) is False
    assert redis_client.pttl(keys.lock("o-1")) <= 5000
    assert lock.extend("o-1", token, ttl_s=600) is True
    assert redis_client.pttl(keys.lock("o-1")) > 5000


def test_an_expired_lock_can_be_taken_and_the_old_holder_cannot_free_it(
    redis_client: redis.Redis[bytes],
) -> None:
    """Once a lock's key is gone (expired), another worker takes it and the stale holder's release
    does not free the new holder's lock."""
    keys = Keys()
    lock = OrderLock(redis_client, keys)
    old = lock.acquire("o-1", ttl_s=30)
    assert old is not None
    redis_client.delete(keys.lock("o-1"))  # what expiry does, without waiting for it
    new = lock.acquire("o-1", ttl_s=30)
    assert new is not None and new != old
    assert lock.release("o-1", old) is False
    assert lock.holder("o-1") == new


def test_tokens_are_unique_per_acquire(redis_client: redis.Redis[bytes]) -> None:
    """Each acquisition gets a fresh random token."""
    lock = OrderLock(redis_client, Keys())
    first = lock.acquire("o-1", ttl_s=30)
    second = lock.acquire("o-2", ttl_s=30)
    assert first is not None and second is not None and first != second


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
