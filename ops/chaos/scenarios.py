"""The chaos scenarios. Each takes a started `Cluster` (emptied first) and a `Scale`, breaks
something while orders flow, waits for the pipeline to settle and checks the books.

Scenario-specific checks go to `ScenarioResult.failures`; the books (lost, duplicates,
regressions) are checked the same way for all of them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ops.chaos.books import Books
from ops.chaos.cluster import CHAOS_ENV, Cluster, WorkerProcess
from ops.chaos.flow import Producer, ScenarioResult, raw_order, record, settle, stream

# Longest wait for a scenario to settle after its fault ends. A killed submission needs the
# sweeper's SUBMITTING threshold (hard limit 8 s + 30 s margin in CHAOS_ENV) plus a retry or two.
SETTLE_TIMEOUT_S = 120.0
VISIBILITY_TIMEOUT_S = float(CHAOS_ENV["JETTI_RELAY_VISIBILITY_TIMEOUT_S"])
# 429 answers closer together than this belong to one wave (requests sent as a block ended).
WAVE_GAP_S = 0.5


@dataclass(frozen=True)
class Scale:
    """How big a run is: `ci` for the test suite, `full` for `jetti-relay chaos`."""

    orders: int
    kills: int
    hostile: int
    fault_s: float
    workers: int
    concurrency: int

    def times(self, factor: float) -> Scale:
        return Scale(
            orders=max(1, int(self.orders * factor)),
            kills=self.kills,
            hostile=max(1, int(self.hostile * factor)),
            fault_s=self.fault_s,
            workers=self.workers,
            concurrency=self.concurrency,
        )


CI_SCALE = Scale(orders=40, kills=3, hostile=1000, fault_s=3.0, workers=1, concurrency=2)
FULL_SCALE = Scale(orders=400, kills=10, hostile=10_000, fault_s=8.0, workers=2, concurrency=2)


def start_workers(cluster: Cluster, scale: Scale) -> list[WorkerProcess]:
    return [cluster.start_worker(concurrency=scale.concurrency) for _ in range(scale.workers)]


def finish(
    number: int, name: str, cluster: Cluster, books: Books, fault_end: float, **figures: object
) -> ScenarioResult:
    report, recover_s = settle(cluster, books, fault_end=fault_end, timeout_s=SETTLE_TIMEOUT_S)
    result = ScenarioResult(number, name, report, recover_s, figures=dict(figures))
    if recover_s is None:
        result.failures.append(f"not settled {SETTLE_TIMEOUT_S:.0f} s after the fault ended")
    return result


def join_producer(producer: Producer, fault_end: float = 0.0) -> float:
    """Wait for the producer; returns when recovery is measured from: the later of the fault's
    end and the last enqueue (orders still arriving are not a slow recovery)."""
    producer.join(timeout=SETTLE_TIMEOUT_S)
    if producer.error is not None:
        raise RuntimeError(f"producer failed: {producer.error!r}") from producer.error
    return max(fault_end, producer.finished_at)


def pool_pids(worker: WorkerProcess) -> set[int]:
    """PIDs of the Celery pool processes of one worker we started (grandchildren)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    pairs = [tuple(int(x) for x in line.split()) for line in out.splitlines()[1:] if line.strip()]
    children = {pid for pid, ppid in pairs if ppid == worker.process.pid}
    return {pid for pid, ppid in pairs if ppid in children}


# --- 1 ---------------------------------------------------------------------------------------
def kill_submitting_worker(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """kill -9 the pool process in the middle of a submission, repeatedly, while orders flow.

    Jetti applies each import at once and answers 0.5 s later, so a kill lands after Jetti has
    the order and before the ledger knows: the resend after recovery is unavoidable (and
    harmless, an identical upsert)."""
    cluster.sandbox.set_faults(slow_rate=1.0, slow_s=0.5)
    workers = start_workers(cluster, scale)
    books = Books()
    producer = Producer(cluster, books, stream("kill", scale.orders), chunk=4, interval_s=0.3)
    producer.start()
    kills = 0
    # Kill only while orders flow: a kill after that would hit a delivery the sweeper started
    # and add a second sweeper cycle to the run without testing anything new.
    while kills < scale.kills and producer.is_alive():
        ours = set().union(*(pool_pids(w) for w in workers))
        targets = [pid for pid in cluster.submitting_pids() if pid in ours]
        if targets:
            os.kill(targets[0], signal.SIGKILL)
            kills += 1
            time.sleep(0.5)
        else:
            time.sleep(0.05)
    fault_end = join_producer(producer, time.time())
    cluster.sandbox.set_faults(slow_rate=0.0)
    result = finish(1, "kill -9 mid-submission", cluster, books, fault_end, kills=kills)
    if kills < scale.kills:
        result.failures.append(f"only {kills} of {scale.kills} kills hit a submission")
    return result


# --- 2 ---------------------------------------------------------------------------------------
def redis_restart(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Restart Redis (AOF, everysec) gracefully, then with kill -9, while orders flow; workers
    must resume by themselves (same processes, no restart)."""
    cluster.sandbox.set_faults(latency_ms=50)
    workers = start_workers(cluster, scale)
    pids = [w.process.pid for w in workers]
    books = Books()
    producer = Producer(
        cluster,
        books,
        stream("redis", scale.orders),
        chunk=4,
        interval_s=scale.fault_s / max(1, scale.orders // 4),
    )
    producer.start()
    time.sleep(scale.fault_s / 3)
    cluster.redis.restart(kill=False, down_s=0.5)
    time.sleep(scale.fault_s / 3)
    cluster.redis.restart(kill=True, down_s=0.5)
    fault_end = join_producer(producer, time.time())
    cluster.sandbox.set_faults(latency_ms=0)
    result = finish(2, "Redis restart (graceful, kill -9)", cluster, books, fault_end, restarts=2)
    if [w.process.pid for w in workers if w.alive()] != pids:
        result.failures.append("a worker process died with Redis")
    result.figures["celery_restarted"] = cluster.worker_logs().count("starting it again")
    return result


# --- 3 ---------------------------------------------------------------------------------------
def jetti_outage(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Every request fails (503 or a dropped connection) for `fault_s`, then Jetti recovers."""
    start_workers(cluster, scale)
    cluster.sandbox.set_faults(error_rate=1.0, error_statuses=[503], drop_rate=0.5)
    books = Books()
    producer = Producer(
        cluster,
        books,
        stream("outage", scale.orders),
        chunk=10,
        interval_s=scale.fault_s / max(1, scale.orders // 10),
    )
    producer.start()
    time.sleep(scale.fault_s)
    cluster.sandbox.set_faults(error_rate=0.0, drop_rate=0.0)
    fault_end = join_producer(producer, time.time())
    requests = cluster.sandbox.stats()["requests"].get("async", {})
    return finish(
        3,
        "Jetti outage (503 / dropped)",
        cluster,
        books,
        fault_end,
        failed_requests=requests.get("503", 0) + requests.get("dropped", 0),
    )


# --- 4 ---------------------------------------------------------------------------------------
def throttle_storm(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Every request answers 429 with Retry-After: 1 for `fault_s`: the fleet pauses as told and
    spends no attempt; nothing is dead-lettered."""
    start_workers(cluster, scale)
    cluster.sandbox.set_faults(rate_429=1.0, retry_after_s=1)
    books = Books()
    items = stream("storm", scale.orders)
    record(
        books,
        [raw for _k, raw in items],
        {r.position for r in cluster.enqueue([raw for _k, raw in items]).rejections},
    )
    time.sleep(scale.fault_s)
    cluster.sandbox.set_faults(rate_429=0.0)
    fault_end = time.time()
    throttled = cluster.sandbox.stats()["requests"].get("async", {}).get("429", 0)
    result = finish(
        4, "429 storm with Retry-After", cluster, books, fault_end, responses_429=throttled
    )
    spent = sum(e.attempts for k in books.keys if (e := cluster.ledger.get(k)) is not None)
    if spent:
        result.failures.append(f"{spent} attempts spent on 429s")
    if result.books.dead_lettered:
        result.failures.append(f"{result.books.dead_lettered} orders dead-lettered by 429s")
    # Once blocked, nobody asks before Retry-After: the 429s come in waves (one when each block
    # ends) at least Retry-After apart, so at most one wave per second of storm, plus the first.
    times = sorted(a.at for k in books.keys for a in cluster.ledger.attempts(k) if a.status == 429)
    waves = [[t] for t in times[:1]]
    for t in times[1:]:
        if t - waves[-1][-1] > WAVE_GAP_S:
            waves.append([t])
        else:
            waves[-1].append(t)
    bound = int(scale.fault_s) + 2
    result.figures.update(waves_429=len(waves), largest_wave=max(map(len, waves), default=0))
    if len(waves) > bound:
        result.failures.append(
            f"{len(waves)} waves of 429s in a {scale.fault_s:g} s storm with "
            f"Retry-After 1 s (at most {bound}): the fleet did not wait"
        )
    return result


# --- 5 ---------------------------------------------------------------------------------------
def slow_responses(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """A third of the answers come after 2.5 s, past the 1 s read timeout: the outcome is
    unknown, the order is retried with the same payload and ends in exactly one final state."""
    start_workers(cluster, scale)
    cluster.sandbox.set_faults(slow_rate=0.3, slow_s=2.5)
    books = Books()
    producer = Producer(
        cluster,
        books,
        stream("slow", scale.orders),
        chunk=5,
        interval_s=scale.fault_s / max(1, scale.orders // 5),
    )
    producer.start()
    time.sleep(scale.fault_s)
    join_producer(producer)
    cluster.sandbox.set_faults(slow_rate=0.0)
    fault_end = time.time()
    result = finish(5, "responses slower than the timeout", cluster, books, fault_end)
    unknown = sum(
        1
        for k in books.keys
        for a in cluster.ledger.attempts(k)
        if a.error_class == "OutcomeUnknown"
    )
    result.figures["unknown_outcomes"] = unknown
    if unknown == 0:
        result.failures.append("no timeout happened; the scenario tested nothing")
    return result


# --- 6 ---------------------------------------------------------------------------------------
def duplicates_and_reordering(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Two producers enqueue the same three versions of every order at once, one in order and
    one shuffled (older versions arrive late); a third thread publishes duplicate messages."""
    start_workers(cluster, scale)
    cluster.sandbox.set_faults(latency_ms=20)
    keys = [f"dup-{n}" for n in range(scale.orders)]
    in_order = [(k, raw_order(k, v)) for v in (1, 2, 3) for k in keys]
    shuffled = list(in_order)
    random.Random(6).shuffle(shuffled)
    books = Books()
    lock = threading.Lock()
    producers = [
        Producer(cluster, books, items, chunk=7, interval_s=0.02, lock=lock)
        for items in (in_order, shuffled)
    ]
    for producer in producers:
        producer.start()
    rng = random.Random(7)
    duplicates = 0
    while any(p.is_alive() for p in producers):
        batch = rng.sample(keys, min(5, len(keys)))
        cluster.publisher.publish(batch + batch[::-1])
        duplicates += 2 * len(batch)
        time.sleep(0.05)
    for producer in producers:
        join_producer(producer)
    fault_end = time.time()
    stale = sum(e.stale_arrivals for k in keys if (e := cluster.ledger.get(k)) is not None)
    cluster.sandbox.set_faults(latency_ms=0)
    result = finish(
        6,
        "duplicate and reordered messages",
        cluster,
        books,
        fault_end,
        duplicate_messages=duplicates,
        stale_versions_ignored=stale,
    )
    return result


ScenarioFn = Callable[[Cluster, Scale], ScenarioResult]
