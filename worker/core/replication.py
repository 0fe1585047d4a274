"""What the relay knows about its Redis replication, and the judgements on it (pure).

Two views are read (worker/store/replication_info.py): the primary's own (INFO replication: its
role, each replica's state, offset and seconds since its last acknowledgement) and each
sentinel's (SENTINEL MASTER and REPLICAS: where it thinks the primary is, the failover epoch,
how long ago it last saw the primary's role change, the replicas it knows). This module turns
them into the worker's start-up verdict (`startup_verdict`) and the figures `health` and the
metrics report. No IO, no clock: `now` is an argument.

The last failover's time is Sentinel's own: a sentinel resets its record of the primary when it
switches to a new one, so the oldest `role-reported-time` among the sentinels naming the
current primary is when it became the primary, after the first failover (config-epoch > 0).
Before any failover there is no failover time (None). A restart of every sentinel at once
would make the last failover look as recent as that restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The variables an operator fixes when the sentinels are wrong (docs/settings.md).
SENTINELS_VAR = "JETTI_RELAY_REDIS_SENTINELS"
MASTER_VAR = "JETTI_RELAY_REDIS_SENTINEL_MASTER"
PASSWORD_VAR = "JETTI_RELAY_REDIS_SENTINEL_PASSWORD"
MIN_REPLICAS_VAR = "JETTI_RELAY_MIN_REPLICAS_ACK"
# Sentinel's flags for an instance it believes down (subjectively, or by quorum).
DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})


@dataclass(frozen=True)
class Replica:
    """One replica as the primary reports it (INFO replication `slaveN`).

    `lag_bytes`: replication offset the replica has not acknowledged; `lag_s`: seconds since
    its last acknowledgement (replicas acknowledge every second, so 0-1 is healthy)."""

    address: str
    online: bool
    lag_bytes: int
    lag_s: float


@dataclass(frozen=True)
class PrimaryView:
    """The server the relay writes to, as it describes itself (INFO replication)."""

    role: str  # "master" for a primary; "slave" when the relay talks to a replica
    replicas: tuple[Replica, ...]

    @property
    def online(self) -> int:
        """Replicas in state `online` (streaming the primary's writes)."""
        return sum(1 for r in self.replicas if r.online)

    @property
    def max_lag_bytes(self) -> int:
        """The largest unacknowledged offset among the online replicas; 0 with none."""
        return max((r.lag_bytes for r in self.replicas if r.online), default=0)

    @property
    def max_lag_s(self) -> float:
        """The longest time since an online replica's acknowledgement; 0 with none."""
        return max((r.lag_s for r in self.replicas if r.online), default=0.0)


@dataclass(frozen=True)
class SentinelView:
    """One sentinel's answer about the master name, or why there is none.

    `error` is "unreachable" (no answer, or refused the password), "unknown master" (it does
    not monitor that name) or "" when it answered. `primary` is host:port; `since_s` is how
    long ago it last saw the primary's role change (its `role-reported-time`)."""

    address: str
    error: str = ""
    primary: str = ""
    primary_down: bool = False
    epoch: int = 0
    since_s: float = 0.0
    quorum: int = 0
    known_replicas: int = 0


@dataclass(frozen=True)
class ReplicationState:
    """Everything read about the replication at one moment.

    `primary` is None when the primary did not answer (or refused INFO); `sentinels` is empty
    when Sentinel is not configured."""

    primary: PrimaryView | None
    sentinels: tuple[SentinelView, ...] = ()

    @property
    def answering(self) -> tuple[SentinelView, ...]:
        """The sentinels that answered about the master name."""
        return tuple(s for s in self.sentinels if not s.error)

    @property
    def primary_address(self) -> str:
        """The primary most answering sentinels name ("" without sentinels or answers)."""
        names = [s.primary for s in self.answering]
        return max(sorted(set(names)), key=names.count, default="")

    @property
    def seeing_primary(self) -> int:
        """Sentinels that name the current primary and do not believe it down."""
        address = self.primary_address
        return sum(1 for s in self.answering if s.primary == address and not s.primary_down)

    @property
    def quorum(self) -> int:
        """The quorum the sentinels are configured with (0 when none answered)."""
        return max((s.quorum for s in self.answering), default=0)

    @property
    def epoch(self) -> int:
        """Sentinel's config-epoch: it grows by one with every failover (0: never failed over)."""
        return max((s.epoch for s in self.answering), default=0)

    @property
    def known_replicas(self) -> int:
        """Replicas the sentinels know of the current primary, down ones included."""
        return max((s.known_replicas for s in self.answering), default=0)

    def last_failover_at(self, now: float) -> float | None:
        """Epoch seconds of the last failover (module docstring), None when there was none."""
        if self.epoch == 0:
            return None
        address = self.primary_address
        ages = [s.since_s for s in self.answering if s.primary == address]
        return now - max(ages) if ages else None


# --- the worker's start-up check -------------------------------------------------------------
Action = Literal["start", "wait", "refuse"]


@dataclass(frozen=True)
class StartupVerdict:
    """What the worker does at start: start, wait (and read again), or refuse with `reason`."""

    action: Action
    reason: str = ""


def startup_verdict(
    state: ReplicationState, *, sentinels: int, master: str, min_replicas: int
) -> StartupVerdict:
    """The worker's verdict on the replication it is about to rely on.

    `sentinels` is how many addresses JETTI_RELAY_REDIS_SENTINELS lists (0: no Sentinel).
    Refuse when no sentinel answers, when none knows `master`, or when the sentinels know fewer
    replicas than `min_replicas` (a setup that can never acknowledge an order). Wait when
    replicas exist but fewer than `min_replicas` are online at the primary (a failover or a
    restart in progress: they re-attach within seconds); the caller refuses once waiting took
    too long. An unreachable primary is neither: the worker waits for Redis as it always does."""
    if sentinels:
        if not state.answering:
            reasons = {s.error for s in state.sentinels}
            if reasons == {"unknown master"}:
                return StartupVerdict(
                    "refuse",
                    f"no sentinel monitors a master named {master!r} ({MASTER_VAR}); "
                    f"check it against `sentinel monitor <name> ...` in their configuration",
                )
            return StartupVerdict(
                "refuse",
                f"none of the {sentinels} sentinels of {SENTINELS_VAR} answered about "
                f"{master!r}: check the addresses, and {PASSWORD_VAR} if they require a password",
            )
        if min_replicas and state.known_replicas < min_replicas:
            return StartupVerdict(
                "refuse",
                f"the sentinels know {state.known_replicas} replica(s) of {master!r}, "
                f"{MIN_REPLICAS_VAR}={min_replicas} needs at least {min_replicas}: add replicas "
                "or lower it",
            )
    if state.primary is None or not min_replicas:
        return StartupVerdict("start")
    if state.primary.role != "master":
        return StartupVerdict("wait", "the server the relay writes to is a replica")
    online = state.primary.online
    if online < min_replicas:
        return StartupVerdict(
            "wait",
            f"the primary has {online} replica(s) online, {MIN_REPLICAS_VAR}={min_replicas} "
            f"needs {min_replicas}",
        )
    return StartupVerdict("start")


__all__ = [
    "DOWN_FLAGS",
    "PrimaryView",
    "Replica",
    "ReplicationState",
    "SentinelView",
    "StartupVerdict",
    "startup_verdict",
]
