"""The worker's start-up check of the Redis replication it relies on (issue 15, item 4).

With Sentinel configured, or replicated acceptance on (JETTI_RELAY_MIN_REPLICAS_ACK > 0), a
worker refuses to start (one line, exit 2, CONFIG) when the sentinels cannot be reached or do not
monitor the master name, or when the group has fewer replicas than acceptance needs: such a
setup would fail over to nothing, or never acknowledge an order. Replicas that exist but are not
online at the primary yet (a failover or a restart moments ago) are waited for, up to
REPLICAS_WAIT_S; the verdict itself is `worker.core.replication.startup_verdict`.

`jetti-relay worker` runs it before starting anything; the Celery worker runs it again in
`worker_init` (worker/celery_app.py), so `celery -A worker.celery_app worker` is checked too.
A Celery child that `jetti-relay worker` starts again after it exited (CHILD_RESTART_VARIABLE)
is not refused: the refusal is for the first start, where it shows a configuration mistake;
after a crash the same shortage is an outage (a replica down, a long failover) that the running
workers ride out (NOREPLICAS is a lost connection to the broker transport), so the restarted
one logs it and starts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from worker.core.replication import startup_verdict
from worker.settings import EXIT_CONFIG, Settings, child_restart, get_settings
from worker.settings.sentinels import parse_sentinels
from worker.wiring import redis_client, replication_state

# How long a worker waits for existing replicas to come online at the primary before refusing.
# A replica re-attaches within a second or two of a failover (PSYNC continues its stream).
REPLICAS_WAIT_S = 10.0
# Pause between two readings while waiting.
POLL_S = 0.5

log = structlog.get_logger("jetti_relay.worker")


def replication_problem(
    settings: Settings,
    *,
    wait_s: float = REPLICAS_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Why a worker must not start on this replication, or None (also when nothing is asked:
    no sentinels and no replicas required). Reads the primary through the sentinels."""
    sentinels = len(parse_sentinels(settings.redis_sentinels))
    if not sentinels and not settings.min_replicas_ack:
        return None
    deadline = clock() + wait_s
    client = redis_client(settings)
    try:
        while True:
            state = replication_state(settings, client)
            verdict = startup_verdict(
                state,
                sentinels=sentinels,
                master=settings.redis_sentinel_master,
                min_replicas=settings.min_replicas_ack,
            )
            if verdict.action == "start":
                log.info(
                    "redis_replication",
                    primary=state.primary_address or None,
                    replicas_online=None if state.primary is None else state.primary.online,
                    min_replicas_ack=settings.min_replicas_ack,
                    sentinels_answering=len(state.answering),
                    sentinel_epoch=state.epoch,
                )
                return None
            if verdict.action == "refuse":
                return verdict.reason
            if clock() >= deadline:
                return f"{verdict.reason} (waited {wait_s:g} s)" if wait_s else verdict.reason
            sleep(POLL_S)
    finally:
        client.close()


def refuse_short_replication(**_: Any) -> None:
    """Celery `worker_init` handler: `check_replication_at_start` with the process's settings and
    its restart number (0 unless `jetti-relay worker` started this Celery worker again)."""
    check_replication_at_start(get_settings(), restart=child_restart())


def check_replication_at_start(
    settings: Settings, *, restart: int, wait_s: float = REPLICAS_WAIT_S
) -> None:
    """Raise SystemExit(EXIT_CONFIG) after one line on stderr when a first start (`restart` 0)
    finds a replication problem (`replication_problem`, waiting up to `wait_s` for replicas).

    A restart (`restart` > 0) never refuses: it reads the replication once, without waiting,
    logs a WARNING `redis_replication_short_on_restart` naming the problem, and returns."""
    if not restart:
        problem = replication_problem(settings, wait_s=wait_s)
        if problem is not None:
            print(f"jetti-relay: refusing to start: {problem}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG)
        return
    # No wait: the workers still running carry on through the same shortage, so this one should
    # consume again as soon as it can; waiting would only delay that.
    problem = replication_problem(settings, wait_s=0.0)
    if problem is not None:
        log.warning(
            "redis_replication_short_on_restart",
            problem=problem,
            restart=restart,
            min_replicas_ack=settings.min_replicas_ack,
            detail="starting anyway: the first start refused this, a restart rides it out",
        )
