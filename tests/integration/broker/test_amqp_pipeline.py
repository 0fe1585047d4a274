"""The Celery side on RabbitMQ (`JETTI_RELAY_BROKER_URL=amqp://...`), the ledger in Redis.

Real `jetti-relay worker` processes consume a quorum queue on the machine's RabbitMQ (each test
on its own queue: `tests/fixtures/rabbitmq.py`), submit to the sandbox over HTTP, and settle
orders in the test Redis. Whatever RabbitMQ does with a message, the sweeper re-publishes an
order whose message is gone.
"""

from __future__ import annotations

from typing import Any

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection

from tests.factories import raw_order
from tests.fixtures.pipeline import PipelineFactory, wait_until
from tests.fixtures.rabbitmq import AmqpBroker, AmqpHarness
from worker.core.states import OrderState

pytestmark = pytest.mark.integration


def test_a_worker_on_rabbitmq_delivers_every_order_once(
    amqp_harness: AmqpHarness,
    amqp_broker: AmqpBroker,
    start_pipeline: PipelineFactory,
    sandbox: Any,
) -> None:
    """Orders enqueued through the producers library travel over RabbitMQ to a real worker,
    which submits each one once and settles it in the Redis ledger."""
    start_pipeline(**amqp_broker.env)
    keys = [f"amqp-{n}" for n in range(12)]
    amqp_harness.enqueue([raw_order(k) for k in keys])
    amqp_harness.wait_states(keys, {OrderState.SUBMITTED})
    for key in keys:
        assert len(sandbox.history(key)) == 1
    # Not at once: under load the sweeper may have re-published a slow order (a no-op later).
    wait_until(lambda: amqp_harness.publisher.queue_length() == 0, what="an empty queue")


def test_the_orders_queue_is_a_quorum_queue_with_the_delivery_limit(
    amqp_harness: AmqpHarness, amqp_broker: AmqpBroker
) -> None:
    """Publishing declares the queue as a quorum queue with the configured x-delivery-limit:
    RabbitMQ accepts the same declaration again and refuses a classic one (406)."""
    amqp_harness.publisher.publish(["q-1"])
    limit = amqp_harness.settings.broker_delivery_limit
    with Connection(amqp_broker.url) as conn:
        same = {"x-queue-type": "quorum", "x-delivery-limit": limit}
        declared = conn.channel().queue_declare(
            amqp_broker.queue, durable=True, auto_delete=False, arguments=same
        )
        assert declared.message_count == 1
        with pytest.raises(PreconditionFailed):
            conn.channel().queue_declare(
                amqp_broker.queue, durable=True, auto_delete=False, arguments={}
            )


def test_the_sweeper_republishes_orders_whose_messages_rabbitmq_dropped(
    amqp_harness: AmqpHarness,
    amqp_broker: AmqpBroker,
    start_pipeline: PipelineFactory,
    sandbox: Any,
) -> None:
    """Orders enqueued while no worker runs, their messages purged from the queue (what a
    delivery limit or an operator's purge does): the sweeper re-publishes them from the ledger
    and every one arrives."""
    keys = [f"purged-{n}" for n in range(6)]
    amqp_harness.enqueue([raw_order(k) for k in keys])
    with Connection(amqp_broker.url) as conn:
        purged = conn.channel().queue_purge(amqp_broker.queue)
    assert purged and purged > 0
    assert amqp_harness.publisher.queue_length() == 0
    start_pipeline(**amqp_broker.env)
    amqp_harness.wait_states(keys, {OrderState.SUBMITTED}, timeout_s=60)
    for key in keys:
        assert len(sandbox.history(key)) == 1
    wait_until(lambda: amqp_harness.publisher.queue_length() == 0, what="an empty queue")
