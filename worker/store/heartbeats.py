"""Heartbeats of the periodic roles (pump, sweeper): who ran each, and when, for `health`.

`Keys.heartbeat(role)` is a hash: holder (host:pid) -> epoch s of its last pass. Each write also
drops holders silent for longer than `kept_s`: every restart is a new pid, and the hash would
otherwise gain a field per process for ever (reliability review #17).
"""

from __future__ import annotations

import redis

from worker.core.keys import Keys

# KEYS[1] heartbeat hash; ARGV holder, now, cutoff: set the holder's field, drop older ones.
_HEARTBEAT_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cutoff = tonumber(ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local at = tonumber(flat[i + 1])
  if at == nil or at < cutoff then redis.call('HDEL', KEYS[1], flat[i]) end
end
return 0
"""


class Heartbeats:
    """Records the passes of one holder (host:pid) in each role's heartbeat hash."""

    def __init__(
        self, client: redis.Redis[bytes], keys: Keys, *, holder: str, kept_s: float
    ) -> None:
        self._keys = keys
        self._holder = holder
        self._kept_s = kept_s
        self._script = client.register_script(_HEARTBEAT_LUA)  # EVALSHA; loads it if missing

    def beat(self, role: str, now: float) -> None:
        """Record that `role` ran on this holder at `now`, and forget holders silent for
        `kept_s`."""
        self._script(
            keys=[self._keys.heartbeat(role)],
            args=[self._holder, repr(now), repr(now - self._kept_s)],
        )
