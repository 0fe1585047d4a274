"""What the metrics and the health checks read: the deployment's stores and the broker's queue.

Split from the metric families so `jetti-relay health` needs no Prometheus client (the
`monitoring` extra): both commands read the same `Sources`, built by `worker.wiring`.

The broker's queue is read from the broker itself (`BrokerQueue`): LLEN of kombu's list and its
unacked hash on a Redis broker; on RabbitMQ a passive `queue.declare`, which reports the ready
messages and the consumers but not the messages delivered and unacknowledged (only the
management plugin's HTTP API knows those; the relay does not require it), so that figure is
absent on amqp rather than a made-up 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import redis

from worker.broker import broker_kind
from worker.core.keys import ORDERS_QUEUE, Keys
from worker.core.states import OrderState
from worker.settings import Settings
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.intake import IntakeStream
from worker.store.ledger import Ledger
from worker.store.stats import Stats
from worker.wiring import Stores, broker_client, build_stores, redis_client

# States an order leaves the pipeline's hands in: the newest entry in one is the last progress.
SETTLED_STATES: tuple[OrderState, ...] = (
    OrderState.SUBMITTED,
    OrderState.CONFIRMED,
    OrderState.CANCELLED,
    OrderState.DEAD,
)


class BrokerUnreachable(Exception):
    """The broker (RabbitMQ) did not answer; a Redis broker raises redis-py's own errors."""


@dataclass(frozen=True)
class QueueDepth:
    """The orders queue as the broker reports it. None: the broker cannot tell."""

    ready: int  # messages waiting for a consumer
    unacked: int | None  # delivered to a worker, not yet acknowledged (None on RabbitMQ)
    consumers: int | None  # consumers attached (None on Redis: kombu polls, nothing attaches)


class BrokerQueue(Protocol):
    """The deployment's orders queue on its broker, for metrics and health."""

    @property
    def queue(self) -> str: ...

    def ping(self) -> None:
        """Return when the broker answers; raise when it does not."""

    def depth(self) -> QueueDepth:
        """The queue's figures (an absent queue: nothing ready)."""


# Kombu's Redis transport keeps messages delivered but not yet acked in this hash.
KOMBU_UNACKED_KEY = "unacked"


@dataclass(frozen=True)
class RedisQueue:
    """The orders queue on a Redis broker: kombu's list, and its hash of unacked messages
    (shared by every queue of the database). Errors are redis-py's: the health run treats them
    as Redis being down, as it is when the broker is the ledger's server."""

    client: redis.Redis[bytes]
    queue: str = ORDERS_QUEUE

    def ping(self) -> None:
        self.client.ping()

    def depth(self) -> QueueDepth:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.queue)
        pipe.hlen(KOMBU_UNACKED_KEY)
        ready, unacked = pipe.execute()
        return QueueDepth(int(ready), int(unacked), None)


@dataclass(frozen=True)
class AmqpQueue:
    """The orders queue on RabbitMQ, read with a passive declare on a short-lived connection
    (a scrape every 15 s or a health check; nothing held open between them). Raises
    BrokerUnreachable when the broker does not answer within `connect_timeout_s`."""

    url: str
    queue: str = ORDERS_QUEUE
    connect_timeout_s: float = 5.0

    def ping(self) -> None:
        with self._connection():
            pass

    def depth(self) -> QueueDepth:
        from kombu.exceptions import ChannelError

        with self._connection() as conn:
            try:
                declared = conn.channel().queue_declare(self.queue, passive=True)
            except ChannelError:
                # Not declared yet: no publisher or worker has run; nothing is waiting.
                return QueueDepth(0, None, 0)
            return QueueDepth(int(declared.message_count), None, int(declared.consumer_count))

    def _connection(self) -> Any:
        from kombu.connection import Connection
        from kombu.exceptions import OperationalError

        conn: Any = Connection(  # type: ignore[no-untyped-call]
            self.url, connect_timeout=self.connect_timeout_s
        )
        try:
            conn.ensure_connection(max_retries=1)
        except (OperationalError, OSError) as exc:
            conn.release()
            # The URL may carry a password: name the error's class and text only.
            raise BrokerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return conn


def broker_queue(settings: Settings, client: redis.Redis[bytes], queue: str) -> BrokerQueue:
    """The deployment's orders queue on the broker `settings` configure; `client` is the
    ledger's (reused when the broker is the same Redis)."""
    if broker_kind(settings.broker_url) == "amqp":
        return AmqpQueue(settings.broker_url, queue, settings.redis_connect_timeout_s)
    return RedisQueue(broker_client(settings, client), queue)


@dataclass(frozen=True)
class Sources:
    """What the collector reads: the deployment's stores (ledger, dead letters, counters,
    breaker, intake stream) and the Celery broker's orders queue."""

    stores: Stores
    broker: BrokerQueue

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        """Sources for the deployment `settings` describe (its Redis, broker and key prefix);
        a scrape or health check waits for Redis (or RabbitMQ) at most the settings' Redis
        timeouts."""
        client = redis_client(settings)
        stores = build_stores(settings, client)
        return cls(stores, broker_queue(settings, client, stores.keys.orders_queue()))

    @property
    def queue(self) -> str:
        """The deployment's orders queue."""
        return self.broker.queue

    @property
    def client(self) -> redis.Redis[bytes]:
        """The deployment's Redis."""
        return self.stores.client

    @property
    def keys(self) -> Keys:
        """The deployment's key builder."""
        return self.stores.keys

    @property
    def ledger(self) -> Ledger:
        """The ledger (index reads only)."""
        return self.stores.ledger

    @property
    def dead(self) -> DeadLetters:
        """The dead-letter store."""
        return self.stores.dead

    @property
    def stats(self) -> Stats:
        """The fleet's counters."""
        return self.stores.stats

    @property
    def breaker(self) -> Breaker:
        """The fleet's breaker (its state only)."""
        return self.stores.breaker

    @property
    def intake(self) -> IntakeStream:
        """The intake stream and its rejects stream (reads only)."""
        return self.stores.intake

    @property
    def intake_rejects_max(self) -> int:
        """The cap of the rejects stream (JETTI_RELAY_INTAKE_REJECTS_MAX)."""
        return self.stores.settings.intake_rejects_max
