"""The fleet circuit breaker: one Redis hash that stops every worker submitting to Jetti.

States (field `state` of `keys.breaker()`; a missing hash means closed):

    closed ──trip()──► open ──probe_at passes, allow()──► half_open ──record_success()──► closed
                        ▲                                      │
                        └──────────────trip()──────────────────┘
    any ──pause()──► paused ──resume()──► closed               (operators only)

A worker trips the breaker when Jetti answers in a way that retrying cannot fix (bad credentials,
a wrong channel). After `probe_s` exactly one `allow()` caller is let through as the probe; the
rest keep getting False until the probe reports: `record_success()` closes the breaker, a failure
is just another `trip()`. If the probe never reports (its worker died), another probe is let
through `probe_s` later.

`paused` is the operator's: neither a trip nor a success leaves it, only `resume()` does, so an
in-flight submission finishing after `jetti-relay pause` cannot undo the pause.

Every operation is one Lua script, one round trip; `record_success()` writes only when the
breaker is not already closed, since it runs after every accepted submission.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, cast

import redis

from worker.core.keys import Keys

BreakerStateName = Literal["closed", "open", "half_open", "paused"]
# Answer of `Breaker.admit`.
Admission = Literal["all", "probe", "none"]

# Reason recorded by `pause` when the operator gives none.
DEFAULT_PAUSE_REASON = "paused by operator"

# Closed or missing: go. Paused: stop. Open or half-open: let one probe through once probe_at has
# passed, and push probe_at out so the next probe waits for this one (or for probe_s if it dies).
# KEYS: breaker. ARGV: now, probe_s. Returns 1 to go.
_ALLOW_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == false or state == 'closed' then
    return 1
end
if state == 'paused' then
    return 0
end
local now = tonumber(ARGV[1])
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at')) or 0
if now < probe_at then
    return 0
end
redis.call('HSET', KEYS[1], 'state', 'half_open',
           'probe_at', string.format('%.6f', now + tonumber(ARGV[2])))
return 1
"""

# `_ALLOW_LUA` telling a whole batch how many may go: 'all' while closed, 'probe' for the one
# caller let through as the probe (it may send one order), 'none' otherwise.
_ADMIT_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == false or state == 'closed' then
    return 'all'
end
if state == 'paused' then
    return 'none'
end
local now = tonumber(ARGV[1])
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at')) or 0
if now < probe_at then
    return 'none'
end
redis.call('HSET', KEYS[1], 'state', 'half_open',
           'probe_at', string.format('%.6f', now + tonumber(ARGV[2])))
return 'probe'
"""

# Opens the breaker unless an operator paused it. KEYS: breaker. ARGV: now, probe_s, reason,
# status ('' for none). Returns 1 when opened.
_TRIP_LUA = """
if redis.call('HGET', KEYS[1], 'state') == 'paused' then
    return 0
end
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'open', 'reason', ARGV[3], 'status', ARGV[4],
           'since', string.format('%.6f', now),
           'probe_at', string.format('%.6f', now + tonumber(ARGV[2])))
return 1
"""

# Closes an open or half-open breaker; writes nothing when closed or paused.
# KEYS: breaker. ARGV: now ('' for Redis TIME). Returns 1 when it closed the breaker.
_SUCCESS_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' or state == 'half_open' then
    local since = ARGV[1]
    if since == '' then
        local t = redis.call('TIME')
        since = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
    end
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'state', 'closed', 'since', since)
    return 1
end
return 0
"""


@dataclass(frozen=True)
class BreakerState:
    """A snapshot of the breaker. `status` is Jetti's HTTP status behind a trip, if any;
    `since` is when the current state began (epoch seconds), None if it never changed."""

    state: BreakerStateName
    reason: str
    status: int | None
    since: float | None


_STATES: frozenset[str] = frozenset({"closed", "open", "half_open", "paused"})


def _fmt(seconds: float) -> str:
    return f"{seconds:.6f}"


class Breaker:
    """The fleet circuit breaker at `keys.breaker()`. `probe_s`: how long open lasts before a
    probe is let through (seconds)."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys, *, probe_s: float) -> None:
        if probe_s <= 0:
            raise ValueError(f"probe_s must be positive, got {probe_s!r}")
        self._client = client
        self._keys = keys
        self.probe_s = probe_s
        self._allow = client.register_script(_ALLOW_LUA)
        self._trip = client.register_script(_TRIP_LUA)
        self._success = client.register_script(_SUCCESS_LUA)
        self._admit = client.register_script(_ADMIT_LUA)

    def allow(self, *, now: float) -> bool:
        """May this caller submit now (epoch seconds)? True when closed, or for the one probe."""
        return bool(self._allow(keys=[self._keys.breaker()], args=[_fmt(now), _fmt(self.probe_s)]))

    def admit(self, *, now: float) -> Admission:
        """How much of a batch may be submitted now: "all" (closed), "probe" (this caller is the
        one probe: send one order, then `record_success()` or `trip()`), or "none"."""
        raw = self._admit(keys=[self._keys.breaker()], args=[_fmt(now), _fmt(self.probe_s)])
        return cast(Admission, bytes(raw).decode())

    def trip(self, *, reason: str, status: int | None = None, now: float) -> bool:
        """Open the breaker (again, if half-open); the next probe comes `probe_s` after `now`.

        Returns False, changing nothing, while an operator has the fleet paused.
        """
        args = [_fmt(now), _fmt(self.probe_s), reason, "" if status is None else str(status)]
        return bool(self._trip(keys=[self._keys.breaker()], args=args))

    def record_success(self, *, now: float | None = None) -> bool:
        """Report an accepted submission: closes an open or half-open breaker (True if it did).

        `now` stamps `since` (default: Redis TIME). One round trip, and no write when already
        closed. Leaves a pause alone.
        """
        since = "" if now is None else _fmt(now)
        return bool(self._success(keys=[self._keys.breaker()], args=[since]))

    def pause(self, reason: str = DEFAULT_PAUSE_REASON, *, now: float | None = None) -> None:
        """Stop the whole fleet submitting until `resume()` (operators). `now` defaults to
        this host's clock."""
        now = time.time() if now is None else now
        key = self._keys.breaker()
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"state": "paused", "reason": reason, "since": _fmt(now)})
            pipe.execute()

    def resume(self, *, now: float | None = None) -> None:
        """Close the breaker whatever its state (operators): after a pause or a trip."""
        now = time.time() if now is None else now
        key = self._keys.breaker()
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"state": "closed", "since": _fmt(now)})
            pipe.execute()

    def state(self) -> BreakerState:
        """The breaker as it stands (for `health` and the CLI)."""
        raw = self._client.hgetall(self._keys.breaker())
        fields = {bytes(k).decode(): bytes(v).decode() for k, v in raw.items()}
        name = fields.get("state", "closed")
        status = fields.get("status", "")
        since = fields.get("since", "")
        return BreakerState(
            state=cast(BreakerStateName, name if name in _STATES else "closed"),
            reason=fields.get("reason", ""),
            status=int(status) if status else None,
            since=float(since) if since else None,
        )
