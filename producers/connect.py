"""`connect()`: what `enqueue` needs, built from the relay's settings, in one call.

An upstream Python service would otherwise build a Redis client (and forget the timeouts that keep
a silent partition from hanging it for two hours), a publisher (and import the worker's Celery
app, which validates every worker setting at import time) and the key builder (and forget the
configured prefix). `connect` reads the same `JETTI_RELAY_*` settings the relay does and builds
them through `worker.wiring`, the relay's own composition root for adapters, so producer and
worker agree on the Redis, the broker, the key prefix and the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.core.keys import Keys
from worker.core.rules import Rules
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.wiring import keys, publisher, redis_client, rules


@dataclass(frozen=True)
class Relay:
    """The arguments of `enqueue` for one deployment: pass them as keywords, `**relay.kwargs()`."""

    client: redis.Redis[bytes]
    publisher: Publisher
    keys: Keys
    rules: Rules

    def kwargs(self) -> dict[str, object]:
        """`client`, `publisher`, `keys` and `rules`, as `enqueue` takes them."""
        return {
            "client": self.client,
            "publisher": self.publisher,
            "keys": self.keys,
            "rules": self.rules,
        }

    def close(self) -> None:
        """Close the Redis connection (the publisher's broker connections close with it)."""
        self.client.close()


def connect(settings: Settings | None = None) -> Relay:
    """The Redis client (with the configured timeouts), a publish-only broker connection (the
    worker's Celery app is never imported), the key builder under the configured prefix and the
    configured rules, for `settings` (default: the `JETTI_RELAY_*` environment and `.env`)."""
    settings = settings or get_settings()
    return Relay(
        client=redis_client(settings),
        publisher=publisher(settings),
        keys=keys(settings),
        rules=rules(settings),
    )
