"""Heartbeats of the periodic roles (pump, sweeper): who ran each, and when, for `health`.

`Keys.heartbeat(role)` is a hash: holder (host:pid) -> epoch s of its last pass. Each write also
drops holders silent for longer than `kept_s`: every restart is a new pid, and the hash would
otherwise gain a field per process for ever (reliability review #17).
"""

from __future__ import annotations

import redis

from worker.core.keys import Keys
from worker.store.scripts import Script


class Heartbeats:
    """Records the passes of one holder (host:pid) in each role's heartbeat hash."""

    def __init__(
        self, client: redis.Redis[bytes], keys: Keys, *, holder: str, kept_s: float
    ) -> None:
        self._keys = keys
        self._holder = holder
        self._kept_s = kept_s
        self._script = Script(client, "heartbeat")  # lua/heartbeat.lua

    def beat(self, role: str, now: float) -> None:
        """Record that `role` ran on this holder at `now`, and forget holders silent for
        `kept_s`."""
        self._script(
            [self._keys.heartbeat(role)], [self._holder, repr(now), repr(now - self._kept_s)]
        )
