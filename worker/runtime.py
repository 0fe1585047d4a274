"""Wiring: builds the adapters from Settings, once per process (after the fork).

The only module that knows which concrete adapter serves which port. Tests build a `Runtime`
from explicit Settings; the Celery worker uses `get_runtime()`.
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

from worker.core.build import BuildOptions
from worker.core.keys import Keys
from worker.core.limits import HEARTBEAT_KEPT_S
from worker.core.policy import RetryPolicy
from worker.core.records import Attempt
from worker.core.rules import Rules, load_rules
from worker.core.states import DeadReason
from worker.jetti.client import JettiClient, build_http_client, build_jetti_client
from worker.pipeline.canceller import CancelConfig, Canceller
from worker.pipeline.processor import OrderProcessor, ProcessorConfig
from worker.publisher import Publisher
from worker.redisconn import client_for
from worker.settings import Settings, get_settings
from worker.store.api_throttle import ApiThrottle
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.leases import Leader, OrderLock
from worker.store.ledger import Ledger
from worker.store.rate_limit import RateLimiter
from worker.store.settle import SettleLedger
from worker.store.stats import Stats

log = structlog.get_logger("jetti_relay.runtime")

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

# When another worker holds an order's lock, the order comes back this much later (no attempt
# spent): long enough for the holder to finish a normal delivery.
LOCK_BUSY_RETRY_S = 2.0


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
    limiter = RateLimiter.from_settings(client, keys, settings)
    breaker = Breaker(client, keys, probe_s=settings.breaker_probe_s)
    stats = Stats(client, keys)
    jetti = build_jetti_client(settings, build_http_client(settings))
    rules = load_rules(settings.rules_file) if settings.rules_file else Rules.empty()
    config = ProcessorConfig(
        worker_id=worker_id(),
        lock_ttl_s=settings.lock_ttl_s,
        lock_busy_retry_s=LOCK_BUSY_RETRY_S,
        max_unfinished_deliveries=settings.max_unfinished_deliveries,
        max_token_wait_s=settings.max_token_wait_s,
        breaker_probe_s=settings.breaker_probe_s,
        allow_line_changes=settings.allow_line_changes,
        retry=retry_policy(settings),
        build=build_options(settings),
        submit_concurrency=settings.submit_concurrency,
        fill_to=settings.batch_size,
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
            worker_id=config.worker_id,
            jetti=jetti,
            limiter=limiter,
            breaker=breaker,
            dead_letters=dead_letters,
            publisher=publisher,
            stats=stats,
        ),
        stop_exceptions=(SoftTimeLimitExceeded,),
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


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy configured by `settings`."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        backoff_max_s=settings.backoff_max_s,
        retry_deadline_s=settings.retry_deadline_s,
        blocked_default_s=settings.blocked_default_s,
    )


def build_options(settings: Settings) -> BuildOptions:
    """The transform's knobs configured by `settings` (worker, reconciler, preview alike)."""
    return BuildOptions(
        max_units_per_line=settings.max_units_per_line,
        max_line_items=settings.max_line_items,
        auto_connect_default=settings.auto_connect_default,
    )


def build_canceller(
    settings: Settings,
    *,
    client: redis.Redis[bytes],
    keys: Keys,
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
    writes = limiter
    if settings.jetti_mode != "sync":
        writes = ApiThrottle(client, keys, kind="write", rate_per_s=settings.jetti_write_rate_per_s)
    return Canceller(
        config=CancelConfig(
            worker_id=worker_id,
            max_token_wait_s=settings.max_token_wait_s,
            breaker_probe_s=settings.breaker_probe_s,
            retry=retry_policy(settings),
        ),
        ledger=SettleLedger(
            client, keys, body_ttl_s=settings.body_ttl_s, tombstone_ttl_s=settings.tombstone_ttl_s
        ),
        dead_letters=dead_letters,
        jetti=jetti,
        writes=writes,
        reads=ApiThrottle(client, keys, kind="read", rate_per_s=settings.jetti_read_rate_per_s),
        breaker=breaker,
        publisher=publisher,
        stats=stats,
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
    """What the pump and the sweeper need (no HTTP client, no processor)."""

    settings: Settings
    holder: str
    ledger: Ledger
    leader: Leader
    publisher: Publisher
    redis: redis.Redis[bytes]
    keys: Keys

    def heartbeat(self, role: str, now: float) -> None:
        """Record that `role` ran on this holder at `now` (read by `health`), and forget holders
        (host:pid) silent for HEARTBEAT_KEPT_S: each restart is a new pid, and the hash would
        otherwise gain a field per process for ever (reliability review #17)."""
        script = self.redis.register_script(_HEARTBEAT_LUA)  # EVALSHA; loads it once if missing
        script(
            keys=[self.keys.heartbeat(role)],
            args=[self.holder, repr(now), repr(now - HEARTBEAT_KEPT_S)],
        )


def build_maintenance_parts(settings: Settings | None = None) -> MaintenanceParts:
    """The pump's and sweeper's adapters from `settings` (default: the environment)."""
    from worker.celery_app import create_app

    settings = settings or get_settings()
    client = client_for(settings)
    keys = Keys(settings.key_prefix)
    return MaintenanceParts(
        settings=settings,
        holder=worker_id(),
        ledger=Ledger(
            client, keys, body_ttl_s=settings.body_ttl_s, tombstone_ttl_s=settings.tombstone_ttl_s
        ),
        leader=Leader(client, keys),
        publisher=Publisher(create_app(settings), batch_size=settings.batch_size),
        redis=client,
        keys=keys,
    )
