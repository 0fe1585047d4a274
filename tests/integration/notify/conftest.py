"""Fixtures of the notifier tests: a local HTTP receiver that records what it is sent, and
notifiers built from Settings (as `jetti-relay notify` builds them) against the test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ops.notify.build import build_notifier
from ops.notify.notifier import Notifier
from tests.fixtures.notify import PREFIX, MakeNotifier, Receiver, workers_alive
from worker.core.keys import Keys
from worker.settings import Settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(PREFIX)


@pytest.fixture
def make_notifier(
    redis_url: str, receiver: Receiver, make_settings: Callable[..., Settings]
) -> MakeNotifier:
    """`make_notifier(holder="a", ping=workers_alive, **settings)`: a notifier on the test Redis
    sending to `receiver` (webhook) unless the settings say otherwise."""

    def make(
        holder: str = "host-a:1",
        ping: Callable[[float], list[str]] = workers_alive,
        **overrides: Any,
    ) -> Notifier:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "broker_url": redis_url,
            "key_prefix": PREFIX,
            "notify_webhook_url": receiver.url,
            "notify_interval_s": 0.05,
            **overrides,
        }
        settings = make_settings(**values)
        return build_notifier(settings, holder=holder, ping=ping)

    return make


@pytest.fixture
def client(redis_client: redis.Redis[bytes]) -> redis.Redis[bytes]:
    return redis_client
