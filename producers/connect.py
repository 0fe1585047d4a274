"""`connect()`: what `enqueue` needs, built from the relay's settings, in one call.

An upstream Python service would otherwise build a Redis client (and forget the timeouts that keep
a silent partition from hanging it for two hours), a publisher (and import the worker's Celery
app, which validates every worker setting at import time) and the key builder (and forget the
configured prefix). `connect` reads the same `JETTI_RELAY_*` settings the relay does and builds
them through `worker.wiring`, the relay's own composition root for adapters, so producer and
worker agree on the Redis, the broker, the key prefix and the rules. `stream_intake` builds the
Redis Stream intake's consumer the same way: this module is the producer side's composition point.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from producers.stream_config import DEFAULT_BLOCK_MS, IntakeLimits
from producers.stream_intake import StreamIntake
from worker.core.keys import Keys
from worker.core.rules import Rules
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.settings.defaults import DEFAULT_MIN_REPLICAS_ACK, DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S
from worker.wiring import keys, publisher, redis_client, rules


@dataclass(frozen=True)
class Relay:
    """The arguments of `enqueue` for one deployment: pass them as keywords, `**relay.kwargs()`."""

    client: redis.Redis[bytes]
    publisher: Publisher
    keys: Keys
    rules: Rules
    min_replicas_ack: int = DEFAULT_MIN_REPLICAS_ACK
    min_replicas_ack_timeout_s: float = DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S

    def kwargs(self) -> dict[str, object]:
        """`client`, `publisher`, `keys`, `rules` and the replicas to wait for (with their
        timeout), as `enqueue` takes them."""
        return {
            "client": self.client,
            "publisher": self.publisher,
            "keys": self.keys,
            "rules": self.rules,
            "min_replicas_ack": self.min_replicas_ack,
            "min_replicas_ack_timeout_s": self.min_replicas_ack_timeout_s,
        }

    def close(self) -> None:
        """Close the Redis connection (the publisher's broker connections close with it)."""
        self.client.close()


def connect(settings: Settings | None = None) -> Relay:
    """The Redis client (with the configured timeouts), a publish-only broker connection (the
    worker's Celery app is never imported), the key builder under the configured prefix, the
    configured rules and the replicas an order must reach before it counts as accepted, for
    `settings` (default: the `JETTI_RELAY_*` environment and `.env`)."""
    settings = settings or get_settings()
    return Relay(
        client=redis_client(settings),
        publisher=publisher(settings),
        keys=keys(settings),
        rules=rules(settings),
        min_replicas_ack=settings.min_replicas_ack,
        min_replicas_ack_timeout_s=settings.min_replicas_ack_timeout_s,
    )


def intake_limits(settings: Settings) -> IntakeLimits:
    """The stream intake's batch, reclaim and rejects bounds and the validation bounds of
    `settings`. A read waits at most half the Redis socket timeout, so it never times out."""
    return IntakeLimits(
        batch_size=settings.intake_batch_size,
        reclaim_idle_s=settings.intake_reclaim_idle_s,
        max_deliveries=settings.intake_max_deliveries,
        rejects_max=settings.intake_rejects_max,
        max_future_skew_s=settings.max_future_skew_s,
        max_line_items=settings.max_line_items,
        min_replicas_ack=settings.min_replicas_ack,
        min_replicas_ack_timeout_s=settings.min_replicas_ack_timeout_s,
        block_ms=max(1, min(DEFAULT_BLOCK_MS, int(settings.redis_socket_timeout_s * 500))),
    )


def stream_intake(settings: Settings, consumer: str) -> StreamIntake:
    """The intake stream's consumer `consumer` for the deployment `settings` describe: its
    own Redis client (with the configured timeouts) and publish-only broker connection, the
    key prefix, the rules and `intake_limits(settings)`."""
    return StreamIntake(
        redis_client(settings),
        publisher(settings),
        keys(settings),
        consumer=consumer,
        limits=intake_limits(settings),
        rules=rules(settings),
    )
