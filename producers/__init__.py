"""Producers: validate raw orders at the edge and enqueue them for the worker.

This is the public Python API of the producer library, what an upstream Python service imports
(documented in docs/producers.md): everything in `__all__`, and nothing else from `producers`.

    import redis
    from producers import Publisher, enqueue
    from worker.celery_app import create_app

    summary = enqueue(
        raw_orders,
        client=redis.Redis.from_url("redis://127.0.0.1:6379/0"),
        publisher=Publisher(create_app()),
        id_prefix="shop-a:",
    )

`enqueue` validates each raw order against the contract, writes it to the ledger, then publishes
the keys that need work; it returns an `EnqueueSummary` (counts, `Rejection`s, `Ignored` copies)
and raises `EnqueueInterrupted` when Redis or the broker fails part-way (calling it again with the
same orders is safe). The other names are the types those carry (`RecordOutcome`, `Problem`) and
what its keyword arguments take (`Publisher` or any `KeyPublisher`, `Keys`, `Rules` from
`load_rules`).
"""

from producers.enqueue import EnqueueInterrupted, EnqueueSummary, Ignored, Rejection, enqueue
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
    "Rules",
    "enqueue",
    "load_rules",
]
