"""Publishing order keys to the Celery queue, by task name.

The message is small and versioned: `{"v": MESSAGE_SCHEMA_VERSION, "keys": [...]}`. The order
itself lives in the ledger; a lost or duplicated message can delay an order, never change it.

`Publisher.from_broker_url` publishes without the worker's Celery app (`worker.celery_app`, which
loads the tasks and connects the worker's signals): a producer needs only the broker and the
publishing configuration (`publishing_conf`), which the worker's app shares.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from amqp.exceptions import AMQPError, MessageNacked  # type: ignore[import-untyped]  # no py.typed
from celery import Celery
from kombu.entity import Exchange, Queue
from kombu.exceptions import ChannelError, KombuError, OperationalError

from worker.broker import BrokerOptions
from worker.core.keys import IMPORT_TASK, MESSAGE_SCHEMA_VERSION, ORDERS_QUEUE
from worker.core.limits import MAX_KEYS_PER_MESSAGE

# Keys per message when the caller does not say (= settings.DEFAULT_BATCH_SIZE): the worker
# claims, submits and settles a message's orders together, so per-message costs are shared.
DEFAULT_BATCH_SIZE = 25
# Redis commands buffered before a publish batch flushes on its own (a message is one LPUSH plus
# one PUBLISH for its task-sent event).
PUBLISH_PIPELINE_MAX = 500


class PublishRefused(KombuError):
    """The broker answered a publish with a refusal (RabbitMQ's nack under publisher confirms):
    the message is not queued; the order stays PENDING and the sweeper re-publishes it."""


def build_message(order_keys: Sequence[str]) -> dict[str, Any]:
    """The message body for `order_keys` (one task handles them all)."""
    return {"v": MESSAGE_SCHEMA_VERSION, "keys": list(order_keys)}


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """`items` in consecutive slices of at most `size` (size >= 1)."""
    step = max(1, size)
    for start in range(0, len(items), step):
        yield items[start : start + step]


def publishing_conf(
    *,
    connect_timeout_s: float,
    socket_timeout_s: float,
    visibility_timeout_s: float,
    queue: str = ORDERS_QUEUE,
    broker: BrokerOptions | None = None,
    publish_only: bool,
) -> dict[str, Any]:
    """The Celery configuration that decides how a message is published: JSON only, no results,
    the deployment's orders queue (`Keys.orders_queue()`: one per key prefix), a task-sent
    event for Flower, and socket timeouts on the broker (a half-open connection must not hang a
    publisher, reliability review #14). `broker` (default: a plain Redis) adds what its kind
    needs: the sentinel master, or RabbitMQ's quorum queue and publisher confirms.
    `publish_only` (an app that never consumes) adds RabbitMQ's read and write timeouts
    (`BrokerOptions.transport_options`)."""
    broker = broker or BrokerOptions()
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_s,
            **broker.transport_options(
                connect_timeout_s=connect_timeout_s,
                socket_timeout_s=socket_timeout_s,
                publish_only=publish_only,
            ),
        },
        "visibility_timeout": visibility_timeout_s,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": queue,
        "task_create_missing_queues": True,
        "task_send_sent_event": True,
        "enable_utc": True,
        **broker.celery_conf(queue),
    }
    arguments = broker.queue_arguments()
    if arguments is not None:
        # Declared the same by every publisher and worker: RabbitMQ refuses a redeclaration
        # with other arguments, and `task_create_missing_queues` would make a classic queue.
        exchange = Exchange(queue, type="direct", durable=True)  # type: ignore[no-untyped-call]
        declared = Queue(  # type: ignore[no-untyped-call]
            queue, exchange, routing_key=queue, durable=True, queue_arguments=arguments
        )
        conf["task_queues"] = [declared]
    return conf


class Publisher:
    """Sends import messages through a Celery app's broker connection pool, to the app's
    default queue (`publishing_conf(queue=...)`: the deployment's orders queue)."""

    def __init__(self, app: Celery, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if not 1 <= batch_size <= MAX_KEYS_PER_MESSAGE:
            # The worker refuses a bigger message whole (reliability #9).
            raise ValueError(f"batch_size must be 1 to {MAX_KEYS_PER_MESSAGE}, got {batch_size}")
        self._app = app
        self._batch_size = batch_size

    @classmethod
    def from_broker_url(
        cls,
        broker_url: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        connect_timeout_s: float,
        socket_timeout_s: float,
        visibility_timeout_s: float,
        queue: str = ORDERS_QUEUE,
        broker: BrokerOptions | None = None,
    ) -> Publisher:
        """A publisher on its own Celery app for `broker_url`, configured to publish only (no
        tasks loaded, no worker signals): what producers and operator commands use.

        Every broker wait is bounded: on RabbitMQ a publish whose confirm does not come within
        `socket_timeout_s` (or a connection whose handshake does not finish within
        `connect_timeout_s`) is retried by Celery on a new connection a few times, then
        `publish` raises `kombu.exceptions.OperationalError`."""
        app = Celery("jetti_relay", broker=broker_url, set_as_current=False)
        app.conf.update(
            publishing_conf(
                connect_timeout_s=connect_timeout_s,
                socket_timeout_s=socket_timeout_s,
                visibility_timeout_s=visibility_timeout_s,
                queue=queue,
                broker=broker,
                publish_only=True,
            )
        )
        return cls(app, batch_size=batch_size)

    @property
    def queue(self) -> str:
        """The queue this publisher sends to."""
        return str(self._app.conf.task_default_queue)

    def publish(self, order_keys: Sequence[str], *, batch_size: int | None = None) -> int:
        """Publish `order_keys` in batches of `batch_size` (default: the publisher's); returns
        the number of messages sent."""
        if not order_keys:
            return 0
        sent = 0
        try:
            with self._app.producer_or_acquire() as producer, _pipelined(producer):
                for chunk in chunks(order_keys, batch_size or self._batch_size):
                    self._app.send_task(
                        IMPORT_TASK,
                        args=[build_message(chunk)],
                        queue=self.queue,
                        producer=producer,
                        ignore_result=True,
                    )
                    sent += 1
        except MessageNacked as exc:
            raise PublishRefused(f"the broker refused a message (nack): {exc}") from exc
        except (AMQPError, OSError) as exc:
            # py-amqp's own errors (ConnectionForced when RabbitMQ shuts down, a reset socket
            # once kombu's publish retries are spent) are no KombuError: translated here so
            # every caller sees one kind of "broker unreachable", as on the Redis transport.
            raise OperationalError(f"{type(exc).__name__}: {exc}") from exc
        return sent

    def queue_length(self) -> int:
        """Messages waiting in the orders queue (not yet taken by a worker): LLEN on Redis, the
        ready messages of a passive declare on RabbitMQ (delivered, unacked ones not counted
        on either)."""
        with self._app.connection_for_read() as conn:
            try:
                declared = conn.default_channel.queue_declare(self.queue, passive=True)
            except ChannelError:
                # The Redis transport has no queue while it holds no message; on RabbitMQ the
                # queue is missing until a worker or publisher declared it (404 NOT_FOUND).
                return 0
            return int(declared.message_count)


def _pipelined(producer: Any) -> AbstractContextManager[Any]:
    """Kombu's publish batch where the transport has one (Redis: every LPUSH and task-sent
    event of a call goes out in one pipelined round trip, flushed on a clean exit); a plain
    publish per message elsewhere. A failed flush raises, as a failed publish does."""
    batch = getattr(producer, "batch", None)
    if batch is None or not getattr(producer, "supports_batch_publish", False):
        return nullcontext()
    return cast(AbstractContextManager[Any], batch(max_size=PUBLISH_PIPELINE_MAX))
