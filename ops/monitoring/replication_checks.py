"""The `replication` health check: does the ledger have the copies acceptance relies on?

In a module of its own (checks.py holds the pipeline's checks); `jetti-relay health` adds it to
the others. It reads the primary's INFO replication and, with Sentinel configured, every
sentinel's view (worker/store/replication_info.py): the role of the server the relay writes to,
replicas online against JETTI_RELAY_MIN_REPLICAS_ACK, each replica's lag, how many sentinels see
the primary against their quorum, the failover epoch and the last failover.
"""

from __future__ import annotations

from ops.monitoring.checks import Check, Thresholds, ago
from ops.monitoring.sources import Sources
from worker.core.replication import MIN_REPLICAS_VAR, ReplicationState
from worker.wiring import replication_state

# A replica whose last acknowledgement is older than this is falling behind (replicas
# acknowledge every second; Redis's own min-replicas-max-lag defaults to 10 s).
REPLICA_LAG_WARN_S = 10.0


def replication_detail(state: ReplicationState, required: int, now: float) -> str:
    """One line: replicas online, lag, and the sentinels' view when there are sentinels."""
    view = state.primary
    parts: list[str] = []
    if view is not None:
        where = f"primary {state.primary_address}: " if state.primary_address else ""
        parts.append(
            f"{where}{view.online} replica(s) online, {required} required, lag at most "
            f"{view.max_lag_bytes} B / {view.max_lag_s:g} s"
        )
    if state.sentinels:
        failover = state.last_failover_at(now)
        last = "never failed over" if failover is None else f"last failover {ago(now - failover)}"
        parts.append(
            f"{state.seeing_primary} of {len(state.sentinels)} sentinels see it (quorum "
            f"{state.quorum}), epoch {state.epoch}, {last}"
        )
    return "; ".join(parts)


def judge_replication(state: ReplicationState, *, required: int, now: float) -> Check:
    """The verdict on `state` with `required` replicas (JETTI_RELAY_MIN_REPLICAS_ACK)."""
    view = state.primary
    detail = replication_detail(state, required, now)
    online = None if view is None else view.online
    if state.sentinels and not state.answering:
        errors = sorted({s.error for s in state.sentinels})
        return Check(
            "replication", "fail", f"no sentinel answered about the master ({', '.join(errors)})"
        )
    if view is None:
        return Check("replication", "warn", "the primary refused INFO replication: unknown")
    if view.role != "master":
        return Check(
            "replication",
            "fail",
            f"the relay's Redis is a {view.role}, not the primary: writes are refused; {detail}",
        )
    if view.online < required:
        return Check(
            "replication",
            "fail",
            f"{detail}: fewer than {MIN_REPLICAS_VAR}, so acceptance answers 'replication "
            "unconfirmed'",
            online,
        )
    if state.sentinels and state.seeing_primary < state.quorum:
        return Check(
            "replication",
            "fail",
            f"{detail}: below the quorum, a failover cannot be authorised",
            online,
        )
    if len(state.answering) < len(state.sentinels):
        silent = [s.address for s in state.sentinels if s.error]
        return Check("replication", "warn", f"{detail}; not answering: {silent}", online)
    if view.max_lag_s > REPLICA_LAG_WARN_S:
        return Check("replication", "warn", f"{detail}: a replica is falling behind", online)
    if not state.sentinels and not required and not view.replicas:
        return Check("replication", "ok", "single Redis, no replicas required", 0)
    return Check("replication", "ok", detail, online)


def check_replication(src: Sources, limits: Thresholds, now: float) -> Check:
    """Fail when the relay writes to a replica, when fewer replicas are online than
    JETTI_RELAY_MIN_REPLICAS_ACK, or when no sentinel answers or fewer than their quorum see
    the primary; warn on a silent sentinel or a replica lagging over REPLICA_LAG_WARN_S."""
    settings = src.stores.settings
    state = replication_state(settings, src.client)
    return judge_replication(state, required=settings.min_replicas_ack, now=now)
