"""End-to-end throughput of the real pipeline: `jetti-relay bench pipeline --orders 3000`.

Starts a private redis-server, the sandbox (faults off) and `jetti-relay worker`, enqueues N
three-line orders through the producers library and prints orders/s from the first enqueue to
the last order SUBMITTED: one figure, quicker than the full comparison (`jetti-relay bench`);
run it with different `--batch-size` / `--concurrency` values to compare settings side by side.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import click
import httpx

from ops.demo.cli import _start_redis
from ops.harness.ports import free_port, wait_for
from ops.harness.sandbox import ASYNC_PATH
from ops.harness.services import Services
from ops.options import SANDBOX_MODULES, require_extra


def _order(n: int) -> dict[str, object]:
    return {
        "id": f"bench-{n}",
        "number": str(100000 + n),
        "updated_at": "2026-11-27T10:00:00+00:00",
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "lines": [
            {
                "id": f"bench-{n}-{i}",
                "sku": f"SKU-{i}",
                "name": f"Item {i}",
                "quantity": 1,
                "unit_price": "12.10",
            }
            for i in range(3)
        ],
        "shipping": {"code": "std", "name": "Standard", "price": "4.95"},
        "auto_connect_by_sku": True,
    }


def _cpu_seconds(services: Services) -> list[tuple[str, float]]:
    """CPU seconds (user + system) used so far by each service, by process level (Linux):
    the worker shows as worker (the pump/sweeper process), worker/celery (the consumer) and
    worker/pool (the prefork children, summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: list[tuple[str, float]] = []
    for name, process in services.processes:
        levels = [[process.pid]]
        while levels[-1]:
            levels.append([c for pid in levels[-1] for c in _children(pid)])
        labels = [name, f"{name}/celery", f"{name}/pool"] if name == "worker" else [name]
        for depth, pids in enumerate(levels[:-1]):
            label = labels[min(depth, len(labels) - 1)]
            seconds = sum(_cpu(pid) for pid in pids) / tick
            if out and out[-1][0] == label:
                out[-1] = (label, out[-1][1] + seconds)
            else:
                out.append((label, seconds))
    return out


def _cpu(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


@click.command("pipeline")
@click.option("--orders", default=3000, show_default=True)
@click.option("--batch-size", default=25, show_default=True, help="Order keys per message.")
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
@click.option("--submit-concurrency", default=25, show_default=True, help="In-flight per process.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Sandbox latency per request.")
def pipeline_bench(
    orders: int, batch_size: int, concurrency: int, submit_concurrency: int, latency_ms: float
) -> None:
    """Measure end-to-end orders/s once and print one line."""

    from producers import enqueue
    from worker import wiring
    from worker.core.states import OrderState
    from worker.settings import Settings
    from worker.wiring import publisher as build_publisher

    require_extra("sandbox", *SANDBOX_MODULES)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-e2e-"))
    services = Services(folder)
    try:
        redis_url = _start_redis(services)
        hash_, token, port = secrets.token_hex(8), secrets.token_hex(8), free_port()
        env = {**os.environ, "SANDBOX_WEBHOOK_HASH": hash_, "SANDBOX_API_TOKEN": token}
        services.start(
            "sandbox",
            [
                *(sys.executable, "-m", "ops.sandbox", "--port", str(port)),
                *("--latency-ms", str(latency_ms)),
            ],
            env,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/_sandbox/stats").status_code == 200, "sandbox")
        ready = folder / "ready"
        services.start(
            "worker",
            [sys.executable, "-m", "ops.cli", "worker", "-c", str(concurrency)],
            {
                **os.environ,
                "JETTI_RELAY_REDIS_URL": redis_url,
                "JETTI_RELAY_JETTI_ASYNC_URL": base + ASYNC_PATH,
                "JETTI_RELAY_WEBHOOK_HASH": hash_,
                "JETTI_RELAY_READY_FILE": str(ready),
                "JETTI_RELAY_RATE_PER_S": "100000",
                "JETTI_RELAY_RATE_BURST": "100000",
                "JETTI_RELAY_BATCH_SIZE": str(batch_size),
                "JETTI_RELAY_SUBMIT_CONCURRENCY": str(submit_concurrency),
                "JETTI_RELAY_LOG_LEVEL": "WARNING",
            },
        )
        wait_for(ready.exists, "the worker", timeout_s=60)
        settings = Settings(redis_url=redis_url, batch_size=batch_size)
        client = wiring.redis_client(settings)
        ledger = wiring.ledger(client, wiring.keys(settings), settings)
        publisher = build_publisher(settings, batch_size=batch_size)
        started = time.perf_counter()
        enqueue([_order(n) for n in range(orders)], client=client, publisher=publisher)
        enqueued_s = time.perf_counter() - started
        while ledger.state_counts().get(OrderState.SUBMITTED, 0) < orders:
            if time.perf_counter() - started > 600:
                raise click.ClickException("orders did not settle within 600 s")
            time.sleep(0.05)
        total_s = time.perf_counter() - started
        sales = httpx.get(f"{base}/_sandbox/stats").json()["sales"]
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in _cpu_seconds(services))
        click.echo(
            f"orders={orders} batch_size={batch_size} concurrency={concurrency} "
            f"submit_concurrency={submit_concurrency} latency_ms={latency_ms:g}: "
            f"enqueue {orders / enqueued_s:.0f}/s, "
            f"end-to-end {orders / total_s:.0f} orders/s ({total_s:.1f} s), sandbox sales={sales}; "
            f"CPU s: {cpu}"
        )
    finally:
        services.stop()
