"""The `intake` health check: is the Redis Stream intake reading what upstream appends?

In a module of its own (checks.py holds the pipeline's checks); `jetti-relay health` adds it to
the others. It reads `IntakeStatus` (ids and counts, never an entry's body).
"""

from __future__ import annotations

from ops.monitoring.checks import Check, Thresholds, ago
from ops.monitoring.sources import Sources

# Rejects stream this full (of JETTI_RELAY_INTAKE_REJECTS_MAX): the oldest will soon be dropped.
REJECTS_WARN_RATIO = 0.9
# A reject newer than this is news: upstream sent something the contract refuses.
RECENT_REJECT_S = 900.0


def check_intake(src: Sources, limits: Thresholds, now: float) -> Check:
    """Fail when an entry waited unread or unacknowledged longer than `max_intake_age_s`; warn
    on a reject within RECENT_REJECT_S or rejects near their cap; ok otherwise (no stream
    included: nothing was sent that way)."""
    status = src.intake.status()
    if not (status.length or status.rejects or status.has_group):
        return Check("intake", "ok", "no intake stream: nothing sent with XADD yet", 0)
    detail = (
        f"{status.length} in the stream, {status.lag} unread, {status.pending} pending, "
        f"{status.rejects} rejected"
    )
    waiting = [t for t in (status.oldest_unread_at, status.oldest_pending_at) if t is not None]
    age = max(0.0, now - min(waiting)) if waiting else 0.0
    if age > limits.max_intake_age_s:
        hint = "" if status.has_group else "; no intake ever read it: run jetti-relay intake"
        return Check(
            "intake",
            "fail",
            f"{detail}; the oldest waiting entry was added {ago(age)}, limit "
            f"{limits.max_intake_age_s:g} s{hint}",
            round(age, 3),
        )
    cap = src.intake_rejects_max
    rejects = src.keys.intake_rejects()
    if status.rejects >= REJECTS_WARN_RATIO * cap:
        return Check(
            "intake",
            "warn",
            f"{detail}; the rejects stream is near its cap of {cap}: read it with "
            f"XRANGE {rejects} - +",
            status.rejects,
        )
    if status.newest_reject_at is not None and now - status.newest_reject_at <= RECENT_REJECT_S:
        return Check(
            "intake",
            "warn",
            f"{detail}; newest reject {ago(now - status.newest_reject_at)}: "
            f"XREVRANGE {rejects} + - COUNT 10",
            status.rejects,
        )
    return Check("intake", "ok", detail, status.lag)
