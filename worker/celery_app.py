"""The Celery application: `celery -A worker.celery_app worker` (Flower uses the same `-A`).

Safety settings, and why (DESIGN.md principles 4-5; spec/queue-anchors.md §3):
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acked only after its orders are
  settled in the ledger; a killed child puts it back. Crash loops are bounded by the ledger's
  delivery markers (`worker_lost`), not by the broker: Redis keeps no requeue counter, and
  RabbitMQ's quorum-queue `x-delivery-limit` (JETTI_RELAY_BROKER_DELIVERY_LIMIT, above
  MAX_UNFINISHED_DELIVERIES) only drops a message, which the sweeper would re-publish.
- On RabbitMQ (`amqp://`): a quorum queue declared identically by publishers and workers
  (`publishing_conf`), per-consumer prefetch (no global QoS on quorum queues), publisher
  confirms, and the hard limit below RabbitMQ's `consumer_timeout` instead of the visibility
  timeout. Celery adds its native delayed-delivery exchanges when it sees a quorum queue; the
  relay never uses countdown/ETA, so they stay empty.
- `worker_prefetch_multiplier` low (1): a worker holds one message per process it can run now.
- JSON only, no result backend (`task_ignore_result`): state lives in the ledger.
- No countdown/ETA anywhere: retries wait in the ledger's retry schedule, so the Redis visibility
  timeout never duplicates them, and it can be minutes instead of the 1 h default.
- HTTP timeouts < soft limit < hard limit < visibility timeout (Redis) or consumer timeout
  (RabbitMQ), checked when the worker starts.
- Task events on, so Flower sees every task.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery, signals

from worker import broker_transport
from worker.core.keys import orders_queue
from worker.publisher import publishing_conf
from worker.settings import (
    EXIT_CONFIG,
    EXIT_OLD_REDIS,
    Settings,
    SettingsError,
    check_timeouts,
    get_settings,
    jetti_problems,
)
from worker.startup_replication import refuse_short_replication
from worker.tracing import tracing_problem
from worker.wiring import broker_options


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` (default: the environment)."""
    settings = settings or get_settings()
    # Before the app connects: a NOREPLICAS on the consumer's BRPOP must not end the worker.
    broker_transport.register()
    app = Celery("jetti_relay", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        # Socket timeouts on the broker too: a half-open connection must not hang a consumer or
        # the pump's publisher (reliability review #14). Kombu's BRPOP waits 1 s, far below.
        publishing_conf(
            connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            visibility_timeout_s=settings.visibility_timeout_s,
            queue=orders_queue(settings.key_prefix),
            broker=broker_options(settings),
            # It consumes: no amqp read timeout under Celery's event loop (BrokerOptions).
            publish_only=False,
        ),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        worker_concurrency=settings.worker_concurrency,
        task_soft_time_limit=settings.soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # Back on the broker within a second of it returning (a failover, a restart), where
        # kombu's default pauses took up to 6 s (worker/broker_consumer.py).
        worker_consumer="worker.broker_consumer:PromptReconnectConsumer",
    )
    return app


def _create_app_or_refuse() -> Celery:
    # `celery -A worker.celery_app` (the worker child, Flower) imports this module first: a
    # configuration mistake is one line and exit 2, not a traceback from Celery's app loader.
    try:
        return create_app()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"jetti-relay: refusing to start: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


app = _create_app_or_refuse()


def _setup_logging(**_: Any) -> None:
    # Connecting this signal stops Celery from configuring logging itself; its records then go
    # through structlog like ours.
    from worker.logconfig import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values)


def _refuse_unsafe_timeouts(sender: Any = None, **_: Any) -> None:
    pool_cls = getattr(sender, "pool_cls", None)
    pool = _pool_name(pool_cls)
    problems = [*jetti_problems(get_settings()), *check_timeouts(get_settings(), pool)]
    if tracing_line := tracing_problem(get_settings().otlp_endpoint):
        problems.append(tracing_line)
    if problems:
        for problem in problems:
            print(f"jetti-relay: refusing to start: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)


def _check_redis(**_: Any) -> None:
    """Refuse a Redis older than supported (exit EXIT_OLD_REDIS); warn once when it may lose or
    evict data."""
    import redis
    import structlog

    from worker.redisconn import RedisTooOld, require_supported, server_facts
    from worker.wiring import redis_client

    client = redis_client(get_settings())
    try:
        require_supported(client)
        facts = server_facts(client)
    except RedisTooOld as exc:
        print(f"jetti-relay: refusing to start: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_OLD_REDIS) from exc
    except (redis.ConnectionError, redis.TimeoutError):
        return  # Redis may still be starting; Celery waits for the broker
    finally:
        client.close()
    log = structlog.get_logger("jetti_relay.worker")
    if facts.verdict == "degraded":
        log.warning("redis_unsafe", verdict=facts.verdict, problems=facts.problems)
    elif facts.verdict == "unknown":
        log.info(
            "redis_config_unknown",
            verdict=facts.verdict,
            detail="CONFIG refused: check persistence, maxmemory and noeviction yourself",
        )


def _announce_ready(**_: Any) -> None:
    # Orchestrators and tests wait for this file instead of parsing log lines.
    ready_file = get_settings().ready_file
    if ready_file is not None:
        ready_file.write_text(str(os.getpid()), encoding="utf-8")


def _fresh_runtime_per_process(**_: Any) -> None:
    # Each prefork child builds its own HTTP client and Redis pool after the fork.
    from worker import runtime

    runtime.reset()


def _flush_traces(**_: Any) -> None:
    # The OTLP exporter batches spans in memory: export them before the process ends.
    from worker import tracing

    tracing.shutdown()


def _pool_name(pool_cls: Any) -> str:
    """'prefork', 'threads', 'solo', 'gevent' or 'eventlet' from Celery's pool class or alias."""
    if pool_cls is None:
        return "prefork"
    if isinstance(pool_cls, str):
        name = pool_cls
    else:
        name = f"{getattr(pool_cls, '__module__', '')}.{getattr(pool_cls, '__name__', '')}"
    lowered = name.lower()
    for alias, pool in (
        ("prefork", "prefork"),
        ("processes", "prefork"),
        ("thread", "threads"),
        ("solo", "solo"),
        ("gevent", "gevent"),
        ("eventlet", "eventlet"),
    ):
        if alias in lowered:
            return pool
    return lowered


# Connected by call rather than decorator: Celery ships no type information.
signals.setup_logging.connect(_setup_logging)
signals.worker_init.connect(_refuse_unsafe_timeouts)
signals.worker_init.connect(_check_redis)
signals.worker_init.connect(refuse_short_replication)
signals.worker_ready.connect(_announce_ready)
signals.worker_process_init.connect(_fresh_runtime_per_process)
signals.worker_process_shutdown.connect(_flush_traces)
signals.worker_shutdown.connect(_flush_traces)
