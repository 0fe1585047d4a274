"""The per-order lock and leader leases, both in Redis.

`OrderLock` stops two workers submitting one order at once (DESIGN.md principle 3): `SET NX PX`
with a random token, taken and released inside the ledger's batch scripts (begin_batch.lua,
finish_batch.lua), and only the holder of that token can release it (a compare-and-delete), so a
worker whose lock expired while it was slow cannot free a lock that another worker now holds.
`OrderLock` makes the tokens and names the lock keys for those scripts.

`Leader` elects one acting host per periodic role (pump, sweeper, reconciler): every host calls
`try_lead` on each tick; the current holder renews its lease, the others see False, and when the
holder stops renewing, the lease expires and the next caller takes over.

Both are leases, not fences: an expired holder may still be running. The per-order idempotency
(Jetti upserts by `externalId`) is what makes that overlap harmless; the lock only makes it rare.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import redis

from worker.core.keys import Keys
from worker.store.scripts import Script


def _ttl_ms(ttl_s: float) -> int:
    """A positive lease length in whole milliseconds; raises ValueError otherwise."""
    ttl_ms = int(ttl_s * 1000)
    if ttl_ms <= 0:
        raise ValueError(f"ttl_s must be at least 0.001 s, got {ttl_s!r}")
    return ttl_ms


def new_token() -> str:
    """A random lock token (128 bits, hex); unguessable, so no other holder can forge it."""
    return secrets.token_hex(16)


class OrderLock:
    """Per-order mutual exclusion at `keys.lock(order_key)`.

    `token_factory` makes lock tokens; tests may inject a deterministic one.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        token_factory: Callable[[], str] = new_token,
    ) -> None:
        self._client = client
        self._keys = keys
        self._token_factory = token_factory

    def make_token(self) -> str:
        """A fresh token, for callers that take locks in a batch script (`Ledger.begin_batch`)."""
        return self._token_factory()

    def key_parts(self) -> tuple[str, str]:
        """The lock key around the ENCODED order key (head, tail), for scripts that derive lock
        keys (they encode the order key as worker.core.keys.encode_order_key does)."""
        return self._keys.parts(self._keys.lock)

    def holder(self, order_key: str) -> str | None:
        """The token currently holding the lock, or None (for inspection and tests)."""
        value = self._client.get(self._keys.lock(order_key))
        return None if value is None else bytes(value).decode()


class Leader:
    """Leased leadership per periodic role at `keys.leader(role)`."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._lead = Script(client, "lease_lead")
        self._release = Script(client, "token_release")

    def try_lead(self, role: str, *, holder: str, ttl_s: float) -> bool:
        """Become or stay the leader of `role` for `ttl_s` seconds.

        True when `holder` leads (the lease was free, or already `holder`'s and is now renewed);
        False while another holder's lease lives. Call it every tick, with `ttl_s` comfortably
        longer than the tick, so a live leader never loses its lease between two ticks.
        `holder` must be unique per process (host name plus pid, say).
        """
        args: list[str | int] = [holder, _ttl_ms(ttl_s)]
        return bool(self._lead([self._keys.leader(role)], args))

    def resign(self, role: str, *, holder: str) -> bool:
        """Give up the lease at shutdown so another host takes over at once. False if not held."""
        return bool(self._release([self._keys.leader(role)], [holder]))

    def current(self, role: str) -> str | None:
        """Who leads `role` now, or None (read by `health`)."""
        value = self._client.get(self._keys.leader(role))
        return None if value is None else bytes(value).decode()
