"""Which broker carries the Celery messages, and what each one needs from Celery.

Three kinds, told apart by `JETTI_RELAY_BROKER_URL`'s scheme:
- `redis` (redis://, rediss://, unix://; the default: the ledger's own Redis). Kombu's
  visibility timeout redelivers what a lost worker held.
- `sentinel` (sentinel://host:port;sentinel://...; derived from `JETTI_RELAY_REDIS_SENTINELS`
  when no broker URL is set). The same transport, finding the primary through the sentinels.
- `amqp` (amqp://, amqps://, pyamqp://): RabbitMQ. The orders queue is a quorum queue (replicated,
  durable, with a delivery counter), declared the same way by every publisher and consumer, with
  an explicit `x-delivery-limit`; publishes wait for the broker's confirm. RabbitMQ's
  `consumer_timeout` takes the place of the visibility timeout: the broker closes the channel
  of a consumer that holds a delivery unacknowledged longer (the hard time limit must stay
  below it, `check_timeouts`), and the message goes back to the queue. A message redelivered
  more than `x-delivery-limit` times (a crash loop) is dropped by RabbitMQ; the ledger's
  `worker_lost` markers dead-letter such an order first, and the sweeper re-publishes anything
  else a drop leaves PENDING.

Whatever the broker, the ledger stays in Redis and the sweeper re-publishes any order whose
message was lost: the broker decides how soon an order moves, never whether.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from worker.core.keys import ORDERS_QUEUE as DEFAULT_ORDERS_QUEUE

BrokerKind = Literal["redis", "sentinel", "amqp"]

# The schemes the relay runs on, and their kind (`broker_kind`); the settings refuse any other.
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


def supported_schemes() -> str:
    """The broker URL schemes the relay accepts, for error messages: `redis://, rediss://...`."""
    return ", ".join(f"{scheme}://" for scheme in _KINDS)


@dataclass(frozen=True)
class BrokerOptions:
    """What differs between brokers in the Celery configuration (`publishing_conf` applies it):
    the sentinel master and password for `sentinel`, the delivery limit for `amqp`."""

    kind: BrokerKind = "redis"
    sentinel_master: str = "mymaster"
    sentinel_password: str = ""
    delivery_limit: int = 20

    def transport_options(
        self, *, connect_timeout_s: float, socket_timeout_s: float, publish_only: bool
    ) -> dict[str, Any]:
        """Kombu's `broker_transport_options` beyond the visibility timeout.

        `publish_only` is True for an app that never consumes (`Publisher.from_broker_url`):
        on amqp its sockets then give up on a read or write after `socket_timeout_s`, so a
        publish waiting for its confirm on a silent connection raises (`socket.timeout`, an
        OSError) within bounded time. The worker's consuming app passes False."""
        if self.kind == "amqp":
            # py-amqp: wait for the broker's confirm of every publish (a publish the broker
            # did not take raises instead of vanishing), and give up connecting in time. The
            # connect timeout bounds the handshake too; only a read or write after it can hang.
            amqp: dict[str, Any] = {"confirm_publish": True, "connect_timeout": connect_timeout_s}
            if publish_only:
                # SO_RCVTIMEO/SO_SNDTIMEO: a confirm the broker never sends (a half-open
                # connection) would otherwise block until TCP keepalive (2 h). Not on the
                # worker's app: its connections are read by Celery's event loop and its
                # heartbeats, which no read timeout was proven safe with.
                amqp["read_timeout"] = socket_timeout_s
                amqp["write_timeout"] = socket_timeout_s
            return amqp
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
            # The consumer's BRPOP is read by the event loop, where no socket timeout applies:
            # kombu drops it only once its reply is overdue by this interval, checked as often
            # (25 s by default, so ~51 s). A primary that went silent without a reset (a
            # partition, a frozen host) then held the consumer that long after the sentinels
            # had promoted a replica; this holds the BRPOP to the socket timeout (chaos 16).
            "health_check_interval": max(1, math.ceil(socket_timeout_s)),
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

    def celery_conf(self, queue: str) -> dict[str, Any]:
        """Celery settings this kind needs beyond the transport options, for the deployment
        whose orders queue is `queue`.

        On RabbitMQ the worker's remote control (`health`'s ping, `celery inspect`) and its
        events (Flower) travel through exchanges every deployment on the vhost shares; a
        deployment with its own key prefix (its own queue) gets its own, so its health check
        never counts another deployment's workers. Quorum queues take no global QoS: Celery
        detects them from `task_queues` and applies the prefetch per consumer (named here so a
        change of Celery's default cannot bring back a refused `basic.qos(global=True)`)."""
        if self.kind != "amqp":
            return {}
        conf: dict[str, Any] = {"worker_detect_quorum_queues": True}
        if queue != DEFAULT_ORDERS_QUEUE:
            conf["control_exchange"] = f"{queue}.control"
            conf["event_exchange"] = f"{queue}.events"
        return conf

    def queue_arguments(self) -> dict[str, Any] | None:
        """The orders queue's declaration arguments on RabbitMQ (None elsewhere): a quorum
        queue with an explicit delivery limit. Every declaration must carry the same ones, or
        RabbitMQ refuses it (PRECONDITION_FAILED)."""
        if self.kind != "amqp":
            return None
        return {"x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit}
