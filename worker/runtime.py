"""The composition root of the worker's processes: the services, built from Settings over the
adapters of `worker.wiring`, once per process (after the fork).

`worker.runtime` and `worker.wiring` are the only modules that map Settings onto constructors,
and the only ones that know which concrete adapter serves which port of `worker.pipeline.ports`.
Tests build a `Runtime` from explicit Settings; the Celery worker uses `get_runtime()`; the
`worker` and `pump` commands run `build_maintenance`, `reconcile run` runs `build_reconciler`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import structlog
from celery.exceptions import SoftTimeLimitExceeded

from worker import tracing, wiring
from worker.core.build import build_payload
from worker.core.errors import InvalidOrder, TransformError
from worker.core.keys import Keys
from worker.core.reconcile_rules import DEFAULT_TOLERANCE_S
from worker.core.records import Attempt
from worker.core.rules import Rules
from worker.core.states import DeadReason, OrderState
from worker.core.transform import Built
from worker.jetti.client import IMPORT_PAGE_LIMIT, JettiClient
from worker.pipeline.canceller import CancelConfig, Canceller
from worker.pipeline.job_runner import JobRunner, JobRunnerConfig
from worker.pipeline.maintenance import Maintenance, MaintenanceConfig
from worker.pipeline.processor import OrderProcessor, ProcessorConfig
from worker.pipeline.reconciler import Rebuild, ReconcileConfig, Reconciler
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.store.audit import AuditLog
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.heartbeats import Heartbeats
from worker.store.jobs import JobStore
from worker.store.leases import Leader, OrderLock
from worker.store.ledger import Ledger
from worker.store.rate_limit import RateLimiter
from worker.store.reconcile_state import ReconcileState
from worker.store.stats import Stats

log = structlog.get_logger("jetti_relay.runtime")

# When another worker holds an order's lock, the order comes back this much later (no attempt
# spent): long enough for the holder to finish a normal delivery.
LOCK_BUSY_RETRY_S = 2.0
# A job's lease lasts this many pump intervals (renewed between chunks), as the pump's role does.
JOB_LEASE_TICKS = 5


def worker_id() -> str:
    """host:pid, the name recorded on attempts and deliveries."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    """Every adapter one process needs, built from one Settings."""

    settings: Settings
    redis: redis.Redis[bytes]
    keys: Keys
    ledger: Ledger
    dead_letters: DeadLetters
    lock: OrderLock
    leader: Leader
    limiter: RateLimiter
    breaker: Breaker
    stats: Stats
    publisher: Publisher
    jetti: JettiClient
    processor: OrderProcessor

    def close(self) -> None:
        """Release what the process holds: the submit threads, the Jetti HTTP client, Redis."""
        self.processor.close()
        self.jetti.close()
        self.redis.close()

    def dead_letter_message(self, message: Any, error: str, *, task_id: str) -> None:
        """Dead-letter a message that does not parse, under `message:<digest>` (invalid_input)."""
        body = orjson.dumps(message, default=repr)
        key = "message:" + hashlib.sha256(body).hexdigest()[:16]
        now = time.time()
        self.dead_letters.put(
            key,
            reason=DeadReason.INVALID_INPUT,
            raw=body,
            payload=None,
            attempts=[
                Attempt(
                    at=now,
                    status=None,
                    error_class="InvalidMessage",
                    excerpt=error[:500],
                    worker=worker_id(),
                    outcome="dead",
                )
            ],
            source=None,
            error=f"invalid message (task {task_id}): {error}",
            now=now,
        )
        self.stats.count_dead(DeadReason.INVALID_INPUT)
        log.warning("message_dead_lettered", task_id=task_id, error=error, dead_key=key)


def build_runtime(settings: Settings) -> Runtime:
    """Build every adapter from `settings` (the pump's and sweeper's parts plus the rest)."""
    parts = build_maintenance_parts(settings)
    client, keys, ledger = parts.redis, parts.keys, parts.ledger
    leader, publisher = parts.leader, parts.publisher
    dead_letters = DeadLetters(client, keys)
    lock = OrderLock(client, keys)
    limiter = wiring.limiter(client, keys, settings)
    breaker = wiring.breaker(client, keys, settings)
    stats = Stats(client, keys)
    jetti = wiring.build_jetti_client(settings, wiring.build_http_client(settings))
    rules = wiring.rules(settings)
    config = ProcessorConfig(
        worker_id=worker_id(),
        lock_ttl_s=settings.lock_ttl_s,
        lock_busy_retry_s=LOCK_BUSY_RETRY_S,
        max_unfinished_deliveries=settings.max_unfinished_deliveries,
        max_token_wait_s=settings.max_token_wait_s,
        breaker_probe_s=settings.breaker_probe_s,
        allow_line_changes=settings.allow_line_changes,
        retry=wiring.retry_policy(settings),
        build=wiring.build_options(settings),
        submit_concurrency=settings.submit_concurrency,
        fill_to=settings.batch_size,
        failover_retry_s=settings.failover_retry_s,
    )
    processor = OrderProcessor(
        config=config,
        ledger=ledger,
        dead_letters=dead_letters,
        lock=lock,
        limiter=limiter,
        breaker=breaker,
        jetti=jetti,
        publisher=publisher,
        rules=rules,
        stats=stats,
        executor=ThreadPoolExecutor(
            max_workers=settings.submit_concurrency, thread_name_prefix="submit"
        ),
        canceller=build_canceller(
            settings,
            client=client,
            keys=keys,
            ledger=ledger,
            worker_id=config.worker_id,
            jetti=jetti,
            limiter=limiter,
            breaker=breaker,
            dead_letters=dead_letters,
            publisher=publisher,
            stats=stats,
        ),
        stop_exceptions=(SoftTimeLimitExceeded,),  # Celery's soft time limit ends the batch
        tracer=tracing.process_tracer(settings.otlp_endpoint, instance_id=config.worker_id),
    )
    return Runtime(
        settings=settings,
        redis=client,
        keys=keys,
        ledger=ledger,
        dead_letters=dead_letters,
        lock=lock,
        leader=leader,
        limiter=limiter,
        breaker=breaker,
        stats=stats,
        publisher=publisher,
        jetti=jetti,
        processor=processor,
    )


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This process's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime


def reset() -> None:
    """Forget this process's runtime (called in each prefork child after the fork)."""
    global _runtime
    with _runtime_lock:
        _runtime = None


@dataclass
class MaintenanceParts:
    """What the pump, the sweeper and the reconciler share (no HTTP client, no processor)."""

    settings: Settings
    holder: str
    ledger: Ledger
    leader: Leader
    publisher: Publisher
    redis: redis.Redis[bytes]
    keys: Keys
    heartbeats: Heartbeats

    def heartbeat(self, role: str, now: float) -> None:
        """Record that `role` ran on this holder at `now` (read by `health`)."""
        self.heartbeats.beat(role, now)


def build_maintenance_parts(settings: Settings | None = None) -> MaintenanceParts:
    """The pump's and sweeper's adapters from `settings` (default: the environment)."""
    settings = settings or get_settings()
    client = wiring.redis_client(settings)
    keys = wiring.keys(settings)
    holder = worker_id()
    return MaintenanceParts(
        settings=settings,
        holder=holder,
        ledger=wiring.ledger(client, keys, settings),
        leader=Leader(client, keys),
        publisher=wiring.publisher(settings),
        redis=client,
        keys=keys,
        heartbeats=wiring.heartbeats(client, keys, holder=holder),
    )


def build_maintenance(parts: MaintenanceParts) -> Maintenance:
    """The pump and the sweeper of a maintenance process, with the reconciler when it is on."""
    settings = parts.settings
    return Maintenance(
        config=MaintenanceConfig(
            holder=parts.holder,
            pump_interval_s=settings.pump_interval_s,
            sweep_interval_s=settings.sweep_interval_s,
            stuck_after_s=settings.stuck_after_s,
            hard_time_limit_s=settings.hard_time_limit_s,
        ),
        ledger=parts.ledger,
        leader=parts.leader,
        publisher=parts.publisher,
        heartbeat=parts.heartbeat,
        reconciler=build_reconciler(parts),
        queue_length=parts.publisher.queue_length,
        periodics=[("jobs", build_job_runner(parts))],
    )


def build_job_runner(parts: MaintenanceParts) -> JobRunner:
    """The bulk-job runner of a maintenance process: replays paced at
    `replay_rate_share` of the fleet's rate, a job's lease JOB_LEASE_TICKS pump intervals long
    (as the pump's own), jobs looked for every pump interval."""
    settings = parts.settings
    client, keys = parts.redis, parts.keys
    return JobRunner(
        config=JobRunnerConfig(
            holder=parts.holder,
            fleet_rate_per_s=settings.effective_rate_per_s,
            rate_share=settings.replay_rate_share,
            backlog_limit=settings.replay_backlog_limit,
            lease_ttl_s=settings.pump_interval_s * JOB_LEASE_TICKS,
            poll_interval_s=settings.pump_interval_s,
        ),
        jobs=JobStore(client, keys),
        leases=parts.leader,
        ledger=parts.ledger,
        dead_letters=DeadLetters(client, keys),
        publisher=parts.publisher,
        audit=AuditLog(client, keys),
        pending=lambda: parts.ledger.state_counts().get(OrderState.PENDING, 0),
    )


def build_reconciler(parts: MaintenanceParts) -> Reconciler | None:
    """The reconciler for a maintenance process, or None when it is off (disabled, or no API
    token to read the import log with)."""
    settings = parts.settings
    if not settings.reconcile_active:
        return None
    client, keys = parts.redis, parts.keys
    stats = Stats(client, keys)
    return Reconciler(
        config=ReconcileConfig(
            holder=parts.holder,
            interval_s=settings.reconcile_interval_s,
            grace_s=settings.reconcile_grace_s,
            # A row without a payload may precede our submission by a whole HTTP exchange.
            tolerance_s=max(DEFAULT_TOLERANCE_S, settings.http_total_s),
            # Half the run's read budget goes to sale checks, never fewer than two.
            max_sale_checks=max(
                2, int(settings.reconcile_interval_s * settings.jetti_read_rate_per_s / 2)
            ),
            page_limit=IMPORT_PAGE_LIMIT,
        ),
        state=ReconcileState(client, keys),
        ledger=parts.ledger,
        dead_letters=DeadLetters(client, keys),
        jetti=wiring.build_jetti_client(settings, wiring.build_http_client(settings)),
        throttle=wiring.api_throttle(client, keys, settings, "read"),
        publisher=parts.publisher,
        leader=parts.leader,
        rebuild=build_rebuild(settings),
        count_dead=stats.count_dead,
        count_surprise=stats.count_surprise,
    )


def build_rebuild(settings: Settings, rules: Rules | None = None) -> Rebuild:
    """Rebuilds the payload the worker would send for a raw order (None if it cannot), with
    `rules` (default: the configured rules file)."""
    rules = wiring.rules(settings) if rules is None else rules
    options = wiring.build_options(settings)

    def rebuild(order_key: str, raw: bytes) -> Built | None:
        try:
            return build_payload(raw, order_key, rules, options)
        except (InvalidOrder, TransformError):
            return None

    return rebuild


def build_canceller(
    settings: Settings,
    *,
    client: redis.Redis[bytes],
    keys: Keys,
    ledger: Ledger,
    worker_id: str,
    jetti: JettiClient,
    limiter: RateLimiter,
    breaker: Breaker,
    dead_letters: DeadLetters,
    publisher: Publisher,
    stats: Stats,
) -> Canceller:
    """The cancel path for a worker process. In sync mode cancels share the import limiter
    (one write budget per token); in async mode they take their own sync-write bucket."""
    writes: RateLimiter = limiter
    if settings.jetti_mode != "sync":
        writes = wiring.api_throttle(client, keys, settings, "write")
    return Canceller(
        config=CancelConfig(
            worker_id=worker_id,
            max_token_wait_s=settings.max_token_wait_s,
            breaker_probe_s=settings.breaker_probe_s,
            retry=wiring.retry_policy(settings),
        ),
        ledger=ledger,
        dead_letters=dead_letters,
        jetti=jetti,
        writes=writes,
        reads=wiring.api_throttle(client, keys, settings, "read"),
        breaker=breaker,
        publisher=publisher,
        stats=stats,
    )
