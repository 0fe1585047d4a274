"""Which broker carries the Celery messages, and what each one needs from Celery.

Three kinds, told apart by `JETTI_RELAY_BROKER_URL`'s scheme:
- `redis` (redis://, rediss://, unix://; the default: the ledger's own Redis). Kombu's
  visibility timeout redelivers what a lost worker held.
- `sentinel` (sentinel://host:port;sentinel://...; derived from `JETTI_RELAY_REDIS_SENTINELS`
  when no broker URL is set). The same transport, finding the primary through the sentinels.
- `amqp` (amqp://, amqps://, pyamqp://): RabbitMQ. The orders queue is a quorum queue (replicated,
  durable, with a delivery counter), declared the same way by every publisher and consumer, with
  an explicit `x-delivery-limit`; publishes wait for the broker's confirm. RabbitMQ's
  `consumer_timeout` takes the place of the visibility timeout.

Whatever the broker, the ledger stays in Redis and the sweeper re-publishes any order whose
message was lost: the broker decides how soon an order moves, never whether.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

BrokerKind = Literal["redis", "sentinel", "amqp"]

_KINDS: dict[str, BrokerKind] = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "sentinel": "sentinel",
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
}


def broker_kind(url: str) -> BrokerKind | None:
    """The kind of broker `url` names, or None for a scheme the relay does not support."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return _KINDS.get(scheme)


@dataclass(frozen=True)
class BrokerOptions:
    """What differs between brokers in the Celery configuration (`publishing_conf` applies it):
    the sentinel master and password for `sentinel`, the delivery limit for `amqp`."""

    kind: BrokerKind = "redis"
    sentinel_master: str = "mymaster"
    sentinel_password: str = ""
    delivery_limit: int = 20

    def transport_options(
        self, *, connect_timeout_s: float, socket_timeout_s: float
    ) -> dict[str, Any]:
        """Kombu's `broker_transport_options` beyond the visibility timeout."""
        if self.kind == "amqp":
            # py-amqp: wait for the broker's confirm of every publish (a publish the broker
            # did not take raises instead of vanishing), and give up connecting in time.
            return {"confirm_publish": True, "connect_timeout": connect_timeout_s}
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
        }
        if self.kind == "sentinel":
            sentinel_kwargs: dict[str, Any] = {
                "socket_timeout": socket_timeout_s,
                "socket_connect_timeout": connect_timeout_s,
            }
            if self.sentinel_password:
                sentinel_kwargs["password"] = self.sentinel_password
            options["master_name"] = self.sentinel_master
            options["sentinel_kwargs"] = sentinel_kwargs
        return options

    def queue_arguments(self) -> dict[str, Any] | None:
        """The orders queue's declaration arguments on RabbitMQ (None elsewhere): a quorum
        queue with an explicit delivery limit. Every declaration must carry the same ones, or
        RabbitMQ refuses it (PRECONDITION_FAILED)."""
        if self.kind != "amqp":
            return None
        return {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit}
