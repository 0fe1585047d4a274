"""The health checks behind `jetti-relay health`: is the fleet doing its job?

Each check is a function of `Sources` (Redis reads), `Thresholds` and the time, and answers ok,
warn, fail or skip; any fail makes the whole answer unhealthy:

- redis        the ledger's Redis answers PING (within JETTI_RELAY_REDIS_*_TIMEOUT_S) and is
               no older than the oldest supported (worker/core/limits.py MIN_REDIS_VERSION).
- workers      at least `--min-workers` Celery workers answer a broker ping (alive).
- progress     workers are consuming, not only alive: nothing is ready to submit, or the oldest
               ready order arrived less than `--max-stall-s` ago, or an order was settled or
               rescheduled within `--max-stall-s` (from the ledger's state indexes, no scan).
- pump         the retry pump's heartbeat is at most `--max-pump-age-s` old.
- sweeper      the sweeper's heartbeat is at most `--max-sweeper-age-s` old.
- breaker      the fleet circuit breaker is closed (open, half-open or paused: orders wait).
- throttle     no 429 block (the fleet limiter's, or the sync API's read/write) lasts longer
               than `--max-block-s` from now (a Retry-After pausing the fleet); warn on any block.
- backlog      the oldest waiting order is younger than `--max-oldest-waiting-s` and at most
               `--max-backlog` orders are unsettled.
- dead_letters warn while any entry waits for an engineer; fail above `--max-dead`.
- redis_server Redis keeps what it is told: "ok", "degraded" (warn: no persistence, or no
               maxmemory; fail: an eviction policy other than noeviction, which drops ledger
               entries, locks and leases) or "unknown" (warn: CONFIG refused, as on managed Redis).
- memory       Redis memory used, its limit and bytes per ledger entry; warn from
               MEMORY_WARN_RATIO of maxmemory (beyond it Redis refuses writes: producers fail).
- reconciler   (only when it is configured: an API token and RECONCILE_ENABLED) fail when no
               reconciler run finished for 3 intervals (or the grace period, if longer); warn
               before its first run or when its last run could not finish.
- intake       the Redis Stream intake keeps up: no entry unread or unacknowledged for more
               than `--max-intake-age-s`; warn on recent rejects or rejects near their cap
               (ops/monitoring/intake_checks.py).
- replication  the relay writes to a primary with at least JETTI_RELAY_MIN_REPLICAS_ACK replicas
               online, and the sentinels (when configured) see it at their quorum; warn on a
               silent sentinel or a lagging replica (ops/monitoring/replication_checks.py).

"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import redis

from ops.monitoring.sources import SETTLED_STATES, BrokerUnreachable, Sources
from worker.core.states import OrderState
from worker.redisconn import SAFE_EVICTION_POLICY, RedisTooOld, require_supported, server_facts
from worker.store.reconcile_state import read_status as read_reconcile_status

# Broker ping: how long to wait for workers to answer.
DEFAULT_PING_TIMEOUT_S = 2.0
# Ready orders with nothing settled for this long means the workers are stuck.
DEFAULT_MAX_STALL_S = 300.0
# The pump runs every PUMP_INTERVAL_S (1 s); its leader lease lasts 5 intervals.
PUMP_GRACE_S = 20.0
# Missed sweeper periods tolerated before the sweeper counts as stopped.
SWEEPER_PERIODS = 3
# An order waiting longer than this (backoff included) is worth a person's look.
DEFAULT_MAX_OLDEST_WAITING_S = 900.0
# More unsettled orders than this is a backlog the fleet is not keeping up with.
DEFAULT_MAX_BACKLOG = 100_000
# Dead letters are normal in small numbers; above this they are an incident.
DEFAULT_MAX_DEAD = 100
# A 429 block with more than this left is a fleet pause, not throttling (reliability #8).
DEFAULT_MAX_BLOCK_S = 900.0
# An intake entry unread or unacknowledged this long: no intake is reading (or keeping up).
DEFAULT_MAX_INTAKE_AGE_S = 300.0

Status = Literal["ok", "warn", "fail", "skip"]
CHECK_NAMES = (
    "redis",
    "workers",
    "progress",
    "pump",
    "sweeper",
    "breaker",
    "backlog",
    "dead_letters",
    "redis_server",
    "memory",
    "reconciler",
    "throttle",
    "intake",
    "replication",
)
# Past this share of maxmemory the memory check warns (noeviction refuses writes at 100 %).
MEMORY_WARN_RATIO = 0.9


@dataclass(frozen=True)
class Check:
    """One check's verdict; `value` is the figure it judged (seconds, a count), if any."""

    name: str
    status: Status
    detail: str
    value: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """Limits for the checks (seconds and counts); see the module docstring."""

    min_workers: int = 1
    ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S
    max_stall_s: float = DEFAULT_MAX_STALL_S
    max_pump_age_s: float = PUMP_GRACE_S
    max_sweeper_age_s: float = 3 * 60.0 + 30.0
    max_oldest_waiting_s: float = DEFAULT_MAX_OLDEST_WAITING_S
    max_backlog: int = DEFAULT_MAX_BACKLOG
    max_dead: int = DEFAULT_MAX_DEAD
    max_block_s: float = DEFAULT_MAX_BLOCK_S
    max_intake_age_s: float = DEFAULT_MAX_INTAKE_AGE_S


def pump_max_age_s(pump_interval_s: float) -> float:
    """The pump's heartbeat age that counts as stopped, by default: ten of its intervals plus
    the time a new leader needs to take the lease (PUMP_GRACE_S)."""
    return 10 * pump_interval_s + PUMP_GRACE_S


def sweeper_max_age_s(sweep_interval_s: float) -> float:
    """The sweeper's heartbeat age that counts as stopped, by default: SWEEPER_PERIODS missed
    periods plus half a minute."""
    return SWEEPER_PERIODS * sweep_interval_s + 30.0


CheckFn = Callable[[Sources, Thresholds, float], Check]


def ago(seconds: float) -> str:
    """A duration in the past for people: `42 s ago`, `7 min ago`."""
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


# --- checks (each reads what it needs; Redis errors are handled by the caller) --------------
def check_redis(src: Sources, limits: Thresholds, now: float) -> Check:
    started = time.perf_counter()
    src.client.ping()
    ms = (time.perf_counter() - started) * 1000
    try:
        version = require_supported(src.client)
    except RedisTooOld as exc:
        return Check("redis", "fail", str(exc), round(ms, 3))
    shown = f"Redis {version}, " if version else ""
    return Check("redis", "ok", f"{shown}reachable, PING {ms:.1f} ms", round(ms, 3))


def make_worker_check(ping: Callable[[float], list[str]]) -> CheckFn:
    """The workers check around `ping(timeout_s) -> node names that answered`."""

    def check_workers(src: Sources, limits: Thresholds, now: float) -> Check:
        if limits.min_workers <= 0:
            return Check("workers", "skip", "--min-workers 0")
        # A dead broker would make Celery's ping retry its connection for minutes.
        try:
            src.broker.ping()
        except BrokerUnreachable as exc:
            # RabbitMQ down while Redis answers: the workers cannot be reached, the ledger's
            # checks still can (a Redis broker's errors end the run as Redis errors).
            return Check("workers", "fail", f"broker unreachable: {exc}")
        nodes = sorted(ping(limits.ping_timeout_s))
        shown = ", ".join(nodes[:5]) + (" ..." if len(nodes) > 5 else "")
        if len(nodes) < limits.min_workers:
            return Check(
                "workers",
                "fail",
                f"{len(nodes)} worker(s) answered a ping within "
                f"{limits.ping_timeout_s:g} s, need {limits.min_workers}",
                len(nodes),
            )
        return Check("workers", "ok", f"{len(nodes)} answered: {shown}", len(nodes))

    return check_workers


def check_progress(src: Sources, limits: Thresholds, now: float) -> Check:
    keys = src.keys
    pipe = src.client.pipeline(transaction=False)
    for state in (OrderState.PENDING, OrderState.SUBMITTING):
        pipe.zcard(keys.state_index(state))
        pipe.zrange(keys.state_index(state), 0, 0, withscores=True)
    # Settling or rescheduling an order both show a worker took it.
    for state in (*SETTLED_STATES, OrderState.RETRY_WAIT):
        pipe.zrevrange(keys.state_index(state), 0, 0, withscores=True)
    out = pipe.execute()
    ready = int(out[0]) + int(out[2])
    if ready == 0:
        return Check("progress", "ok", "nothing ready to submit", 0)
    oldest_ready = min(float(rows[0][1]) for rows in (out[1], out[3]) if rows)
    active = [float(rows[0][1]) for rows in out[4:] if rows]
    last_activity = max(active, default=None)
    if now - oldest_ready <= limits.max_stall_s:
        return Check(
            "progress", "ok", f"{ready} ready, oldest since {ago(now - oldest_ready)}", ready
        )
    if last_activity is not None and now - last_activity <= limits.max_stall_s:
        return Check(
            "progress",
            "ok",
            f"{ready} ready; an order was handled {ago(now - last_activity)}",
            ready,
        )
    last = "never" if last_activity is None else ago(now - last_activity)
    return Check(
        "progress",
        "fail",
        f"{ready} orders ready since {ago(now - oldest_ready)} and "
        f"none handled within {limits.max_stall_s:g} s (last: {last})",
        ready,
    )


def _heartbeat(src: Sources, role: str, max_age_s: float, now: float) -> Check:
    values = src.client.hvals(src.keys.heartbeat(role))
    last = max((float(v) for v in values), default=None)
    if last is None:
        return Check(role, "fail", f"the {role} never ran against this Redis and key prefix")
    age = max(0.0, now - last)
    if age > max_age_s:
        return Check(role, "fail", f"last pass {ago(age)}, limit {max_age_s:g} s", round(age, 3))
    return Check(role, "ok", f"last pass {ago(age)}", round(age, 3))


def check_pump(src: Sources, limits: Thresholds, now: float) -> Check:
    return _heartbeat(src, "pump", limits.max_pump_age_s, now)


def check_sweeper(src: Sources, limits: Thresholds, now: float) -> Check:
    return _heartbeat(src, "sweeper", limits.max_sweeper_age_s, now)


def check_breaker(src: Sources, limits: Thresholds, now: float) -> Check:
    state = src.breaker.state()
    if state.state == "closed":
        return Check("breaker", "ok", "closed")
    since = "" if state.since is None else f" since {ago(max(0.0, now - state.since))}"
    status = "" if state.status is None else f", Jetti status {state.status}"
    return Check(
        "breaker",
        "fail",
        f"{state.state}{since}: {state.reason or 'no reason'}{status}; "
        "orders wait (jetti-relay resume closes it)",
    )


def check_throttle(src: Sources, limits: Thresholds, now: float) -> Check:
    keys = src.keys
    names = {
        "fleet": keys.blocked_until(),
        "api_read": keys.api_blocked_until("read"),
        "api_write": keys.api_blocked_until("write"),
    }
    values = src.client.mget(list(names.values()))
    left = {
        name: float(raw) - now
        for name, raw in zip(names, values, strict=True)
        if raw is not None and float(raw) > now
    }
    if not left:
        return Check("throttle", "ok", "no 429 block in force", 0.0)
    longest = max(left.values())
    detail = ", ".join(f"{name} blocked for {s:.0f} s more" for name, s in sorted(left.items()))
    if longest > limits.max_block_s:
        return Check(
            "throttle",
            "fail",
            f"{detail}; limit {limits.max_block_s:g} s (a Retry-After pausing the fleet)",
            round(longest, 3),
        )
    return Check("throttle", "warn", detail, round(longest, 3))


def check_backlog(src: Sources, limits: Thresholds, now: float) -> Check:
    unsettled = src.client.zcard(src.keys.enqueued_index())
    oldest = src.ledger.oldest_enqueued()
    age = 0.0 if oldest is None else max(0.0, now - oldest[1])
    detail = f"{unsettled} unsettled, oldest enqueued {ago(age)}" if oldest else "empty"
    if unsettled > limits.max_backlog:
        return Check("backlog", "fail", f"{detail}; limit {limits.max_backlog}", unsettled)
    if age > limits.max_oldest_waiting_s:
        return Check(
            "backlog",
            "fail",
            f"{detail} ({oldest[0] if oldest else ''}); limit {limits.max_oldest_waiting_s:g} s",
            round(age, 3),
        )
    return Check("backlog", "ok", detail, unsettled)


def check_dead_letters(src: Sources, limits: Thresholds, now: float) -> Check:
    stats = src.dead.stats()
    waiting = sum(stats.dead_by_reason.values())
    if waiting == 0:
        return Check("dead_letters", "ok", "none waiting", 0)
    reasons = ", ".join(f"{r}={n}" for r, n in sorted(stats.dead_by_reason.items()) if n)
    oldest = "" if stats.oldest_dead_at is None else f", oldest {ago(now - stats.oldest_dead_at)}"
    detail = f"{waiting} waiting ({reasons}){oldest}; see jetti-relay dlq list"
    status: Status = "fail" if waiting > limits.max_dead else "warn"
    return Check("dead_letters", status, detail, waiting)


def _size(n: float) -> str:
    """Bytes for people: `512 B`, `2.1 KiB`, `1.0 GiB`."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def check_redis_server(src: Sources, limits: Thresholds, now: float) -> Check:
    """Persistence, eviction policy and maxmemory (worker/redisconn.py ServerFacts)."""
    facts = server_facts(src.client)
    if facts.verdict == "ok":
        return Check(
            "redis_server",
            "ok",
            f"ok: persistence on, {facts.eviction_policy}, "
            f"maxmemory {_size(facts.maxmemory_bytes or 0)}",
        )
    if facts.verdict == "unknown":
        return Check(
            "redis_server",
            "warn",
            "unknown: CONFIG refused (managed Redis?); check "
            "persistence, maxmemory and maxmemory-policy noeviction with your provider",
        )
    evicts = facts.eviction_policy not in (None, SAFE_EVICTION_POLICY)
    return Check(
        "redis_server", "fail" if evicts else "warn", "degraded: " + "; ".join(facts.problems)
    )


def check_memory(src: Sources, limits: Thresholds, now: float) -> Check:
    """Redis memory used against maxmemory, and bytes per order in the ledger."""
    facts = server_facts(src.client)
    used = facts.used_memory_bytes or 0
    orders = sum(src.ledger.state_counts().values())
    per_order = (
        f"{_size(used / orders)} per order ({orders} in the ledger)"
        if orders
        else ("no orders in the ledger")
    )
    limit = facts.maxmemory_bytes
    if not limit:
        return Check("memory", "ok", f"{_size(used)} used, no maxmemory; {per_order}", used)
    detail = f"{_size(used)} used of {_size(limit)} ({used / limit:.0%}); {per_order}"
    status: Status = "warn" if used >= MEMORY_WARN_RATIO * limit else "ok"
    return Check("memory", status, detail, used)


def check_reconciler(src: Sources, limits: Thresholds, now: float) -> Check:
    """The reconciler (worker/pipeline/reconciler.py) keeps reading Jetti's import log."""
    status = read_reconcile_status(src.client, src.keys)
    if status.last_run_at is None:
        return Check("reconciler", "warn", "has not run yet against this Redis and key prefix")
    lag = status.lag_s(now)
    if status.behind(now):
        last = "never" if status.last_ok_at is None else ago(now - status.last_ok_at)
        return Check(
            "reconciler",
            "fail",
            f"behind: last complete run {last}; {status.last_error or 'no error'}",
            None if lag is None else round(lag, 3),
        )
    detail = f"import log read up to {ago(lag or 0.0)}"
    if status.last_error:
        return Check(
            "reconciler",
            "warn",
            f"{detail}; last run: {status.last_error}",
            None if lag is None else round(lag, 3),
        )
    return Check("reconciler", "ok", detail, None if lag is None else round(lag, 3))


def run_checks(
    src: Sources, limits: Thresholds, checks: Sequence[tuple[str, CheckFn]], *, now: float
) -> list[Check]:
    """Run `checks` in order; once Redis fails, the rest are skipped (they all read it)."""
    results: list[Check] = []
    redis_down = False
    for name, fn in checks:
        if redis_down:
            results.append(Check(name, "skip", "Redis unreachable"))
            continue
        try:
            results.append(fn(src, limits, now))
        except redis.RedisError as exc:
            redis_down = True
            results.append(Check(name, "fail", f"Redis unreachable: {type(exc).__name__}: {exc}"))
    return results


# The checks that only read the relay's own keys: no broker ping, no INFO of the server (what
# the console's overview runs on every refresh).
STORE_CHECKS: tuple[tuple[str, CheckFn], ...] = (
    ("progress", check_progress),
    ("pump", check_pump),
    ("sweeper", check_sweeper),
    ("breaker", check_breaker),
    ("throttle", check_throttle),
    ("backlog", check_backlog),
    ("dead_letters", check_dead_letters),
)


def all_checks(ping: Callable[[float], list[str]]) -> list[tuple[str, CheckFn]]:
    """Every check, in the order they are reported."""
    return [
        ("redis", check_redis),
        ("workers", make_worker_check(ping)),
        *STORE_CHECKS,
        ("redis_server", check_redis_server),
        ("memory", check_memory),
    ]
