"""The relay's alert rules: each one reads the monitoring sources and says whether it holds.

The readings are the ones `jetti-relay health` and the metrics use (ops/monitoring): the breaker
hash, the ledger's enqueued index, the per-minute counters, the reconciler's stored status and
the broker ping. Redis errors propagate: a pass that cannot read changes no alert.

- breaker_open        (critical) the fleet breaker is open or half-open (Jetti refused the
                      credentials or the channel). An operator's pause is excluded: the operator
                      knows, and the Prometheus rule JettiRelayPausedTooLong covers a forgotten one.
- dead_letters_rising (warning)  dead letters in the last 60 minutes >= alert_dead_letters_per_hour.
- oldest_pending      (warning)  the oldest unsettled order was enqueued more than
                      alert_oldest_pending_s ago (retries included).
- reconciler_lag      (warning)  the reconciler's read of Jetti's import log lags more than
                      alert_reconciler_lag_s; never holds while the reconciler is off.
- no_live_worker      (critical) no Celery worker answers a broker ping (health's `workers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ops.monitoring.checks import Thresholds, ago, check_reconciler, make_worker_check
from ops.monitoring.sources import Sources
from worker.store.minute_stats import MinuteStats

# Dead letters are counted over this many minutes of per-minute counters.
DEAD_LETTER_WINDOW_MIN = 60


@dataclass(frozen=True)
class Reading:
    """One alert's verdict at one pass: does it hold, the figure judged and its threshold."""

    name: str
    holds: bool
    value: float | None
    threshold: float
    severity: str
    summary: str


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds (from Settings: alert_*), whether the reconciler runs, the ping's wait (s)."""

    dead_letters_per_hour: int
    oldest_pending_s: float
    reconciler_lag_s: float
    reconciler_on: bool
    ping_timeout_s: float


Ping = Callable[[float], list[str]]


def breaker_open(src: Sources, cfg: RuleConfig, now: float) -> Reading:
    state = src.breaker.state()
    holds = state.state in ("open", "half_open")
    open_s = None if state.since is None else round(max(0.0, now - state.since), 3)
    if holds:
        status = "" if state.status is None else f", Jetti status {state.status}"
        summary = (
            f"Submission to Jetti stopped: breaker {state.state} "
            f"({state.reason or 'no reason'}{status}); orders wait. "
            "Fix the credentials or channel, then `jetti-relay resume`."
        )
    else:
        summary = f"Breaker {state.state}: submission to Jetti is not held by a failure."
    return Reading("breaker_open", holds, open_s if holds else None, 0.0, "critical", summary)


def dead_letters_rising(src: Sources, cfg: RuleConfig, now: float) -> Reading:
    minutes = MinuteStats(src.client, src.keys).last(DEAD_LETTER_WINDOW_MIN, now=now)
    dead = sum(m.dead for m in minutes)
    limit = cfg.dead_letters_per_hour
    summary = (
        f"{dead} orders dead-lettered in the last hour (alert at {limit}). "
        "`jetti-relay dlq list --since 1h`."
    )
    return Reading("dead_letters_rising", dead >= limit, dead, limit, "warning", summary)


def oldest_pending(src: Sources, cfg: RuleConfig, now: float) -> Reading:
    oldest = src.ledger.oldest_enqueued()
    limit = cfg.oldest_pending_s
    if oldest is None:
        return Reading("oldest_pending", False, 0.0, limit, "warning", "No unsettled order.")
    key, enqueued_at = oldest
    age_s = round(max(0.0, now - enqueued_at), 3)
    summary = (
        f"The oldest unsettled order {key!r} was enqueued {ago(age_s)} (alert after "
        f"{limit:g} s). `jetti-relay order show {key}` tells why."
    )
    return Reading("oldest_pending", age_s > limit, age_s, limit, "warning", summary)


def reconciler_lag(src: Sources, cfg: RuleConfig, now: float) -> Reading:
    limit = cfg.reconciler_lag_s
    if not cfg.reconciler_on:
        return Reading("reconciler_lag", False, None, limit, "warning", "The reconciler is off.")
    lag = check_reconciler(src, Thresholds(), now).value
    if lag is None:
        return Reading(
            "reconciler_lag", False, None, limit, "warning", "The reconciler has not run yet."
        )
    summary = (
        f"The reconciler's read of Jetti's import log lags {lag:.0f} s (alert after "
        f"{limit:g} s). `jetti-relay reconcile status`."
    )
    return Reading("reconciler_lag", lag > limit, lag, limit, "warning", summary)


def make_no_live_worker(ping: Ping) -> Callable[[Sources, RuleConfig, float], Reading]:
    """The no_live_worker rule around `ping(timeout_s) -> node names that answered`."""
    check_workers = make_worker_check(ping)

    def no_live_worker(src: Sources, cfg: RuleConfig, now: float) -> Reading:
        check = check_workers(
            src, Thresholds(min_workers=1, ping_timeout_s=cfg.ping_timeout_s), now
        )
        holds = check.status == "fail"
        summary = (
            f"No Celery worker answers: {check.detail}. Orders are not taken."
            if holds
            else f"Workers answer: {check.detail}."
        )
        return Reading("no_live_worker", holds, check.value, 1.0, "critical", summary)

    return no_live_worker


Rule = Callable[[Sources, RuleConfig, float], Reading]


def all_rules(ping: Ping) -> list[Rule]:
    """One rule per alert of worker.store.alerts.ALERT_NAMES, in that order."""
    rules: list[Rule] = [
        breaker_open,
        dead_letters_rising,
        oldest_pending,
        reconciler_lag,
        make_no_live_worker(ping),
    ]
    return rules


def read_all(src: Sources, cfg: RuleConfig, rules: list[Rule], now: float) -> list[Reading]:
    """Every rule's reading at `now`; raises what the reads raise (redis errors)."""
    return [rule(src, cfg, now) for rule in rules]
