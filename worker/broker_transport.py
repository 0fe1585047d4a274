"""Kombu's Redis transports with two changes, so a Redis failover never ends the Celery worker:
a consumer that reads NOREPLICAS reconnects, and a channel closed after its connection is gone
fails as a lost connection (`_require_open`).

A primary running `min-replicas-to-write` (the HA setup) refuses every write with NOREPLICAS
while its replicas are out of sync, and BRPOP, which takes the message, is a write. Kombu lets
that reply out of its BRPOP read as a plain `ResponseError`; Celery calls it unrecoverable, its
worker exits, the deliveries its pool had in flight are cut (SUBMITTING until the sweeper), and
the restarted worker's start-up check refuses for good while the replicas stay out (exit 2,
which `jetti-relay worker` does not restart). Two ways in, both reproduced in chaos runs: the
old primary continued after a stall before the consumer had left it, and both replicas down
longer than `min-replicas-max-lag`. Here every connection of the worker's broker pools (BRPOP,
and the writes of a consumer's restart: restoring unacknowledged messages takes a lock with SET)
turns that reply into a connection error, as redis-py already does for READONLY from a demoted
primary: kombu drops the connection and Celery's consumer reconnects, through the sentinels, to
whichever node is the primary by then, retrying until the replicas are back (Celery logs
"Frequent restarts detected" once a second meanwhile). Measured: both replicas killed for 25 s
under MIN_REPLICAS_ACK=1 ended `jetti-relay worker` (exit 2) after 15 s without this; with it
the same worker delivered new orders 2 s after the replicas came back. `create_app` registers
this, so it holds in the processes that build the worker's app (the Celery worker, `health`,
the chaos harness); a producer process publishes with kombu's own and keeps the reply as it is.

`register()` makes kombu use these for the `redis`, `rediss` and `sentinel` URL schemes. Kombu
resolves the transport from the URL's scheme again on every switch between alternate URLs (one
per sentinel), so a transport class handed to one connection would be lost at the first switch.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from worker.store.replication import refused_for_replicas


@cache
def _reconnect_on_noreplicas(base: type[redis.Connection]) -> type[redis.Connection]:
    """`base` whose NOREPLICAS reply drops the connection and raises a connection error (the
    reply chained as its cause)."""

    class Connection(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().read_response(*args, **kwargs)
            except redis.ResponseError as exc:
                if not refused_for_replicas(exc):
                    raise
                self.disconnect()
                raise redis.ConnectionError("the primary has too few replicas in sync") from exc

    Connection.__name__ = Connection.__qualname__ = f"NoReplicasReconnecting{base.__name__}"
    return Connection


def _require_open(channel: Any) -> None:
    """Refuse, as a lost connection, to build a pool for a channel whose connection is gone.

    When Celery drops a broker connection that failed (a killed primary), kombu 5.7 detaches the
    transport from it and then closes its channels; a channel holding unacknowledged messages
    restores them, and one without a pool yet builds it from the detached connection: an
    AttributeError ('NoneType' object has no attribute 'hostname') that Celery calls
    unrecoverable, so its worker exited and cut its deliveries (chaos 15, most runs). A
    connection error instead is one kombu ignores while closing: the messages stay unacknowledged
    and the visibility timeout restores them."""
    if channel.connection.client is None:
        raise redis.ConnectionError("the broker connection is closed")


def _reconnecting(params: dict[str, Any]) -> dict[str, Any]:
    params["connection_class"] = _reconnect_on_noreplicas(params["connection_class"])
    return params


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        _require_open(self)
        params = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]  # kombu
        return _reconnecting(params)


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(kombu_redis.SentinelChannel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        _require_open(self)
        params = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]  # kombu
        return _reconnecting(params)


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def register() -> None:
    """Point kombu's `redis`, `rediss` and `sentinel` schemes at the transports above (kombu's
    own registry: idempotent, and every Celery app and publisher of the process shares it)."""
    TRANSPORT_ALIASES.update(
        {
            "redis": f"{__name__}:Transport",
            "rediss": f"{__name__}:Transport",
            "sentinel": f"{__name__}:SentinelTransport",
        }
    )
