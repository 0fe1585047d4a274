"""Protocols every layer agrees on: what a producer, a store and a service need of a publisher.

`KeyPublisher` lives in the core, not in `worker.pipeline.ports`, because three layers use it: the
producers (`producers.enqueue`), a store (`worker.store.migrate` re-publishes waiting orders) and
the services (`worker.pipeline.replayer`); the store may import only the core.
`worker.publisher.Publisher` implements it over Celery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class KeyPublisher(Protocol):
    """Anything that publishes order keys to the import queue (`worker.publisher.Publisher`)."""

    def publish(self, order_keys: Sequence[str]) -> int:
        """Publish the keys; returns the number of messages sent."""
        ...
