"""The fleet-wide rate limiter: one token bucket in Redis shared by every worker process.

`acquire` is one Lua script, so refill, the 429 block and the take are atomic across the fleet.
The script reads the clock from Redis `TIME`, never from the caller, so hosts with skewed clocks
still share one notion of "elapsed". The bucket holds at most `burst` tokens and refills at
`rate_per_s`; a fresh (or expired) bucket starts full.

`block(until=...)` records Jetti's "back off" (a 429) at `keys.blocked_until()`: every `acquire`
returns the remaining block until it passes. A block only ever moves later, so a short
Retry-After from one worker cannot cut short a longer one from another.

Callers wait for a token with `worker.pipeline.submit.wait_for_token` (sleeping the returned
wait and asking again, at most `settings.max_token_wait_s` for an order) and otherwise reschedule
the order without spending an attempt; the reconciler's reads wait as long as it takes.

`ApiThrottle` is the same bucket for Jetti's synchronous API, one per kind of call: Jetti
documents 2 GET and 1 non-GET per second per token on the sync API (facts §1). The reconciler's
import-log pages and sale lookups share the `read` bucket; cancellations (in async mode) take the
`write` bucket. Each has its own keys, so every worker and every reconciler host share one
budget, and a 429 blocks only that kind of call.

The scripts are worker/store/lua/rate_acquire.lua and rate_block.lua.
"""

from __future__ import annotations

import math

import redis

from worker.core.keys import Keys
from worker.store.scripts import Script


class RateLimiter:
    """One token bucket for the whole fleet at `keys.rate_bucket()`, plus the 429 block."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        rate_per_s: float,
        burst: int,
        bucket_key: str | None = None,
        blocked_key: str | None = None,
    ) -> None:
        """`bucket_key` / `blocked_key` default to the fleet limiter's keys; another bucket
        (the sync API's read and write throttles) passes its own."""
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._client = client
        self._bucket_key = bucket_key or keys.rate_bucket()
        self._blocked_key = blocked_key or keys.blocked_until()
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._block = Script(client, "rate_block")
        self._acquire_many = Script(client, "rate_acquire")

    def acquire(self) -> float:
        """Take one token. Returns 0.0 when taken (go now), else seconds to wait, untaken.

        The wait is the remaining fleet block if one is in force, else the time until the bucket
        holds one token. It is a hint, not a reservation: ask again after waiting.
        """
        taken, wait_s = self.acquire_many(1)
        return 0.0 if taken else wait_s

    def acquire_many(self, count: int) -> tuple[int, float]:
        """Take up to `count` tokens in one round trip (a worker's batch).

        Returns (taken, wait_s): `taken` whole tokens are the caller's (0 <= taken <= count);
        when fewer than `count` were available, `wait_s` is the time until the next token (or
        the remaining fleet block), else 0.0. Same bucket and block as `acquire`.
        """
        if count < 1:
            return 0, 0.0
        keys = [self._bucket_key, self._blocked_key]
        taken, wait = self._acquire_many(keys, [repr(self.rate_per_s), self.burst, count])
        return int(taken), max(0.0, float(wait))

    def block(self, *, until: float) -> bool:
        """Stop the fleet taking tokens until `until` (epoch seconds).

        Only moves the block later; True when it did. A time already past is ignored, and so
        is a non-finite one (`PXAT inf` is a script error that would loop the order,
        reliability #8): callers bound their pauses (Retry-After is clamped by the client).
        """
        if not math.isfinite(until):
            return False
        return bool(self._block([self._blocked_key], [repr(until)]))

    def blocked_until(self) -> float | None:
        """Epoch seconds the current block ends, or None when none is in force (for `health`)."""
        value = self._client.get(self._blocked_key)
        return None if value is None else float(value)


class ApiThrottle(RateLimiter):
    """A token bucket for one kind (`read` or `write`) of sync-API call, shared by the fleet.

    `burst` defaults to 1: calls are spaced evenly, never bunched into one of Jetti's windows.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        kind: str,
        rate_per_s: float,
        burst: int = 1,
    ) -> None:
        super().__init__(
            client,
            keys,
            rate_per_s=rate_per_s,
            burst=burst,
            bucket_key=keys.api_bucket(kind),
            blocked_key=keys.api_blocked_until(kind),
        )
        self.kind = kind
