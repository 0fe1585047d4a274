"""The limits of worker.core.limits end to end (reliability #9): the producer refuses what the
worker would refuse, per order, and a worker drops only a bad key, never the message around it."""

from __future__ import annotations

from typing import Any

import pytest

from producers import enqueue
from tests.factories import raw_order
from tests.fixtures.pipeline import Harness, PipelineFactory, wait_until
from worker.core.keys import IMPORT_TASK, ORDERS_QUEUE
from worker.core.limits import MAX_ID_PREFIX_CHARS, MAX_ORDER_KEY_CHARS
from worker.core.states import OrderState
from worker.publisher import build_message
from worker.store.stats import DROPPED_KEY_COUNTER, Stats

pytestmark = pytest.mark.integration


def test_a_long_id_prefix_rejects_each_order_with_the_limit(redis_url: str) -> None:
    """An id prefix over the limit: every order is a rejection naming the limit, nothing is
    recorded, and the call returns a summary instead of raising."""
    harness = Harness(redis_url)
    prefix = "p" * (MAX_ID_PREFIX_CHARS + 1)
    summary = enqueue(
        [raw_order("1"), raw_order("2")],
        client=harness.client,
        publisher=harness.publisher,
        id_prefix=prefix,
    )
    assert summary.rejected == 2 and summary.accepted == 0
    assert all(f"at most {MAX_ID_PREFIX_CHARS}" in r.describe() for r in summary.rejections)
    assert harness.ledger.get(prefix + "1") is None


def test_a_bad_key_in_a_message_does_not_strand_the_others(
    start_pipeline: PipelineFactory, sandbox: Any, redis_url: str
) -> None:
    """A message with one over-long key and two good ones: the good ones are delivered by that
    message, no `message:` dead letter is written, the drop is counted."""
    harness = Harness(redis_url)
    harness.enqueue([raw_order("good-1"), raw_order("good-2")])
    # Only the message below may deliver them: the producer's own message goes first.
    harness.client.delete(ORDERS_QUEUE)
    long_key = "k" * (MAX_ORDER_KEY_CHARS + 1)
    harness.app.send_task(
        IMPORT_TASK,
        args=[build_message(["good-1", long_key, "good-2"])],
        queue=ORDERS_QUEUE,
        ignore_result=True,
    )
    start_pipeline(JETTI_RELAY_STUCK_AFTER_S="3600")
    harness.wait_states(["good-1", "good-2"], {OrderState.SUBMITTED})
    assert harness.dead.list(limit=10) == []
    wait_until(
        lambda: harness.client.hget(harness.keys.counters(), DROPPED_KEY_COUNTER) == b"1",
        what="the dropped key counted",
    )
    assert Stats(harness.client, harness.keys).dropped_keys() == 1
