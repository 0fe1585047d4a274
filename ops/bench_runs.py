"""The benchmark's measurements, each on fresh private services (`ops/services.py`).

- `measure_enqueue`: orders/s through `producers.enqueue` into an idle Redis.
- `measure_ours`: the real pipeline (producer, Redis, `jetti-relay worker` processes with task
  events, the sandbox over HTTP in its own process), flat out, then paced at a given rate.
- `measure_naive`: the same orders through a one-task-per-order Celery app (`ops/bench_naive.py`).
- `measure_loop`: a plain sequential httpx loop, the ceiling of a single client.
- `measure_memory`: worker RSS after 10% and 100% of a long run.

Throughput runs from the first enqueue to the last sale the sandbox recorded (`createdAt` of its
last import row, which is when the request was accepted); latency is enqueue (the ledger's
`enqueued_at`, or the send time for the baselines) to that acceptance.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ops.bench_enqueue import make_order
from ops.services import (
    SandboxService,
    ServiceError,
    Services,
    pipeline_env,
    tree_memory_kb,
    wait_for,
)

# Polling the sandbox's counters while a run is in flight (`wait=0` never stalls it).
POLL_S = 0.1
# A run that delivers nothing new for this long is stuck: report what it has.
STALL_TIMEOUT_S = 60.0
# The long run keeps at most this many orders waiting, as a steady producer would.
LONG_RUN_BACKLOG = 5_000
# Worker memory may grow this much between 10% and 100% of the long run and still count as flat.
MEMORY_GROWTH_LIMIT = 0.10


@dataclass(frozen=True)
class RunConfig:
    """What every run shares."""

    folder: Path
    lines: int
    processes: int
    workers: int
    submit_concurrency: int | None
    batch_size: int | None
    # Process group ids of everything started, so callers can check that none is left.
    pids: list[int] = field(default_factory=list)


def orders(start: int, count: int, lines: int) -> list[bytes]:
    """`count` raw orders (JSON bytes) with ids `bench-<start>` ... and `lines` lines each."""
    return [make_order(n, lines).replace(b'"id": "', b'"id": "bench-', 1)
            for n in range(start, start + count)]


def payloads(bodies: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """(externalId, Jetti payload bytes) for each raw order, built by our pure transform."""
    from worker.contract import parse_raw_order
    from worker.jsonio import loads_document
    from worker.rules import Rules
    from worker.transform import transform

    rules = Rules.empty()
    out = []
    for body in bodies:
        order = parse_raw_order(loads_document(body))
        out.append((str(order.id), transform(order, rules).body))
    return out


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 (nearest rank) in seconds; None when there are no values."""
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


def _epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


class SandboxProbe:
    """Reads the sandbox's own records."""

    def __init__(self, sandbox: SandboxService) -> None:
        self.base = sandbox.base_url
        self.http = httpx.Client(base_url=self.base, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def stats(self, *, wait: bool = True) -> dict[str, Any]:
        params = {} if wait else {"wait": "0"}
        result: dict[str, Any] = self.http.get("/_sandbox/stats", params=params).json()
        return result

    def accepted(self) -> int:
        """Imports applied successfully so far (no wait)."""
        return int(self.stats(wait=False)["imports"]["success"])

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def import_times(self) -> dict[str, float]:
        """externalId -> epoch time of its first successful import (when Jetti accepted it)."""
        times: dict[str, float] = {}
        offset = 0
        while True:
            rows = self.http.get("/_sandbox/imports", params={
                "offset": offset, "limit": 1000, "where[status]": "success"}).json()
            for row in rows:
                times.setdefault(str(row["externalId"]), _epoch(row["createdAt"]))
            if len(rows) < 1000:
                return times
            offset += len(rows)

    def wait_accepted(self, target: int, *, budget_s: float | None = None) -> bool:
        """Wait until `target` imports succeeded; False when the budget ran out or nothing new
        arrived for STALL_TIMEOUT_S."""
        started = last_change = time.monotonic()
        seen = -1
        while True:
            count = self.accepted()
            if count >= target:
                return True
            now = time.monotonic()
            if count != seen:
                seen, last_change = count, now
            if now - last_change > STALL_TIMEOUT_S:
                return False
            if budget_s is not None and now - started > budget_s:
                return False
            time.sleep(POLL_S)


def _throughput(first_at: float, accepted_at: dict[str, float]) -> tuple[float, float]:
    """(seconds, orders/s) from `first_at` to the last acceptance."""
    if not accepted_at:
        return 0.0, 0.0
    seconds = max(accepted_at.values()) - first_at
    return seconds, (len(accepted_at) / seconds if seconds > 0 else 0.0)


def _redis_memory(url: str, pid: int) -> dict[str, int]:
    import redis

    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    info = client.info("memory")
    client.close()
    return {
        "used_memory_peak_kb": int(info["used_memory_peak"]) // 1024,
        "used_memory_kb": int(info["used_memory"]) // 1024,
        "vm_hwm_kb": tree_memory_kb(pid, "VmHWM"),
    }


def _enqueued_at(redis_url: str, keys: Sequence[str]) -> dict[str, float]:
    """The ledger's `enqueued_at` of each order (pipelined, one round trip per 1,000)."""
    import redis

    from worker.keys import Keys
    from worker.settings import DEFAULT_KEY_PREFIX

    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    ledger_keys = Keys(DEFAULT_KEY_PREFIX)
    out: dict[str, float] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hget(ledger_keys.order(key), "enqueued_at")
        for key, value in zip(chunk, pipe.execute(), strict=True):
            if value:
                out[key] = float(value)
    client.close()
    return out


def _ours_env(config: RunConfig, redis_url: str, sandbox: SandboxService) -> dict[str, str]:
    settings = {
        # The fleet limiter is sized for Jetti (10/s by default); here it must not be the cap.
        "JETTI_RELAY_RATE_PER_S": "1000000",
        "JETTI_RELAY_RATE_BURST": "1000000",
        "JETTI_RELAY_LOG_LEVEL": "WARNING",
    }
    if config.submit_concurrency is not None:
        settings["JETTI_RELAY_SUBMIT_CONCURRENCY"] = str(config.submit_concurrency)
    if config.batch_size is not None:
        settings["JETTI_RELAY_BATCH_SIZE"] = str(config.batch_size)
    return pipeline_env(redis_url, sandbox, **settings)


def _producer(redis_url: str, batch_size: int | None) -> tuple[Any, Any]:
    import redis

    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    settings = Settings(redis_url=redis_url, broker_url=redis_url)
    size = batch_size or settings.batch_size
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    return client, Publisher(create_app(settings), batch_size=size)


def measure_enqueue(config: RunConfig, count: int) -> dict[str, Any]:
    """Orders/s through the producer into a fresh Redis with no consumer."""
    from producers import enqueue

    services = Services(config.folder)
    try:
        redis_service = services.start_redis("enqueue-redis")
        bodies = orders(0, count, config.lines)
        client, publisher = _producer(redis_service.url, config.batch_size)
        started = time.perf_counter()
        summary = enqueue(bodies, client=client, publisher=publisher)
        seconds = time.perf_counter() - started
        client.close()
        return {"orders": count, "accepted": summary.accepted, "seconds": seconds,
                "rate": count / seconds}
    finally:
        services.stop()
        config.pids.extend(services.started)


def measure_ours(config: RunConfig, count: int, latency_ms: float,
                 rated_seconds: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Our pipeline flat out with `count` orders, then paced at half the rate it reached for
    `rated_seconds` (skipped when 0). Returns (flat-out run, paced run)."""
    from producers import enqueue

    services = Services(config.folder)
    try:
        redis_service = services.start_redis(f"ours-{latency_ms:g}-redis")
        sandbox = services.start_sandbox(f"ours-{latency_ms:g}-sandbox", latency_ms=latency_ms)
        env = _ours_env(config, redis_service.url, sandbox)
        workers = [services.start_worker(f"ours-{latency_ms:g}-w{i}", env,
                                         concurrency=config.processes)
                   for i in range(config.workers)]
        probe = SandboxProbe(sandbox)
        client, publisher = _producer(redis_service.url, config.batch_size)
        bodies = orders(0, count, config.lines)
        first_at = time.time()
        started = time.perf_counter()
        summary = enqueue(bodies, client=client, publisher=publisher)
        enqueue_s = time.perf_counter() - started
        complete = probe.wait_accepted(count)
        flat = _report(probe, redis_service.url, first_at, count, complete)
        flat["enqueue_rate"] = count / enqueue_s
        flat["accepted_by_producer"] = summary.accepted
        paced = None
        if rated_seconds > 0 and flat["throughput"] > 0:
            probe.reset()
            rate = flat["throughput"] / 2
            paced_count = max(1, int(rate * rated_seconds))
            paced_bodies = orders(count, paced_count, config.lines)
            first_at = time.time()
            _paced_enqueue(paced_bodies, rate, lambda chunk: enqueue(
                chunk, client=client, publisher=publisher))
            complete = probe.wait_accepted(paced_count)
            paced = _report(probe, redis_service.url, first_at, paced_count, complete)
            paced["target_rate"] = rate
        flat["peak_rss_kb"] = {
            "workers": sum(tree_memory_kb(w.pid, "VmHWM") for w in workers),
            "redis": _redis_memory(redis_service.url, redis_service.pid),
        }
        client.close()
        probe.close()
        return flat, paced
    finally:
        services.stop()
        config.pids.extend(services.started)


def _paced_enqueue(bodies: Sequence[bytes], rate: float,
                   send: Callable[[Sequence[bytes]], object]) -> None:
    """Send `bodies` at `rate` orders/s, in whatever is due every 10 ms."""
    started = time.monotonic()
    sent = 0
    while sent < len(bodies):
        due = min(len(bodies), int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            send(bodies[sent:due])
            sent = due
        time.sleep(0.01)


def _report(probe: SandboxProbe, redis_url: str, first_at: float, count: int,
            complete: bool) -> dict[str, Any]:
    stats = probe.stats()
    accepted_at = probe.import_times()
    enqueued_at = _enqueued_at(redis_url, sorted(accepted_at))
    latencies = [accepted_at[k] - enqueued_at[k] for k in accepted_at if k in enqueued_at]
    seconds, throughput = _throughput(first_at, accepted_at)
    return {
        "orders": count,
        "complete": complete,
        "delivered": len(accepted_at),
        "sandbox_sales": stats["sales"],
        "sandbox_versions": stats["versions_received"],
        "sandbox_duplicates": stats["duplicates"],
        "seconds": seconds,
        "throughput": throughput,
        "latency_s": percentiles(latencies),
    }


def measure_naive(config: RunConfig, count: int, latency_ms: float,
                  budget_s: float) -> dict[str, Any]:
    """The same orders through `ops/bench_naive.py`, same pool, processes and prefetch."""
    import os

    from ops import bench_naive

    services = Services(config.folder)
    try:
        redis_service = services.start_redis(f"naive-{latency_ms:g}-redis")
        sandbox = services.start_sandbox(f"naive-{latency_ms:g}-sandbox", latency_ms=latency_ms)
        built = payloads(orders(0, count, config.lines))
        workers = []
        for i in range(config.workers):
            ready = config.folder / f"naive-{latency_ms:g}-w{i}.ready"
            env = {
                **os.environ,
                bench_naive.BROKER_ENV: redis_service.url,
                bench_naive.TARGET_ENV: sandbox.webhook_url,
                bench_naive.HASH_ENV: sandbox.webhook_hash,
                bench_naive.READY_ENV: str(ready),
            }
            name = f"naive-{latency_ms:g}-w{i}"
            process = services.start(name, [
                sys.executable, "-m", "celery", "-A", "ops.bench_naive", "worker", "-E",
                "--pool", "prefork", "-c", str(config.processes), "--prefetch-multiplier", "1",
                "-Q", bench_naive.QUEUE, "-n", f"{name}@%h", "--loglevel", "WARNING"], env)
            wait_for(ready.exists, f"the naive worker {name}", process=process,
                     log=services.log_path(name))
            workers.append(process)
        from celery import Celery

        app = Celery("bench_naive_producer", broker=redis_service.url)
        app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
        probe = SandboxProbe(sandbox)
        sent_at: dict[str, float] = {}
        first_at = time.time()
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for external_id, body in built:
                sent_at[external_id] = time.time()
                app.send_task(bench_naive.TASK, args=[body.decode()], queue=bench_naive.QUEUE,
                              producer=producer)
        enqueue_s = time.perf_counter() - started
        complete = probe.wait_accepted(count, budget_s=budget_s)
        stats = probe.stats(wait=complete)
        accepted_at = probe.import_times()
        seconds, throughput = _throughput(first_at, accepted_at)
        latencies = [t - sent_at[k] for k, t in accepted_at.items() if k in sent_at]
        result = {
            "orders": count,
            "complete": complete,
            "delivered": len(accepted_at),
            "sandbox_sales": stats["sales"],
            "seconds": seconds,
            "throughput": throughput,
            "enqueue_rate": count / enqueue_s,
            "latency_s": percentiles(latencies),
            "peak_rss_kb": {"workers": sum(tree_memory_kb(w.pid, "VmHWM") for w in workers)},
        }
        probe.close()
        return result
    finally:
        services.stop()
        config.pids.extend(services.started)


def measure_loop(config: RunConfig, count: int, latency_ms: float,
                 budget_s: float) -> dict[str, Any]:
    """A plain sequential httpx loop (one keep-alive client) over the same payloads, for at
    most `count` orders or `budget_s` seconds."""
    services = Services(config.folder)
    try:
        sandbox = services.start_sandbox(f"loop-{latency_ms:g}-sandbox", latency_ms=latency_ms)
        built = payloads(orders(0, count, config.lines))
        probe = SandboxProbe(sandbox)
        latencies = []
        headers = {"jetti-webhook-hash": sandbox.webhook_hash,
                   "content-type": "application/json"}
        with httpx.Client(timeout=30.0) as http:
            started = time.perf_counter()
            for _external_id, body in built:
                sent = time.perf_counter()
                http.post(sandbox.webhook_url, content=body, headers=headers).raise_for_status()
                latencies.append(time.perf_counter() - sent)
                if time.perf_counter() - started > budget_s:
                    break
            seconds = time.perf_counter() - started
        stats = probe.stats()
        probe.close()
        return {
            "orders": len(latencies),
            "complete": len(latencies) == count,
            "delivered": int(stats["imports"]["success"]),
            "sandbox_sales": stats["sales"],
            "seconds": seconds,
            "throughput": len(latencies) / seconds,
            "latency_s": percentiles(latencies),
        }
    finally:
        services.stop()
        config.pids.extend(services.started)


def measure_memory(config: RunConfig, count: int) -> dict[str, Any]:
    """Worker RSS (VmRSS summed over every worker process tree) after 10% and after 100% of
    `count` orders, fed so that at most LONG_RUN_BACKLOG wait at a time; sandbox latency 0."""
    from producers import enqueue

    services = Services(config.folder)
    try:
        redis_service = services.start_redis("long-redis")
        sandbox = services.start_sandbox("long-sandbox")
        env = _ours_env(config, redis_service.url, sandbox)
        workers = [services.start_worker(f"long-w{i}", env, concurrency=config.processes)
                   for i in range(config.workers)]
        probe = SandboxProbe(sandbox)
        client, publisher = _producer(redis_service.url, config.batch_size)
        chunk = min(1000, max(1, count // 20))
        samples: dict[str, dict[str, int]] = {}
        sent = 0
        started = time.monotonic()
        last_progress, last_done = started, -1
        while True:
            done = probe.accepted()
            if "10%" not in samples and done >= count // 10:
                samples["10%"] = _memory_sample(workers, redis_service.url, redis_service.pid)
            if done >= count:
                samples["100%"] = _memory_sample(workers, redis_service.url, redis_service.pid)
                break
            if done != last_done:
                last_done, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                raise ServiceError(f"long run stalled at {done} of {count} orders")
            if sent < count and sent - done < LONG_RUN_BACKLOG:
                bodies = orders(sent, min(chunk, count - sent), config.lines)
                enqueue(bodies, client=client, publisher=publisher)
                sent += len(bodies)
            else:
                time.sleep(POLL_S)
        client.close()
        probe.close()
        at_10, at_100 = samples["10%"]["workers_rss_kb"], samples["100%"]["workers_rss_kb"]
        growth = (at_100 - at_10) / at_10 if at_10 else 0.0
        return {
            "orders": count,
            "seconds": time.monotonic() - started,
            "at_10pct": samples["10%"],
            "at_100pct": samples["100%"],
            "worker_growth": growth,
            "flat": growth <= MEMORY_GROWTH_LIMIT,
        }
    finally:
        services.stop()
        config.pids.extend(services.started)


def _memory_sample(workers: Sequence[Any], redis_url: str, redis_pid: int) -> dict[str, int]:
    redis_memory = _redis_memory(redis_url, redis_pid)
    return {
        "workers_rss_kb": sum(tree_memory_kb(w.pid, "VmRSS") for w in workers),
        "redis_used_memory_kb": redis_memory["used_memory_kb"],
    }


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True)


