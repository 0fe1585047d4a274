"""The metric families: one function `(Sources, now) -> list[Metric]` per figure, in `FAMILIES`.

`ops.monitoring.metrics.RelayCollector` calls every family on each scrape; a new figure (the
reconciler's, say) is one more function appended to `FAMILIES` (a part's own group of figures
may live in a module of its own: `intake_families`). Each reads Redis through the adapters'
index reads (ZCARD, ZRANGE 0 0, HGETALL of small hashes, XLEN), never a key scan.
"""

from __future__ import annotations

import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ops.monitoring.intake_families import intake
from ops.monitoring.naming import FamilyFn, age_s, metric_name
from ops.monitoring.replication_families import replication
from ops.monitoring.sources import SETTLED_STATES, BrokerUnreachable, Sources
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.redisconn import VERDICTS, server_facts
from worker.store.ledger import RecordOutcome
from worker.store.reconcile_state import read_status as read_reconcile_status
from worker.store.stats import NO_OUTCOME_FIELD, UNKNOWN_ORDER_FIELD

log = structlog.get_logger("jetti_relay.metrics")

# Periodic roles that write heartbeats (worker/pipeline/maintenance.py).
MAINTENANCE_ROLES: tuple[str, ...] = ("pump", "sweeper")
# Every state the breaker can be in (worker/store/breaker.py), exported one-hot.
BREAKER_STATES: tuple[str, ...] = ("closed", "open", "half_open", "paused")


# --- the ledger -----------------------------------------------------------------------------
def orders_by_state(src: Sources, now: float) -> list[Metric]:
    """Orders in the ledger per state (ZCARD of each state index)."""
    family = GaugeMetricFamily(
        metric_name("orders"), "Orders in the ledger by state.", labels=["state"]
    )
    for state, count in src.ledger.state_counts().items():
        family.add_metric([str(state)], count)
    return [family]


def queue_depth(src: Sources, now: float) -> list[Metric]:
    """Orders a worker could take now (pending) and the broker's own count of messages.

    The unacked figure exists on a Redis broker only (kombu's unacked hash); RabbitMQ tells it
    through its management plugin alone, so on amqp the family is absent, and the consumers
    attached to the queue are reported instead. A RabbitMQ that does not answer sets
    `broker_up` 0 and leaves the broker's figures out; the ledger's are still reported."""
    pending = src.client.zcard(src.keys.state_index(OrderState.PENDING))
    depth = GaugeMetricFamily(
        metric_name("queue_depth"), "Orders waiting for a worker (state pending).", value=pending
    )
    up_help = "1 when the Celery broker answered this scrape."
    try:
        counts = src.broker.depth()
    except BrokerUnreachable as exc:
        log.warning("metrics_broker_unreachable", detail=str(exc))
        return [depth, GaugeMetricFamily(metric_name("broker_up"), up_help, value=0)]
    families: list[Metric] = [
        depth,
        GaugeMetricFamily(metric_name("broker_up"), up_help, value=1),
    ]
    messages = GaugeMetricFamily(
        metric_name("celery_queue_messages"),
        "Messages ready in the Celery queue (Redis: LLEN of the broker list; RabbitMQ: ready "
        "messages); each carries several keys.",
        labels=["queue"],
    )
    messages.add_metric([src.queue], counts.ready)
    families.append(messages)
    if counts.unacked is not None:
        families.append(
            GaugeMetricFamily(
                metric_name("celery_unacked_messages"),
                "Messages delivered to a worker and not yet acknowledged (kombu's unacked hash; "
                "absent with RabbitMQ).",
                value=counts.unacked,
            )
        )
    if counts.consumers is not None:
        consumers = GaugeMetricFamily(
            metric_name("celery_queue_consumers"),
            "Consumers attached to the Celery queue (RabbitMQ only): one per running worker.",
            labels=["queue"],
        )
        consumers.add_metric([src.queue], counts.consumers)
        families.append(consumers)
    return families


def oldest_waiting(src: Sources, now: float) -> list[Metric]:
    """Age of the unsettled order whose latest version was enqueued longest ago."""
    oldest = src.ledger.oldest_enqueued()
    return [
        GaugeMetricFamily(
            metric_name("oldest_waiting_order_age_seconds"),
            "Seconds since the oldest unsettled order (pending, submitting, retry_wait) was "
            "enqueued; 0 when none waits.",
            value=age_s(now, oldest[1] if oldest else None),
        )
    ]


def retries(src: Sources, now: float) -> list[Metric]:
    """Orders in the retry schedule, and those already due (the pump should take them)."""
    pipe = src.client.pipeline(transaction=False)
    pipe.zcard(src.keys.retry_schedule())
    pipe.zcount(src.keys.retry_schedule(), "-inf", repr(now))
    scheduled, due = pipe.execute()
    return [
        GaugeMetricFamily(
            metric_name("retries_scheduled"),
            "Orders waiting in the retry schedule.",
            value=int(scheduled),
        ),
        GaugeMetricFamily(
            metric_name("retries_due"),
            "Scheduled retries already due (stays high only if the pump is not running).",
            value=int(due),
        ),
    ]


def last_settled(src: Sources, now: float) -> list[Metric]:
    """When the fleet last settled an order (newest entry of any settled state index)."""
    pipe = src.client.pipeline(transaction=False)
    for state in SETTLED_STATES:
        pipe.zrevrange(src.keys.state_index(state), 0, 0, withscores=True)
    newest = [float(rows[0][1]) for rows in pipe.execute() if rows]
    return [
        GaugeMetricFamily(
            metric_name("last_settled_timestamp_seconds"),
            "Epoch seconds when an order last reached submitted, confirmed, cancelled or dead; "
            "0 if never.",
            value=max(newest, default=0.0),
        )
    ]


# --- outcomes -------------------------------------------------------------------------------
def submissions(src: Sources, now: float) -> list[Metric]:
    """Submission attempts by outcome and HTTP status, fleet-wide, since the counters began."""
    family = CounterMetricFamily(
        metric_name("submissions"),
        "Submission attempts to Jetti by outcome (accepted, retry, unknown, rejected, "
        "rate_limited, config_error) and HTTP status ('none' without an answer).",
        labels=["outcome", "status"],
    )
    for (outcome, status), count in sorted(src.stats.submissions().items()):
        family.add_metric([outcome, status], count)
    return [family]


def latency(src: Sources, now: float) -> list[Metric]:
    """End-to-end latency from enqueue to Jetti's acceptance."""
    buckets, count, total = src.stats.latency_histogram()
    rows = [("+Inf" if le == float("inf") else repr(le), n) for le, n in buckets]
    # Keep +Inf equal to the count even if a bucket increment was lost mid-pipeline.
    rows[-1] = ("+Inf", max(rows[-1][1], count))
    return [
        HistogramMetricFamily(
            metric_name("end_to_end_latency_seconds"),
            "Seconds from the latest version's enqueue to Jetti accepting it.",
            buckets=rows,
            sum_value=total,
        )
    ]


# --- dead letters ---------------------------------------------------------------------------
def dead_letters(src: Sources, now: float) -> list[Metric]:
    """Dead letters waiting for an engineer by reason, entries by status, oldest age."""
    stats = src.dead.stats()
    waiting = GaugeMetricFamily(
        metric_name("dead_letters"),
        "Dead-letter entries still in status dead (waiting for an engineer), by reason.",
        labels=["reason"],
    )
    for reason in DeadReason:
        waiting.add_metric([str(reason)], stats.dead_by_reason.get(reason, 0))
    entries = GaugeMetricFamily(
        metric_name("dead_letter_entries"),
        "Dead-letter entries by status (dead, replayed, resolved); only purge deletes.",
        labels=["status"],
    )
    for status in DeadStatus:
        entries.add_metric([str(status)], stats.by_status.get(status, 0))
    oldest = GaugeMetricFamily(
        metric_name("dead_letters_oldest_age_seconds"),
        "Seconds since the oldest entry still in status dead was dead-lettered; 0 when none.",
        value=age_s(now, stats.oldest_dead_at),
    )
    return [waiting, entries, oldest]


def dead_lettered(src: Sources, now: float) -> list[Metric]:
    """Dead-lettering events by reason since the counters began (rate() shows growth)."""
    family = CounterMetricFamily(
        metric_name("dead_lettered"),
        "Orders dead-lettered, by reason (a replayed order that fails again counts again).",
        labels=["reason"],
    )
    counts = src.stats.dead_counts()
    for reason in DeadReason:
        family.add_metric([str(reason)], counts.get(str(reason), 0))
    return [family]


def recorded(src: Sources, now: float) -> list[Metric]:
    """Copies the producers recorded, by ledger outcome; stale and after_cancel were not sent."""
    family = CounterMetricFamily(
        metric_name("recorded"),
        "Order copies recorded by producers, by outcome (stale: older than the stored version; "
        "after_cancel: not a cancellation, after one; neither is sent).",
        labels=["outcome"],
    )
    counts = src.stats.record_counts()
    for outcome in RecordOutcome:
        family.add_metric([str(outcome)], counts.get(str(outcome), 0))
    return [family]


def message_keys_dropped(src: Sources, now: float) -> list[Metric]:
    """Message entries a worker dropped as not an order key (too long, not a string)."""
    return [
        CounterMetricFamily(
            metric_name("message_keys_dropped"),
            "Message entries dropped by a worker as not an order key; the message's other orders "
            "went on (a producer ignoring worker.core.limits).",
            value=src.stats.dropped_keys(),
        )
    ]


def jetti_surprises(src: Sources, now: float) -> list[Metric]:
    """Answers from Jetti against an undocumented assumption (worker.store.stats.ASSUMPTIONS)."""
    family = CounterMetricFamily(
        metric_name("jetti_assumption_violations"),
        "Jetti answers that contradict an assumption about undocumented behaviour, by "
        "assumption (docs/reconciler.md: Assumptions about undocumented Jetti behaviour).",
        labels=["assumption"],
    )
    for name, count in sorted(src.stats.surprises().items()):
        family.add_metric([name], count)
    return [family]


def throttle_block(src: Sources, now: float) -> list[Metric]:
    """Seconds left of each 429 block (the fleet limiter's and the sync API's read/write)."""
    family = GaugeMetricFamily(
        metric_name("rate_limit_block_seconds"),
        "Seconds until the 429 block of this bucket ends; 0 when none is in force.",
        labels=["bucket"],
    )
    names = {
        "fleet": src.keys.blocked_until(),
        "api_read": src.keys.api_blocked_until("read"),
        "api_write": src.keys.api_blocked_until("write"),
    }
    for name, raw in zip(names, src.client.mget(list(names.values())), strict=True):
        family.add_metric([name], 0.0 if raw is None else max(0.0, float(raw) - now))
    return [family]


def pipeline_faults(src: Sources, now: float) -> list[Metric]:
    """Messages for orders the ledger does not hold, and deliveries without an outcome."""
    counts = src.stats.fault_counts()
    unknown = CounterMetricFamily(
        metric_name("orders_unknown"),
        "Messages naming an order key with no ledger entry (a ledger write lost in a failover).",
        value=counts[UNKNOWN_ORDER_FIELD],
    )
    no_outcome = CounterMetricFamily(
        metric_name("deliveries_without_outcome"),
        "Deliveries that ended without a recorded outcome (exception, soft time limit, failed "
        "dead-letter write); each is a strike toward the crash-loop bound (worker_lost).",
        value=counts[NO_OUTCOME_FIELD],
    )
    return [unknown, no_outcome]


# --- fleet controls -------------------------------------------------------------------------
def breaker(src: Sources, now: float) -> list[Metric]:
    """The fleet circuit breaker, one-hot by state, and how long it has been in it."""
    state = src.breaker.state()
    family = GaugeMetricFamily(
        metric_name("breaker_state"),
        "1 for the fleet circuit breaker's current state (closed, open, half_open, paused).",
        labels=["state"],
    )
    for name in BREAKER_STATES:
        family.add_metric([name], 1.0 if state.state == name else 0.0)
    since = GaugeMetricFamily(
        metric_name("breaker_state_age_seconds"),
        "Seconds the breaker has been in its current state; 0 if it never changed.",
        value=age_s(now, state.since),
    )
    return [family, since]


def maintenance(src: Sources, now: float) -> list[Metric]:
    """Last run of the pump and the sweeper (any holder: only the leader runs)."""
    pipe = src.client.pipeline(transaction=False)
    for role in MAINTENANCE_ROLES:
        pipe.hvals(src.keys.heartbeat(role))
    stamp = GaugeMetricFamily(
        metric_name("maintenance_last_run_timestamp_seconds"),
        "Epoch seconds of the last pump / sweeper pass; 0 if it never ran.",
        labels=["role"],
    )
    age = GaugeMetricFamily(
        metric_name("maintenance_last_run_age_seconds"),
        "Seconds since the last pump / sweeper pass; +Inf if it never ran.",
        labels=["role"],
    )
    for role, values in zip(MAINTENANCE_ROLES, pipe.execute(), strict=True):
        last = max((float(v) for v in values), default=None)
        stamp.add_metric([role], last or 0.0)
        age.add_metric([role], float("inf") if last is None else max(0.0, now - last))
    return [stamp, age]


def reconciler(src: Sources, now: float) -> list[Metric]:
    """The reconciler's figures (worker/pipeline/reconciler.py): last run, checkpoint lag,
    counts."""
    status = read_reconcile_status(src.client, src.keys)
    last = GaugeMetricFamily(
        metric_name("reconciler_last_success_timestamp_seconds"),
        "Epoch seconds of the reconciler's last complete run; 0 if it never ran.",
        value=status.last_ok_at or 0.0,
    )
    lag = status.lag_s(now)
    behind = GaugeMetricFamily(
        metric_name("reconciler_checkpoint_lag_seconds"),
        "Seconds between now and the end of the import-log window last read; +Inf if never.",
        value=float("inf") if lag is None else lag,
    )
    outcomes = CounterMetricFamily(
        metric_name("reconciler_orders"),
        "Orders the reconciler settled, by outcome (confirmed, rejected, repaired, "
        "stale_errors: errors about a superseded payload, ignored).",
        labels=["outcome"],
    )
    for name in ("confirmed", "rejected", "repaired", "stale_errors"):
        outcomes.add_metric([name], status.counts.get(name, 0))
    reads = CounterMetricFamily(
        metric_name("reconciler_requests"),
        "Sync-API reads the reconciler made (import-log pages and sale lookups).",
        value=status.counts.get("requests", 0),
    )
    failed = CounterMetricFamily(
        metric_name("reconciler_failed_runs"),
        "Reconciler runs that could not finish (Jetti unreachable or throttling).",
        value=status.counts.get("failed_runs", 0),
    )
    return [last, behind, outcomes, reads, failed]


# --- the Redis server -----------------------------------------------------------------------
def redis_server(src: Sources, now: float) -> list[Metric]:
    """Redis memory used and its limit, bytes per ledger entry, and the durability verdict."""
    facts = server_facts(src.client)
    orders = sum(src.ledger.state_counts().values())
    used = facts.used_memory_bytes or 0
    verdict = GaugeMetricFamily(
        metric_name("redis_config"),
        "1 for the verdict on Redis persistence, eviction policy and maxmemory: ok, degraded "
        "(a known problem: see `jetti-relay health`), unknown (CONFIG refused).",
        labels=["verdict"],
    )
    for name in VERDICTS:
        verdict.add_metric([name], 1.0 if facts.verdict == name else 0.0)
    return [
        GaugeMetricFamily(
            metric_name("redis_memory_used_bytes"),
            "Redis used_memory (INFO memory), the whole server.",
            value=used,
        ),
        GaugeMetricFamily(
            metric_name("redis_memory_max_bytes"),
            "Redis maxmemory; 0 when unlimited (or unknown).",
            value=facts.maxmemory_bytes or 0,
        ),
        GaugeMetricFamily(
            metric_name("redis_bytes_per_order"),
            "Redis used_memory divided by the orders in the ledger (the state "
            "indexes); 0 with no orders. Dead letters, queue and tombstones "
            "included.",
            value=used / orders if orders else 0.0,
        ),
        verdict,
    ]


# The families every scrape exports, in this order. Append new ones here.
FAMILIES: tuple[FamilyFn, ...] = (
    orders_by_state,
    queue_depth,
    oldest_waiting,
    retries,
    last_settled,
    submissions,
    latency,
    dead_letters,
    dead_lettered,
    recorded,
    message_keys_dropped,
    pipeline_faults,
    breaker,
    maintenance,
    reconciler,
    redis_server,
    jetti_surprises,
    throttle_block,
    intake,
    replication,
)
