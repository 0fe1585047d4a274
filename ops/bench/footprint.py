"""`jetti-relay bench footprint`: what one order costs Redis, for sizing one primary.

One private redis-server with AOF (`appendfsync everysec`, automatic rewrites off so the AOF
only grows), the sandbox and one `jetti-relay worker`; N realistic three-line orders go through
the whole pipeline in phases, and every figure is a difference of the server's own counters
(`INFO everything`) between two samples, divided by N:

1. fixed: a worker started on an empty Redis (start-up), then left idle `--idle-s` seconds
   (what an idle fleet costs per second); the worker is stopped again;
2. accept: `producers.enqueue` of N orders with no consumer (the ledger write and the Celery
   message), so what is in flight is measured alone; with `--via stream`, N XADDs to the intake
   stream read by a `jetti-relay intake` process instead (stopped once all are PENDING);
3. deliver: a worker started again, until every order is SUBMITTED (worker -> sandbox -> ledger);
4. shed: the settled orders shed to their tombstones (the sweeper does this after
   JETTI_RELAY_BODY_TTL_S; here it is called with a clock moved past it).

Per phase: commands by name (`commandstats`: Redis 7 counts the commands a Lua script calls as
well as the EVALSHA itself, so the script calls are shown apart and the total counts both),
network bytes in and out, `used_memory`, AOF bytes (`aof_current_size`) and Redis CPU
(`used_cpu_sys` + `used_cpu_user`). Plus `MEMORY USAGE` of a sample of orders' keys (hash,
timeline, attempts) in flight, settled and shed, and of the shared indexes. The bench's own
commands (INFO, MEMORY, and the ZCARDs it polls the ledger with) are left out.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

# Commands this bench sends itself, left out of the figures.
OWN_COMMANDS = frozenset({"info", "memory"})
# Commands that run a Lua script: their inner calls are counted under their own names too.
SCRIPT_COMMANDS = frozenset({"evalsha", "eval", "fcall", "evalsha_ro", "eval_ro", "fcall_ro"})
# Orders whose keys are measured one by one with MEMORY USAGE.
MEMORY_SAMPLE = 20
# Orders shed per shed_settled call (one script call each).
SHED_BATCH = 500
# Orders per XADD pipeline of the stream variant.
STREAM_CHUNK = 1000
# Longest wait for the pipeline to deliver every order.
DELIVER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RedisSample:
    """The server counters one phase's figures are differences of."""

    calls: dict[str, int]
    net_in: int
    net_out: int
    used_memory: int
    aof_bytes: int
    cpu_s: float
    at: float

    def since(
        self, before: RedisSample, orders: int, *, own: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """This sample minus `before`, per order (`orders`), with the totals; `own` are calls
        the bench itself made meanwhile (its polls), left out."""
        own = own or {}
        calls = {
            name: n - before.calls.get(name, 0) - own.get(name, 0)
            for name, n in self.calls.items()
            if name not in OWN_COMMANDS and n - own.get(name, 0) > before.calls.get(name, 0)
        }
        scripts = sum(n for name, n in calls.items() if name in SCRIPT_COMMANDS)
        total = sum(calls.values())
        per = float(max(orders, 1))
        return {
            "seconds": self.at - before.at,
            "commands": total,
            "commands_per_order": total / per,
            "script_calls_per_order": scripts / per,
            "by_command_per_order": {
                name: n / per for name, n in sorted(calls.items(), key=lambda kv: -kv[1])
            },
            "net_in_bytes_per_order": (self.net_in - before.net_in) / per,
            "net_out_bytes_per_order": (self.net_out - before.net_out) / per,
            "used_memory_delta_per_order": (self.used_memory - before.used_memory) / per,
            "aof_bytes_per_order": (self.aof_bytes - before.aof_bytes) / per,
            "redis_cpu_us_per_order": (self.cpu_s - before.cpu_s) / per * 1e6,
        }


def sample(client: Any) -> RedisSample:
    """One `INFO everything` (a single command, left out of the figures)."""
    info = client.info("everything")
    return RedisSample(
        calls={
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        },
        net_in=int(info["total_net_input_bytes"]),
        net_out=int(info["total_net_output_bytes"]),
        used_memory=int(info["used_memory"]),
        aof_bytes=int(info.get("aof_current_size", 0)),
        cpu_s=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        at=time.monotonic(),
    )


def order_keys_memory(client: Any, prefix: str, order_keys: Sequence[str]) -> dict[str, float]:
    """Mean MEMORY USAGE (bytes) of each per-order key of `order_keys`, and their sum."""
    from worker.core.keys import Keys

    keys = Keys(prefix)
    builders = {
        "order_hash": keys.order,
        "events": keys.order_events,
        "attempts": keys.order_attempts,
    }
    out: dict[str, float] = {}
    for name, build in builders.items():
        sizes = [client.memory_usage(build(k), samples=0) or 0 for k in order_keys]
        out[name] = sum(sizes) / max(len(order_keys), 1)
    out["total"] = sum(out.values())
    return out


def shared_keys_memory(client: Any, prefix: str, orders: int) -> dict[str, float]:
    """MEMORY USAGE (bytes) per order of the shared indexes and of the Celery queue."""
    from worker.core.keys import Keys
    from worker.core.states import OrderState

    keys = Keys(prefix)
    names = {
        "celery_queue": keys.orders_queue(),
        "enqueued_index": keys.enqueued_index(),
        "shed_queue": keys.shed_queue(),
        "tombstone_index": keys.tombstone_index(),
        **{f"state_index:{s.value}": keys.state_index(s.value) for s in OrderState},
    }
    out: dict[str, float] = {}
    for name, key in names.items():
        size = client.memory_usage(key, samples=0)
        if size:
            out[name] = size / max(orders, 1)
    return out


@dataclass
class StatePoll:
    """Waits until `target` orders are in `state`, with one ZCARD per look, and counts the
    looks so the figures can leave them out (`own`)."""

    client: Any
    index: str
    zcards: int = 0

    def wait(self, target: int, timeout_s: float = DELIVER_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.zcards += 1
            if int(self.client.zcard(self.index)) >= target:
                return
            if time.monotonic() > deadline:
                raise click.ClickException(f"fewer than {target} orders in {self.index} in time")
            time.sleep(0.1)

    def own(self) -> dict[str, int]:
        return {"zcard": self.zcards}


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def run(
    orders: int, lines: int, idle_s: float, concurrency: int, via: str, folder: Path
) -> dict[str, Any]:
    """Every phase on fresh private services, as one JSON-ready dict."""
    import redis

    from ops.bench.aof import start_aof_redis
    from ops.bench.common import SandboxProbe
    from ops.bench.common import orders as make_orders
    from ops.harness.services import Services
    from ops.harness.workers import pipeline_env
    from producers import enqueue
    from worker.core.states import OrderState
    from worker.settings import DEFAULT_KEY_PREFIX, Settings
    from worker.store.intake import IntakeStream
    from worker.wiring import keys as build_keys
    from worker.wiring import ledger as build_ledger
    from worker.wiring import publisher as build_publisher

    services = Services(folder)
    result: dict[str, Any] = {
        "config": {
            "orders": orders,
            "lines": lines,
            "idle_s": idle_s,
            "concurrency": concurrency,
            "via": via,
        },
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0]},
    }
    try:
        redis_service = start_aof_redis(services, folder / "redis", "footprint-redis")
        url = redis_service.url
        client: redis.Redis[bytes] = redis.Redis.from_url(url)
        result["redis_version"] = client.info("server")["redis_version"]
        sandbox = services.start_sandbox("footprint-sandbox")
        # The fleet limiter is sized for Jetti (10/s by default); here it must not be the cap.
        env = pipeline_env(
            url,
            sandbox,
            JETTI_RELAY_RATE_PER_S="1000000",
            JETTI_RELAY_RATE_BURST="1000000",
            JETTI_RELAY_LOG_LEVEL="WARNING",
        )
        probe = SandboxProbe(sandbox)

        _say("fixed costs: a worker on an empty Redis, then idle")
        s0 = sample(client)
        worker = services.start_worker("footprint-idle", env, concurrency=concurrency)
        s1 = sample(client)
        time.sleep(idle_s)
        s2 = sample(client)
        services.stop_one(worker)
        result["fixed"] = {
            "worker_start_commands": s1.since(s0, 1)["commands"],
            "idle_commands_per_s": s2.since(s1, 1)["commands"] / max(s2.at - s1.at, 1e-9),
            "idle_by_command_per_s": {
                name: n / max(s2.at - s1.at, 1e-9)
                for name, n in s2.since(s1, 1)["by_command_per_order"].items()
            },
        }

        bodies = make_orders(0, orders, lines)
        order_keys = [f"bench-{n}" for n in range(orders)]
        step = max(1, orders // MEMORY_SAMPLE)
        sampled = order_keys[::step][:MEMORY_SAMPLE]
        result["raw_order_bytes"] = sum(len(b) for b in bodies) / orders
        settings = Settings(redis_url=url, broker_url=url)
        keys = build_keys(settings)
        pending = StatePoll(client, keys.state_index(OrderState.PENDING))
        if via == "stream":
            intake = _start_stream_intake(services, client, keys, env)
            _say(f"accept: XADD {orders} orders to the intake stream, `jetti-relay intake` reads")
            before = sample(client)
            stream = IntakeStream(client, keys)
            for start in range(0, orders, STREAM_CHUNK):
                stream.append(bodies[start : start + STREAM_CHUNK])
            pending.wait(orders)
            after_accept = sample(client)
            services.stop_one(intake)
        else:
            producer: redis.Redis[bytes] = redis.Redis.from_url(url)
            publisher = build_publisher(settings)
            _say(f"accept: enqueue {orders} orders, no consumer")
            before = sample(client)
            summary = enqueue(bodies, client=producer, publisher=publisher)
            after_accept = sample(client)
            producer.close()
            if summary.accepted != orders:
                raise click.ClickException(f"the producer accepted {summary.accepted} of {orders}")
        result["accept"] = after_accept.since(before, orders, own=pending.own())
        result["in_flight"] = {
            "per_order_keys": order_keys_memory(client, DEFAULT_KEY_PREFIX, sampled),
            "shared_keys_per_order": shared_keys_memory(client, DEFAULT_KEY_PREFIX, orders),
            "used_memory_per_order": (after_accept.used_memory - before.used_memory) / orders,
        }

        _say("deliver: a worker until every order is SUBMITTED")
        worker = services.start_worker("footprint-worker", env, concurrency=concurrency)
        if not probe.wait_accepted(orders, budget_s=DELIVER_TIMEOUT_S):
            raise click.ClickException("the sandbox did not accept every order in time")
        ledger = build_ledger(client, keys, settings)
        submitted = StatePoll(client, keys.state_index(OrderState.SUBMITTED))
        submitted.wait(orders)
        after_deliver = sample(client)
        result["deliver"] = after_deliver.since(after_accept, orders, own=submitted.own())
        result["sandbox"] = probe.stats()
        probe.close()
        services.stop_one(worker)
        result["settled"] = {
            "per_order_keys": order_keys_memory(client, DEFAULT_KEY_PREFIX, sampled),
            "shared_keys_per_order": shared_keys_memory(client, DEFAULT_KEY_PREFIX, orders),
            "used_memory_per_order": (after_deliver.used_memory - before.used_memory) / orders,
        }

        _say("shed: settled orders to their tombstones")
        before_shed = sample(client)
        later = time.time() + settings.body_ttl_s + 1
        while ledger.shed_settled(now=later, limit=SHED_BATCH):
            pass
        after_shed = sample(client)
        result["shed"] = after_shed.since(before_shed, orders)
        result["tombstone"] = {
            "per_order_keys": order_keys_memory(client, DEFAULT_KEY_PREFIX, sampled),
            "shared_keys_per_order": shared_keys_memory(client, DEFAULT_KEY_PREFIX, orders),
            "used_memory_per_order": (after_shed.used_memory - before.used_memory) / orders,
        }
        result["whole_order"] = after_shed.since(
            before, orders, own={"zcard": pending.zcards + submitted.zcards}
        )
        result["states"] = {str(s): n for s, n in ledger.state_counts().items() if n}
        client.close()
    finally:
        services.stop()
    result["pids"] = list(services.started)
    result["machine"]["load_average_end"] = os.getloadavg()[0]
    return result


def _start_stream_intake(services: Any, client: Any, keys: Any, env: dict[str, str]) -> Any:
    """`jetti-relay intake` (the stream only); returns once its consumer group exists."""
    import sys

    from ops.harness.ports import wait_for

    name = "footprint-intake"
    process = services.start(
        name, [sys.executable, "-m", "ops.cli", "intake", "--consumer", "footprint-1"], env
    )
    wait_for(
        lambda: bool(client.exists(keys.intake_stream())),
        "the stream intake (its consumer group)",
        process=process,
        log=services.log_path(name),
    )
    return process


def render(result: dict[str, Any]) -> str:
    """The figures as the doc quotes them: one column per phase, per order."""
    from ops.bench.footprint_report import render_table

    return render_table(result)


@click.command("footprint")
@click.option("--orders", default=2000, show_default=True, help="Orders through the pipeline.")
@click.option("--lines", default=3, show_default=True, help="Lines per order.")
@click.option("--idle-s", default=5.0, show_default=True, help="Idle worker window (seconds).")
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
@click.option(
    "--via",
    type=click.Choice(["library", "stream"]),
    default="library",
    show_default=True,
    help="Accept through the producer library, or XADD to the stream and `jetti-relay intake`.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs and the AOF.")
def footprint_bench(
    orders: int,
    lines: int,
    idle_s: float,
    concurrency: int,
    via: str,
    json_path: Path | None,
    keep_logs: bool,
) -> None:
    """Redis commands, bytes, memory, AOF and CPU per order, phase by phase (docs/scaling.md)."""
    from ops.bench.common import run_in_folder
    from ops.options import SANDBOX_MODULES, require_extra

    require_extra("sandbox", *SANDBOX_MODULES)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-footprint-"))
    run_in_folder(
        lambda: run(orders, lines, idle_s, concurrency, via, folder),
        render,
        folder,
        json_path=json_path,
        keep_logs=keep_logs,
    )
