"""`jetti-relay bench intake`: the ways in, side by side in one run, against issue 14's targets.

One private redis-server for the whole run, the same realistic raw orders for every way in (new
ids each time), each measurement repeated `--repeat` times (medians reported):

1. library: `producers.enqueue` of raw JSON bytes, in this process;
2. stream intake: one `jetti-relay intake` process, fed by plain XADDs from another process,
   from the first XADD to the ledger holding every order;
3. HTTP NDJSON: `jetti-relay intake --http --no-stream`, batches of `--batch` orders over
   keep-alive connections from the load generator (its own process);
4. HTTP one order per request: the most requests/s in closed loop, then an open loop at half
   that (at least `--min-open-rate`) for the accept latency;
5. what the framework costs: the same trivial request (a GET no route takes, answered 404 by
   the router) against the raw-ASGI sandbox and the intake's Starlette app, both under uvicorn,
   and the intake's GET /health: requests/s and server CPU per request.

Library and stream runs alternate, as do the framework's three, so drift in the machine's load
hits both sides alike. Nothing consumes the orders queue: these are the intake's figures alone.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ops.bench.stats import median

if TYPE_CHECKING:
    from ops.bench.intake_runs import IntakeRun


@dataclass(frozen=True)
class IntakeBenchConfig:
    """Sizes of one `bench intake` run (the options)."""

    orders: int = 10_000
    lines: int = 3
    repeat: int = 3
    batch: int = 100
    single: int = 3_000
    connections: int = 8
    seconds: float = 3.0
    min_open_rate: float = 500.0
    log_level: str = "WARNING"


# The options' defaults are the config's.
DEFAULTS = IntakeBenchConfig()


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def run(config: IntakeBenchConfig, folder: Path) -> dict[str, Any]:
    """Every measurement, as one JSON-ready dict with `targets` filled in."""
    from ops.bench import intake_runs as runs
    from ops.bench.intake_report import targets
    from ops.harness.services import Services

    started = time.monotonic()
    result: dict[str, Any] = {
        "config": asdict(config),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Other load on the machine skews every figure: the load average says how much there was.
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0]},
    }
    services = Services(folder)
    bench: IntakeRun | None = None
    try:
        redis_service = services.start_redis("intake-bench-redis")
        bench = runs.IntakeRun(folder, services, redis_service, config.lines, config.log_level)
        result["redis_origin"] = redis_service.origin
        _ways_in(config, bench, result)
        result["ledger"] = _ledger(result, bench.held())
    finally:
        if bench is not None:
            bench.close()
        services.stop()
    result["pids"] = list(services.started)
    result["seconds"] = time.monotonic() - started
    result["machine"]["load_average_end"] = os.getloadavg()[0]
    result["targets"] = targets(result)
    return result


def _ways_in(config: IntakeBenchConfig, bench: IntakeRun, result: dict[str, Any]) -> None:
    """Each way in, `config.repeat` times, into `result` (runs and medians)."""
    from ops.bench import intake_runs as runs

    repeat, n = config.repeat, config.orders
    _say("stream intake: starting `jetti-relay intake`")
    stream_intake = runs.start_stream_intake(bench)
    library_runs, stream_runs = [], []
    for i in range(repeat):
        _say(f"library enqueue, {n} orders ({i + 1}/{repeat})")
        library_runs.append(runs.measure_library(bench, n))
        _say(f"stream intake, {n} orders ({i + 1}/{repeat})")
        stream_runs.append(runs.measure_stream(bench, stream_intake.pid, n))
    bench.services.stop_one(stream_intake)
    library_rate = median([r["rate"] for r in library_runs])
    stream_rate = median([r["rate"] for r in stream_runs])
    result["library"] = {"runs": library_runs, "rate": library_rate}
    result["stream"] = {
        "runs": stream_runs,
        "rate": stream_rate,
        "vs_library": stream_rate / library_rate if library_rate and stream_rate else None,
        "intake_cpu_us_per_order": median([r["cpu_s"]["intake"] / n * 1e6 for r in stream_runs]),
        "feeder_rate": median([r["feeder"]["rate"] for r in stream_runs]),
    }

    _say("HTTP intake: starting `jetti-relay intake --http --no-stream`")
    intake = runs.start_http_intake(bench)
    conns = config.connections
    ndjson_runs, single_runs = [], []
    for i in range(repeat):
        _say(f"HTTP NDJSON, {n} orders in batches of {config.batch} ({i + 1}/{repeat})")
        ndjson_runs.append(runs.measure_ndjson(bench, intake, n, config.batch, conns))
        _say(f"HTTP one order per request, {config.single} requests ({i + 1}/{repeat})")
        single_runs.append(runs.measure_single(bench, intake, config.single, conns))
    result["http_ndjson"] = {
        "runs": ndjson_runs,
        "rate": median([r["orders_per_s"] for r in ndjson_runs]),
        "intake_cpu_us_per_order": median(
            [r["cpu_s"]["server"] / r["orders"] * 1e6 for r in ndjson_runs]
        ),
    }
    single_rate = median([r["rate"] for r in single_runs]) or 0.0
    result["http_single"] = {
        "runs": single_runs,
        "rate": single_rate,
        "intake_cpu_us_per_order": median([r["server_cpu_us_per_request"] for r in single_runs]),
    }
    open_rate = max(config.min_open_rate, single_rate / 2)
    open_count = max(1, round(open_rate * config.seconds))
    open_runs = []
    for i in range(repeat):
        _say(f"HTTP one order per request, open loop at {open_rate:,.0f}/s ({i + 1}/{repeat})")
        open_runs.append(runs.measure_single(bench, intake, open_count, conns, rate=open_rate))
    result["http_open"] = {
        "runs": open_runs,
        "target_rate": open_rate,
        "rate": median([r["rate"] for r in open_runs]),
        "latency_s": {
            p: median([r["latency_s"][p] for r in open_runs if r["latency_s"][p] is not None])
            for p in ("p50", "p95", "p99")
        },
    }

    _say("framework cost: starting the raw-ASGI sandbox")
    sandbox = bench.services.start_sandbox("intake-bench-sandbox")
    servers = {
        "sandbox": (runs.Server("sandbox", sandbox.base_url, sandbox.pid), runs.UNROUTED_PATH, 404),
        "intake": (intake, runs.UNROUTED_PATH, 404),
        "intake_health": (intake, runs.HEALTH_PATH, 200),
    }
    trivial: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
    for i in range(repeat):
        for key, (server, path, status) in servers.items():
            _say(f"framework cost: GET {path} on the {server.name} ({i + 1}/{repeat})")
            trivial[key].append(
                runs.measure_trivial(bench, server, path, status, config.seconds, conns)
            )
    framework: dict[str, Any] = {
        key: {
            "runs": values,
            "rate": median([r["rate"] for r in values]),
            "server_cpu_us_per_request": median(
                [r["server_cpu_us_per_request"] for r in values if r["ok"]]
            ),
        }
        for key, values in trivial.items()
    }
    raw, starlette = framework["sandbox"], framework["intake"]
    framework["ratio"] = (
        starlette["rate"] / raw["rate"] if raw["rate"] and starlette["rate"] else None
    )
    framework["extra_cpu_us_per_request"] = (
        starlette["server_cpu_us_per_request"] - raw["server_cpu_us_per_request"]
        if starlette["server_cpu_us_per_request"] and raw["server_cpu_us_per_request"]
        else None
    )
    result["framework"] = framework


def _ledger(result: dict[str, Any], held: int) -> dict[str, int]:
    """Orders sent by every way in, orders the ledger holds (ids never repeat, so they should
    be equal), orders missing, and failed requests or unfinished stream runs."""
    http = [r for key in ("http_ndjson", "http_single", "http_open") for r in result[key]["runs"]]
    direct = [r for key in ("library", "stream") for r in result[key]["runs"]]
    sent = sum(r["orders"] for r in direct + http)
    failed = sum(r["errors"] for r in http) + sum(
        not r["complete"] for r in result["stream"]["runs"]
    )
    return {"sent": sent, "held": held, "missing": max(0, sent - held), "failed": failed}


@click.command("intake")
@click.option(
    "--orders",
    type=click.IntRange(min=1),
    default=DEFAULTS.orders,
    show_default=True,
    help="Orders per library, stream and NDJSON run.",
)
@click.option(
    "--lines",
    type=click.IntRange(min=1),
    default=DEFAULTS.lines,
    show_default=True,
    help="Lines per order.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=DEFAULTS.repeat,
    show_default=True,
    help="Runs of each measurement; the table shows medians.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=DEFAULTS.batch,
    show_default=True,
    help="Orders per NDJSON request.",
)
@click.option(
    "--single",
    type=click.IntRange(min=1),
    default=DEFAULTS.single,
    show_default=True,
    help="Requests (one order each) per closed-loop run.",
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=DEFAULTS.connections,
    show_default=True,
    help="Keep-alive connections of the load generator.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=DEFAULTS.seconds,
    show_default=True,
    help="Length of each open-loop and framework run.",
)
@click.option(
    "--min-open-rate",
    type=click.FloatRange(min=1),
    default=DEFAULTS.min_open_rate,
    show_default=True,
    help="The open loop runs at half the closed-loop max, at least this (requests/s).",
)
@click.option(
    "--log-level",
    default=DEFAULTS.log_level,
    show_default=True,
    help="JETTI_RELAY_LOG_LEVEL of the intake processes.",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Write every figure as JSON here."
)
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs and print where.")
def intake_bench(json_path: Path | None, keep_logs: bool, **sizes: Any) -> None:
    """Library enqueue, stream intake and HTTP intake side by side, against issue 14's targets.

    Starts its own redis-server, intake processes and sandbox and stops them all; takes about
    a minute with the defaults.
    """
    from ops.bench.common import run_in_folder
    from ops.bench.intake_report import render
    from ops.commands.intake import HTTP_MODULES
    from ops.harness.services import exit_on_sigterm
    from ops.options import SANDBOX_MODULES, require_extra

    require_extra("intake", *HTTP_MODULES)
    require_extra("sandbox", *SANDBOX_MODULES)
    exit_on_sigterm()
    config = IntakeBenchConfig(**sizes)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-bench-intake-"))
    run_in_folder(
        lambda: run(config, folder), render, folder, json_path=json_path, keep_logs=keep_logs
    )
