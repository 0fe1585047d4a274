"""What the metrics and the health checks read: the deployment's stores and the broker's Redis.

Split from the metric families so `jetti-relay health` needs no Prometheus client (the
`monitoring` extra): both commands read the same `Sources`, built by `worker.wiring`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

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


@dataclass(frozen=True)
class Sources:
    """What the collector reads: the deployment's stores (ledger, dead letters, counters,
    breaker, intake stream) and the Celery broker's Redis (often the same server)."""

    stores: Stores
    broker: redis.Redis[bytes]
    queue: str = ORDERS_QUEUE  # the default prefix's; from_settings names the deployment's

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        """Sources for the deployment `settings` describe (its Redis, broker and key prefix);
        a scrape or health check waits for Redis at most the settings' Redis timeouts."""
        client = redis_client(settings)
        stores = build_stores(settings, client)
        return cls(stores, broker_client(settings, client), stores.keys.orders_queue())

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
