"""The benchmark's baselines on the same orders: naive Celery and a plain sequential loop.

- `measure_naive`: one Celery task per order (`ops/bench/naive.py`), same pool, processes and
  prefetch as our worker.
- `measure_loop`: a plain sequential httpx loop, the ceiling of a single client.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx

from ops.bench.common import RunConfig, SandboxProbe, orders, payloads, throughput
from ops.bench.stats import percentiles
from ops.harness.ports import wait_for
from ops.harness.procstats import tree_memory_kb
from ops.harness.services import Services


def measure_naive(
    config: RunConfig, count: int, latency_ms: float, budget_s: float
) -> dict[str, Any]:
    """The same orders through `ops/bench/naive.py`, same pool, processes and prefetch."""

    from ops.bench import naive as bench_naive

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
            process = services.start(
                name,
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "ops.bench.naive",
                    "worker",
                    "-E",
                    "--pool",
                    "prefork",
                    "-c",
                    str(config.processes),
                    "--prefetch-multiplier",
                    "1",
                    "-Q",
                    bench_naive.QUEUE,
                    "-n",
                    f"{name}@%h",
                    "--loglevel",
                    "WARNING",
                ],
                env,
            )
            wait_for(
                ready.exists,
                f"the naive worker {name}",
                process=process,
                log=services.log_path(name),
            )
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
                app.send_task(
                    bench_naive.TASK,
                    args=[body.decode()],
                    queue=bench_naive.QUEUE,
                    producer=producer,
                )
        enqueue_s = time.perf_counter() - started
        complete = probe.wait_accepted(count, budget_s=budget_s)
        stats = probe.stats(wait=complete)
        accepted_at = probe.import_times()
        seconds, rate = throughput(first_at, accepted_at)
        latencies = [t - sent_at[k] for k, t in accepted_at.items() if k in sent_at]
        result = {
            "orders": count,
            "complete": complete,
            "delivered": len(accepted_at),
            "sandbox_sales": stats["sales"],
            "seconds": seconds,
            "throughput": rate,
            "enqueue_rate": count / enqueue_s,
            "latency_s": percentiles(latencies),
            "peak_rss_kb": {"workers": sum(tree_memory_kb(w.pid, "VmHWM") for w in workers)},
        }
        probe.close()
        return result
    finally:
        services.stop()
        config.pids.extend(services.started)


def measure_loop(
    config: RunConfig, count: int, latency_ms: float, budget_s: float
) -> dict[str, Any]:
    """A plain sequential httpx loop (one keep-alive client) over the same payloads, for at
    most `count` orders or `budget_s` seconds."""
    services = Services(config.folder)
    try:
        sandbox = services.start_sandbox(f"loop-{latency_ms:g}-sandbox", latency_ms=latency_ms)
        built = payloads(orders(0, count, config.lines))
        probe = SandboxProbe(sandbox)
        latencies = []
        headers = {"jetti-webhook-hash": sandbox.webhook_hash, "content-type": "application/json"}
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
