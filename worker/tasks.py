"""Celery tasks: thin shells that parse their message and hand the order keys on.

A message is `{"v": MESSAGE_SCHEMA_VERSION, "keys": [order keys]}`. A message that does not parse
is dead-lettered as `invalid_input` under a key derived from the task id; it never crashes the
worker and is never retried. A bad entry in an otherwise good message is dropped alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject

from worker.celery_app import app
from worker.core.errors import ClaimFailed
from worker.core.keys import IMPORT_TASK, MESSAGE_SCHEMA_VERSION, order_key_problem
from worker.core.limits import MAX_KEYS_PER_MESSAGE
from worker.runtime import get_runtime

log = structlog.get_logger("jetti_relay.tasks")


# Pause before a message whose orders could not be claimed goes back to the queue, seconds.
CLAIM_FAILED_PAUSE_S = 1.0


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """The order keys of a message, and the entries dropped from it as (index, why)."""

    keys: list[str]
    dropped: list[tuple[int, str]] = field(default_factory=list)


def parse_message(message: Any) -> ParsedMessage:
    """The order keys of a message; raises ValueError saying what is wrong with the message.

    A message that is not `{"v": MESSAGE_SCHEMA_VERSION, "keys": [...]}` with 1 to
    MAX_KEYS_PER_MESSAGE entries is refused whole. A bad entry
    (`worker.core.keys.order_key_problem`)
    is dropped alone: the message's other orders are still processed (reliability #9); a message
    whose every entry is bad is refused.
    """
    if not isinstance(message, dict):
        raise ValueError(f"message must be an object, got {type(message).__name__}")
    if message.get("v") != MESSAGE_SCHEMA_VERSION:
        raise ValueError(f"unsupported message version {message.get('v')!r}")
    keys = message.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("message.keys must be a non-empty list")
    if len(keys) > MAX_KEYS_PER_MESSAGE:
        raise ValueError(f"message.keys has {len(keys)} keys, at most {MAX_KEYS_PER_MESSAGE}")
    parsed = ParsedMessage([])
    for index, key in enumerate(keys):
        problem = order_key_problem(key)
        if problem is None:
            parsed.keys.append(key)
        else:
            parsed.dropped.append((index, problem))
    if not parsed.keys:
        raise ValueError(f"no valid order key in message.keys: {parsed.dropped[0][1]}")
    return parsed


def _import_orders(self: Task, message: Any) -> None:
    """Import the orders named in `message` into Jetti."""
    task_id = str(self.request.id)
    runtime = get_runtime()
    try:
        parsed = parse_message(message)
    except ValueError as exc:
        runtime.dead_letter_message(message, str(exc), task_id=task_id)
        return
    for index, problem in parsed.dropped:
        # The entry is not an order key the ledger can hold; nothing else to do with it.
        runtime.stats.count_dropped_key()
        log.warning("message_key_dropped", task_id=task_id, index=index, problem=problem)
    try:
        runtime.processor.handle_batch(parsed.keys, task_id=task_id)
    except ClaimFailed as exc:
        # Not acked: the message goes back to the queue (reliability L8). The pause keeps a
        # worker whose ledger Redis is down (a separate broker still serving) from spinning.
        time.sleep(CLAIM_FAILED_PAUSE_S)
        raise Reject(str(exc), requeue=True) from exc


# Registered by call rather than decorator: Celery ships no type information.
import_orders = app.task(
    name=IMPORT_TASK, bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)(_import_orders)
