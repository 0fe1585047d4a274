"""Celery tasks: thin shells that parse their message and hand the order keys on.

A message is `{"v": MESSAGE_SCHEMA_VERSION, "keys": [order keys]}`. A message that does not parse
is dead-lettered as `invalid_input` under a key derived from the task id; it never crashes the
worker and is never retried.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject

from worker.celery_app import app
from worker.errors import ClaimFailed
from worker.keys import IMPORT_TASK, MESSAGE_SCHEMA_VERSION
from worker.runtime import get_runtime

log = structlog.get_logger("jetti_relay.tasks")

# Pause before a message whose orders could not be claimed goes back to the queue, seconds.
CLAIM_FAILED_PAUSE_S = 1.0
# Longest order key accepted in a message; anything longer is not one of ours.
MAX_KEY_LENGTH = 512
# Most keys one message may carry.
MAX_KEYS_PER_MESSAGE = 1000


def parse_message(message: Any) -> list[str]:
    """The order keys of a message; raises ValueError saying what is wrong."""
    if not isinstance(message, dict):
        raise ValueError(f"message must be an object, got {type(message).__name__}")
    if message.get("v") != MESSAGE_SCHEMA_VERSION:
        raise ValueError(f"unsupported message version {message.get('v')!r}")
    keys = message.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("message.keys must be a non-empty list")
    if len(keys) > MAX_KEYS_PER_MESSAGE:
        raise ValueError(f"message.keys has {len(keys)} keys, at most {MAX_KEYS_PER_MESSAGE}")
    for index, key in enumerate(keys):
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"message.keys[{index}] must be a non-empty string of at most "
                f"{MAX_KEY_LENGTH} characters"
            )
    return list(keys)


def _import_orders(self: Task, message: Any) -> None:
    """Import the orders named in `message` into Jetti."""
    task_id = str(self.request.id)
    runtime = get_runtime()
    try:
        keys = parse_message(message)
    except ValueError as exc:
        runtime.dead_letter_message(message, str(exc), task_id=task_id)
        return
    try:
        runtime.processor.handle_batch(keys, task_id=task_id)
    except ClaimFailed as exc:
        # Not acked: the message goes back to the queue (reliability L8). The pause keeps a
        # worker whose ledger Redis is down (a separate broker still serving) from spinning.
        time.sleep(CLAIM_FAILED_PAUSE_S)
        raise Reject(str(exc), requeue=True) from exc


# Registered by call rather than decorator: Celery ships no type information.
import_orders = app.task(
    name=IMPORT_TASK, bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)(_import_orders)
