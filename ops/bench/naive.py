"""The benchmark's naive baseline: one Celery task per order that POSTs it with httpx.

Nothing else: no ledger, no lock, no rate limiter, no retry policy, no batching. The message
carries the ready Jetti payload (the benchmark builds it beforehand, so this task does even less
work than ours). `jetti-relay bench` runs it as

    celery -A ops.bench.naive worker -E --pool prefork -c N --prefetch-multiplier 1 -Q naive

with the same pool, concurrency and prefetch as our worker. Configured by environment variables
(this is a benchmark fixture, not product code, so it does not read worker settings).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from celery import Celery, signals

BROKER_ENV = "JETTI_RELAY_BENCH_BROKER_URL"
TARGET_ENV = "JETTI_RELAY_BENCH_TARGET_URL"
HASH_ENV = "JETTI_RELAY_BENCH_WEBHOOK_HASH"
READY_ENV = "JETTI_RELAY_BENCH_READY_FILE"
TASK = "bench.naive_post_order"
QUEUE = "naive"

app = Celery("bench_naive", broker=os.environ.get(BROKER_ENV, "memory://"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_client: httpx.Client | None = None


def post_order(body: str) -> int:
    """POST one payload to Jetti's async endpoint; an error status fails the task."""
    global _client
    if _client is None:  # one keep-alive client per pool process, made after the fork
        _client = httpx.Client(timeout=30.0)
    response = _client.post(
        os.environ[TARGET_ENV],
        content=body.encode(),
        headers={"jetti-webhook-hash": os.environ[HASH_ENV], "content-type": "application/json"},
    )
    response.raise_for_status()
    return response.status_code


def _announce_ready(**_: Any) -> None:
    ready = os.environ.get(READY_ENV)
    if ready:
        Path(ready).write_text(str(os.getpid()), encoding="utf-8")


# Registered by call: Celery ships no type information.
app.task(name=TASK)(post_order)
signals.worker_ready.connect(_announce_ready)
