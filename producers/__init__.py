"""Producers: validate raw orders at the edge and enqueue them for the worker.

This is the public Python API of the producer library, what an upstream Python service imports
(documented in docs/producers.md): everything in `__all__`, and nothing else from `producers`.

    from producers import connect, enqueue

    relay = connect()  # the JETTI_RELAY_* settings, as the worker reads them
    summary = enqueue(raw_orders, **relay.kwargs(), id_prefix="shop-a:")

`enqueue` validates each raw order against the contract, writes it to the ledger, then publishes
the keys that need work; it returns an `EnqueueSummary` (counts, `Rejection`s, `Ignored` copies)
and raises `EnqueueInterrupted` when Redis or the broker fails part-way (calling it again with the
same orders is safe), or its subclass `ReplicationUnconfirmed` when the orders are recorded on the
Redis primary but fewer replicas than JETTI_RELAY_MIN_REPLICAS_ACK confirmed them in time (send
them again). `connect` builds its keyword arguments from the relay's settings (a Redis
client with timeouts, a publish-only broker connection that never imports the worker's Celery
app, the configured key prefix and rules) as a `Relay`. The other names are the types those
carry (`RecordOutcome`, `Problem`) and what its keyword arguments take (`Publisher` or any
`KeyPublisher`, `Keys`, `Rules` from `load_rules`).
"""

from producers.connect import Relay, connect
from producers.enqueue import (
    EnqueueInterrupted,
    EnqueueSummary,
    Ignored,
    Rejection,
    ReplicationUnconfirmed,
    enqueue,
)
from worker.core.errors import Problem
from worker.core.keys import Keys
from worker.core.ports import KeyPublisher
from worker.core.records import RecordOutcome
from worker.core.rules import Rules, load_rules
from worker.publisher import Publisher

__all__ = [
    "EnqueueInterrupted",
    "EnqueueSummary",
    "Ignored",
    "KeyPublisher",
    "Keys",
    "Problem",
    "Publisher",
    "RecordOutcome",
    "Rejection",
    "Relay",
    "ReplicationUnconfirmed",
    "Rules",
    "connect",
    "enqueue",
    "load_rules",
]
