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

Every operation is one Lua script (worker/store/lua/breaker_*.lua), one round trip;
`record_success()` writes only when the breaker is not already closed, since it runs after every
accepted submission.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, cast

import redis

from worker.core.keys import Keys
from worker.store.scripts import Script

BreakerStateName = Literal["closed", "open", "half_open", "paused"]
# Answer of `Breaker.admit`.
Admission = Literal["all", "probe", "none"]

# Reason recorded by `pause` when the operator gives none.
DEFAULT_PAUSE_REASON = "paused by operator"


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
        self._admit = Script(client, "breaker_admit")
        self._trip = Script(client, "breaker_trip")
        self._success = Script(client, "breaker_success")

    def allow(self, *, now: float) -> bool:
        """May this caller submit now (epoch seconds)? True when closed, or for the one probe."""
        return self.admit(now=now) != "none"

    def admit(self, *, now: float) -> Admission:
        """How much of a batch may be submitted now: "all" (closed), "probe" (this caller is the
        one probe: send one order, then `record_success()` or `trip()`), or "none"."""
        raw = self._admit([self._keys.breaker()], [_fmt(now), _fmt(self.probe_s)])
        return cast(Admission, bytes(raw).decode())

    def trip(self, *, reason: str, status: int | None = None, now: float) -> bool:
        """Open the breaker (again, if half-open); the next probe comes `probe_s` after `now`.

        Returns False, changing nothing, while an operator has the fleet paused.
        """
        args = [_fmt(now), _fmt(self.probe_s), reason, "" if status is None else str(status)]
        return bool(self._trip([self._keys.breaker()], args))

    def record_success(self, *, now: float | None = None) -> bool:
        """Report an accepted submission: closes an open or half-open breaker (True if it did).

        `now` stamps `since` (default: Redis TIME). One round trip, and no write when already
        closed. Leaves a pause alone.
        """
        since = "" if now is None else _fmt(now)
        return bool(self._success([self._keys.breaker()], [since]))

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
