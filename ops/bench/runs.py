"""The benchmark's measurements of our pipeline, each on fresh private services.

- `measure_enqueue`: orders/s through `producers.enqueue` into an idle Redis.
- `measure_ours`: the real pipeline (producer, Redis, `jetti-relay worker` processes with task
  events, the sandbox over HTTP in its own process), flat out, then paced at half that rate.
- `measure_memory`: worker RSS after 10% and 100% of a long run.

The baselines are in `ops/bench/baselines.py`; what they share in `ops/bench/common.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ops.bench.common import (
    POLL_S,
    STALL_TIMEOUT_S,
    RunConfig,
    SandboxProbe,
    orders,
    redis_memory,
    throughput,
)
from ops.bench.stats import percentiles
from ops.harness.ports import ServiceError
from ops.harness.procstats import tree_cpu_seconds, tree_memory_kb
from ops.harness.sandbox import SandboxService
from ops.harness.services import Services
from ops.harness.workers import pipeline_env

# The long run keeps at most this many orders waiting, as a steady producer would.
LONG_RUN_BACKLOG = 5_000
# Worker memory may grow this much between 10% and 100% of the long run and still count as flat.
MEMORY_GROWTH_LIMIT = 0.10


def _enqueued_at(redis_url: str, keys: Sequence[str]) -> dict[str, float]:
    """The ledger's `enqueued_at` of each order (pipelined, one round trip per 1,000)."""
    import redis

    from worker.core.keys import Keys
    from worker.settings import DEFAULT_KEY_PREFIX
    from worker.store.ledger_schema import OrderField

    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    ledger_keys = Keys(DEFAULT_KEY_PREFIX)
    out: dict[str, float] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hget(ledger_keys.order(key), OrderField.ENQUEUED_AT)
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

    from worker.settings import Settings
    from worker.wiring import publisher

    settings = Settings(redis_url=redis_url, broker_url=redis_url)
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    return client, publisher(settings, batch_size=batch_size)


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
        return {
            "orders": count,
            "accepted": summary.accepted,
            "seconds": seconds,
            "rate": count / seconds,
        }
    finally:
        services.stop()
        config.pids.extend(services.started)


def measure_ours(
    config: RunConfig, count: int, latency_ms: float, rated_seconds: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Our pipeline flat out with `count` orders, then paced at half the rate it reached for
    `rated_seconds` (skipped when 0). Returns (flat-out run, paced run)."""
    from producers import enqueue

    services = Services(config.folder)
    try:
        redis_service = services.start_redis(f"ours-{latency_ms:g}-redis")
        sandbox = services.start_sandbox(f"ours-{latency_ms:g}-sandbox", latency_ms=latency_ms)
        env = _ours_env(config, redis_service.url, sandbox)
        workers = [
            services.start_worker(f"ours-{latency_ms:g}-w{i}", env, concurrency=config.processes)
            for i in range(config.workers)
        ]
        probe = SandboxProbe(sandbox)
        client, publisher = _producer(redis_service.url, config.batch_size)
        bodies = orders(0, count, config.lines)
        cpu_at_start = _cpu(workers, redis_service.pid, sandbox.pid)
        first_at = time.time()
        started = time.perf_counter()
        summary = enqueue(bodies, client=client, publisher=publisher)
        enqueue_s = time.perf_counter() - started
        complete = probe.wait_accepted(count)
        flat = _report(probe, redis_service.url, first_at, count, complete)
        # Where the CPU went (the machine has few cores; every process competes for them).
        cpu_at_end = _cpu(workers, redis_service.pid, sandbox.pid)
        flat["cpu_s"] = {name: cpu_at_end[name] - cpu_at_start[name] for name in cpu_at_end}
        flat["enqueue_rate"] = count / enqueue_s
        flat["accepted_by_producer"] = summary.accepted
        paced = None
        if rated_seconds > 0 and flat["throughput"] > 0:
            probe.reset()
            rate = flat["throughput"] / 2
            paced_count = max(1, int(rate * rated_seconds))
            paced_bodies = orders(count, paced_count, config.lines)
            first_at = time.time()
            _paced_enqueue(
                paced_bodies,
                rate,
                config.paced_tick_s,
                lambda chunk: enqueue(chunk, client=client, publisher=publisher),
            )
            complete = probe.wait_accepted(paced_count)
            paced = _report(probe, redis_service.url, first_at, paced_count, complete)
            paced["target_rate"] = rate
            paced["tick_ms"] = config.paced_tick_s * 1000
        flat["peak_rss_kb"] = {
            "workers": sum(tree_memory_kb(w.pid, "VmHWM") for w in workers),
            "redis": redis_memory(redis_service.url, redis_service.pid),
        }
        client.close()
        probe.close()
        return flat, paced
    finally:
        services.stop()
        config.pids.extend(services.started)


def _cpu(workers: Sequence[Any], redis_pid: int, sandbox_pid: int) -> dict[str, float]:
    return {
        "workers": sum(tree_cpu_seconds(w.pid) for w in workers),
        "redis": tree_cpu_seconds(redis_pid),
        "sandbox": tree_cpu_seconds(sandbox_pid),
    }


def _paced_enqueue(
    bodies: Sequence[bytes], rate: float, tick_s: float, send: Callable[[Sequence[bytes]], object]
) -> None:
    """Send `bodies` at `rate` orders/s, in whatever is due every `tick_s`."""
    started = time.monotonic()
    sent = 0
    while sent < len(bodies):
        due = min(len(bodies), int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            send(bodies[sent:due])
            sent = due
        time.sleep(tick_s)


def _report(
    probe: SandboxProbe, redis_url: str, first_at: float, count: int, complete: bool
) -> dict[str, Any]:
    stats = probe.stats()
    accepted_at = probe.import_times()
    enqueued_at = _enqueued_at(redis_url, sorted(accepted_at))
    latencies = [accepted_at[k] - enqueued_at[k] for k in accepted_at if k in enqueued_at]
    seconds, rate = throughput(first_at, accepted_at)
    return {
        "orders": count,
        "complete": complete,
        "delivered": len(accepted_at),
        "sandbox_sales": stats["sales"],
        "sandbox_versions": stats["versions_received"],
        "sandbox_duplicates": stats["duplicates"],
        "seconds": seconds,
        "throughput": rate,
        "latency_s": percentiles(latencies),
    }


def measure_memory(config: RunConfig, count: int) -> dict[str, Any]:
    """Worker RSS (VmRSS summed over every worker process tree) after 10% and after 100% of
    `count` orders, fed so that at most LONG_RUN_BACKLOG wait at a time; sandbox latency 0."""
    from producers import enqueue

    services = Services(config.folder)
    try:
        redis_service = services.start_redis("long-redis")
        sandbox = services.start_sandbox("long-sandbox")
        env = _ours_env(config, redis_service.url, sandbox)
        workers = [
            services.start_worker(f"long-w{i}", env, concurrency=config.processes)
            for i in range(config.workers)
        ]
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
    redis_now = redis_memory(redis_url, redis_pid)
    return {
        "workers_rss_kb": sum(tree_memory_kb(w.pid, "VmRSS") for w in workers),
        "redis_used_memory_kb": redis_now["used_memory_kb"],
    }
