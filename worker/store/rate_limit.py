"""The fleet-wide rate limiter: one token bucket in Redis shared by every worker process.

`acquire` is one Lua script, so refill, the 429 block and the take are atomic across the fleet.
The script reads the clock from Redis `TIME`, never from the caller, so hosts with skewed clocks
still share one notion of "elapsed". The bucket holds at most `burst` tokens and refills at
`rate_per_s`; a fresh (or expired) bucket starts full.

`block(until=...)` records Jetti's "back off" (a 429) at `keys.blocked_until()`: every `acquire`
returns the remaining block until it passes. A block only ever moves later, so a short
Retry-After from one worker cannot cut short a longer one from another.

Callers wait at most `settings.max_token_wait_s` for a token (sleeping the returned wait and
asking again) and otherwise reschedule the order without spending an attempt.
"""

from __future__ import annotations

import math

import redis

from worker.core.keys import Keys

# Refill, honour the fleet block, take up to ARGV[3] whole tokens (as many as the bucket holds);
# returns {taken, wait} where wait (a string, seconds: Redis truncates Lua numbers to integers)
# is the time until the next token when fewer than asked were taken (or the remaining block,
# with 0 taken). KEYS: bucket, blocked_until. ARGV: rate, burst, want.
_ACQUIRE_MANY_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[2]))
if blocked and now < blocked then
    return {0, string.format('%.6f', blocked - now)}
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
    tokens = burst
    ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local taken = math.min(want, math.floor(tokens))
tokens = tokens - taken
local wait = 0
if taken < want then
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
-- Once the bucket would be full again its state carries no information; let it go.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, string.format('%.6f', wait)}
"""

# Moves the block later (never earlier); the key expires when the block ends.
# KEYS: blocked_until. ARGV: until (epoch s). Returns 1 when the block was extended.
_BLOCK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_s = tonumber(ARGV[1])
if until_s <= now then
    return 0
end
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= until_s then
    return 0
end
redis.call('SET', KEYS[1], string.format('%.6f', until_s), 'PXAT', math.ceil(until_s * 1000))
return 1
"""


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
        self._block = client.register_script(_BLOCK_LUA)
        self._acquire_many = client.register_script(_ACQUIRE_MANY_LUA)

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
        taken, wait = self._acquire_many(keys=keys, args=[repr(self.rate_per_s), self.burst, count])
        return int(taken), max(0.0, float(wait))

    def block(self, *, until: float) -> bool:
        """Stop the fleet taking tokens until `until` (epoch seconds).

        Only moves the block later; True when it did. A time already past is ignored, and so
        is a non-finite one (`PXAT inf` is a script error that would loop the order,
        reliability #8): callers bound their pauses (Retry-After is clamped by the client).
        """
        if not math.isfinite(until):
            return False
        return bool(self._block(keys=[self._blocked_key], args=[repr(until)]))

    def blocked_until(self) -> float | None:
        """Epoch seconds the current block ends, or None when none is in force (for `health`)."""
        value = self._client.get(self._blocked_key)
        return None if value is None else float(value)
