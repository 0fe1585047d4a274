"""Scenario `rabbitmq`: the RabbitMQ broker restarted while orders flow (issue 15).

With `JETTI_RELAY_BROKER_URL=amqp://...` the Celery messages live in a RabbitMQ quorum queue and
the orders in the Redis ledger. Restarting the broker must cost time only: a graceful stop
syncs the queue and closes the connections; a kill -9 loses whatever the broker had not
written, and Celery's connections die without a goodbye. Either way the same worker processes
reconnect by themselves, a message the broker lost or a producer could not publish leaves its
order PENDING in the ledger, and the sweeper re-publishes it. The books: 0 lost, 0 harmful
duplicates (a message redelivered after a restart finds its order already settled).
"""

from __future__ import annotations

import time

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster
from ops.chaos.flow import Producer, ScenarioResult, record, stream
from ops.chaos.flow import raw_order as chaos_order
from ops.chaos.scenarios import Scale, finish, join_producer, start_workers

# Scenario number in `jetti-relay chaos` (issue 15's RabbitMQ scenario).
NUMBER = 17
# How long the broker stays down between stop and start.
DOWN_S = 1.0
# Longest wait for a probe order sent right after a restart (reconnect + sweeper at worst).
PROBE_TIMEOUT_S = 60.0


def rabbitmq_restart(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Restart RabbitMQ gracefully, then kill -9 it and start it again, while orders flow; the
    workers must resume by themselves (same processes). Figures: how long the broker was down
    each time, and how soon after it came back an order enqueued then was settled."""
    node = cluster.rabbitmq
    if node is None:
        # `run_all` gives this scenario a cluster of its own on amqp; a caller that passes a
        # Redis-broker cluster made a mistake, and a silent pass would hide it.
        raise ValueError("scenario rabbitmq needs a Cluster(broker='amqp')")
    cluster.sandbox.set_faults(latency_ms=50)
    workers = start_workers(cluster, scale)
    pids = [w.process.pid for w in workers]
    books = Books()
    producer = Producer(
        cluster,
        books,
        stream("rabbit", scale.orders),
        chunk=4,
        interval_s=scale.fault_s / max(1, scale.orders // 4),
    )
    producer.start()
    figures: dict[str, object] = {}
    for kill, label in ((False, "graceful"), (True, "kill9")):
        time.sleep(scale.fault_s / 3)
        figures[f"{label}_down_s"] = round(node.restart(kill=kill, down_s=DOWN_S), 1)
        figures[f"{label}_resume_s"] = _probe(cluster, books, f"probe-{label}")
    fault_end = join_producer(producer, time.time())
    cluster.sandbox.set_faults(latency_ms=0)
    result = finish(
        NUMBER, "RabbitMQ restart (graceful, kill -9)", cluster, books, fault_end, **figures
    )
    if [w.process.pid for w in workers if w.alive()] != pids:
        result.failures.append("a worker process died with RabbitMQ")
    for label in ("graceful", "kill9"):
        if figures[f"{label}_resume_s"] is None:
            result.failures.append(
                f"an order enqueued after the {label} restart was not settled within "
                f"{PROBE_TIMEOUT_S:.0f} s"
            )
    passes = cluster.worker_logs().count('"stuck_orders_republished"')
    result.figures["sweeper_republish_passes"] = passes
    return result


def _probe(cluster: Cluster, books: Books, key: str) -> float | None:
    """Enqueue one order right after the broker is back; the seconds until it is settled, or
    None after PROBE_TIMEOUT_S."""
    raw = chaos_order(key)
    started = time.time()
    record(books, [raw], {r.position for r in cluster.enqueue([raw]).rejections})
    settled_at = cluster.wait_settled([key], PROBE_TIMEOUT_S)
    return None if settled_at is None else round(settled_at - started, 2)
