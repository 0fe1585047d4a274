"""Scenarios about recovery paths: rolling restarts (8), bad input at scale (9) and orders whose
message never reached the queue or was flushed from it (10)."""

from __future__ import annotations

import json
import time
from collections import Counter

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster, WorkerProcess
from ops.chaos.flow import Producer, ScenarioResult, record, stream
from ops.chaos.scenarios import VISIBILITY_TIMEOUT_S, Scale, finish, join_producer, pool_pids
from worker.core.contract import parse_raw_order
from worker.core.jsonio import loads_document
from worker.store.ledger import NewVersion


# --- 8 ---------------------------------------------------------------------------------------
def rolling_restart(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """SIGTERM every worker in turn while orders flow, starting its replacement after it exits.

    A warm shutdown finishes the running task and hands unstarted messages back, so nothing has
    to wait for the visibility timeout or for the sweeper's SUBMITTING threshold."""
    cluster.sandbox.set_faults(latency_ms=100)
    count = max(2, scale.workers)
    workers = [cluster.start_worker(concurrency=scale.concurrency) for _ in range(count)]
    books = Books()
    producer = Producer(cluster, books, stream("roll", scale.orders), chunk=3, interval_s=0.3)
    producer.start()
    shutdowns: list[float] = []
    for worker in workers:
        time.sleep(0.5)
        shutdowns.append(worker.stop())
        cluster.start_worker(concurrency=scale.concurrency)
    fault_end = join_producer(producer, time.time())
    cluster.sandbox.set_faults(latency_ms=0)
    result = finish(
        8,
        "rolling restart (SIGTERM each)",
        cluster,
        books,
        fault_end,
        restarts=len(shutdowns),
        slowest_shutdown_s=round(max(shutdowns), 1),
    )
    if result.recover_s is not None and result.recover_s >= VISIBILITY_TIMEOUT_S:
        result.failures.append(
            f"recovery took {result.recover_s:.1f} s: something waited for the visibility timeout"
        )
    swept = cluster.worker_logs().count('"state":"submitting"')
    if swept:
        result.failures.append(f"the sweeper had to rescue SUBMITTING orders {swept} times")
    return result


# --- 9 ---------------------------------------------------------------------------------------
def bad_input(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Hostile raw orders (hypothesis): most through the producer, which must reject them at the
    edge with a reason; one in ten written straight to the ledger, which the worker must
    dead-letter. No worker process crashes, nothing stalls, every dead letter says why."""
    from ops.chaos.hostile import hostile_orders

    workers = [cluster.start_worker(concurrency=scale.concurrency)]
    pool_before = _pool(workers)
    generated = hostile_orders(scale.hostile)
    books = Books()
    edge = [h.raw for h in generated if not h.bypass]
    bypass = [h.raw for h in generated if h.bypass]
    started = time.time()
    reasons: Counter[str] = Counter()
    for chunk_start in range(0, len(edge), 500):
        raws = edge[chunk_start : chunk_start + 500]
        summary = cluster.enqueue(raws)
        for rejection in summary.rejections:
            reasons["edge: " + _first_words(rejection.describe())] += 1
            if not rejection.problems:
                reasons["edge rejection without a reason"] += 1
        record(books, raws, {r.position for r in summary.rejections})
    items = [
        NewVersion(f"bypass-{n}", _with_id(raw, f"bypass-{n}"), None, None)
        for n, raw in enumerate(bypass)
    ]
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        cluster.ledger.record_many(chunk, now=time.time())
        cluster.publisher.publish([i.order_key for i in chunk])
        for item in chunk:
            books.accept(item.order_key, item.raw)
    result = finish(
        9,
        "bad input at scale",
        cluster,
        books,
        started,
        generated=len(generated),
        rejected_at_edge=books.rejected_at_edge,
        bypassed_edge=len(bypass),
    )
    for key in books.keys:
        dead = cluster.dead.get(key)
        if dead is not None and not dead.error.strip():
            result.failures.append(f"{key}: dead letter without a reason")
    if _pool(workers) != pool_before:
        result.failures.append("a worker pool process died (crash) during the scenario")
    if "Traceback" in cluster.worker_logs() or "order_handling_failed" in cluster.worker_logs():
        result.failures.append("the worker logged an unhandled exception")
    return result


def _with_id(raw: bytes, key: str) -> bytes:
    """The raw order with `id` set to its ledger key when it is a readable JSON object, as a
    writer that skips validation would still key it; unreadable bytes stay as they are."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    if not isinstance(doc, dict):
        return raw
    doc["id"] = key
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def _first_words(text: str) -> str:
    return text.split(":")[0][:40]


def _pool(workers: list[WorkerProcess]) -> set[int]:
    return set().union(*(pool_pids(w) for w in workers))


# --- 10 --------------------------------------------------------------------------------------
def lost_messages(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Half the orders are written to the ledger and their message is never sent (a producer
    crash in between); the other half are enqueued and then the queue is flushed. Workers start
    afterwards: the sweeper must find every order."""
    books = Books()
    lost = stream("nomsg", scale.orders // 2)
    for key, raw in lost:
        updated_at = parse_raw_order(loads_document(raw)).updated_at
        cluster.ledger.record(NewVersion(key, raw, updated_at, None), now=time.time())
        books.accept(key, raw)
    flushed = stream("flushed", scale.orders - scale.orders // 2)
    raws = [raw for _k, raw in flushed]
    record(books, raws, {r.position for r in cluster.enqueue(raws).rejections})
    dropped = cluster.drop_queued_messages()
    fault_end = time.time()
    cluster.start_worker(concurrency=scale.concurrency)
    result = finish(
        10,
        "lost message and flushed queue",
        cluster,
        books,
        fault_end,
        orders_without_message=len({k for k, _ in lost}),
        messages_flushed=dropped,
    )
    return result
