"""`jetti-relay bench` (no subcommand): the real pipeline against two baselines, one table,
pass/fail targets.

Every measurement starts its own private Redis, sandbox and workers (`ops/bench/runs.py`) and
stops them before the next. For each sandbox latency: our pipeline flat out and paced at half
the rate it reached, the naive one-task-per-order Celery app (`ops/bench/naive.py`, same pool,
processes and prefetch), and a plain sequential httpx loop. Then the producer's enqueue rate
on an idle Redis and, with `--long N`, worker memory after 10% and 100% of N orders.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Profile:
    """A preset; every field can be overridden by its option."""

    orders: int
    lines: int
    processes: int
    workers: int
    latencies: tuple[float, ...]
    long: int
    rated_seconds: float
    baseline_seconds: float


PROFILES = {
    # The test's profile: every figure, in well under a minute of measuring.
    "tiny": Profile(
        orders=150,
        lines=3,
        processes=2,
        workers=1,
        latencies=(0.0,),
        long=300,
        rated_seconds=1.5,
        baseline_seconds=10.0,
    ),
    "quick": Profile(
        orders=2_000,
        lines=3,
        processes=2,
        workers=1,
        latencies=(0.0, 50.0),
        long=10_000,
        rated_seconds=5.0,
        baseline_seconds=20.0,
    ),
    "full": Profile(
        orders=10_000,
        lines=3,
        processes=2,
        workers=1,
        latencies=(0.0, 50.0),
        long=100_000,
        rated_seconds=20.0,
        baseline_seconds=60.0,
    ),
}


def _latencies(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise click.BadParameter("a comma-separated list of milliseconds, e.g. 0,50") from exc


# The comparison's options: those of the bare `bench` group.
_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--profile",
        type=click.Choice(sorted(PROFILES)),
        default="quick",
        show_default=True,
        help="Preset sizes; the options below override it.",
    ),
    click.option("--orders", type=click.IntRange(min=1), help="Orders per throughput run."),
    click.option("--lines", type=click.IntRange(min=1), help="Lines per order."),
    click.option(
        "--processes",
        "-c",
        type=click.IntRange(min=1),
        help="Celery prefork processes per worker (ours and the naive baseline alike).",
    ),
    click.option("--workers", type=click.IntRange(min=1), help="Worker instances."),
    click.option(
        "--concurrency",
        "submit_concurrency",
        type=click.IntRange(min=1),
        help="In-flight submissions per process, ours only (JETTI_RELAY_SUBMIT_CONCURRENCY).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        help="Order keys per message, ours only (JETTI_RELAY_BATCH_SIZE).",
    ),
    click.option(
        "--latency",
        "latencies",
        callback=_latencies,
        help="Sandbox latencies in ms, comma-separated (e.g. 0,50).",
    ),
    click.option(
        "--long",
        "long",
        type=click.IntRange(min=0),
        help="Orders in the memory-flatness run (0 skips it).",
    ),
    click.option(
        "--rated-seconds",
        type=click.FloatRange(min=0),
        help="Length of the run paced at half the max rate (0 skips it).",
    ),
    click.option(
        "--paced-tick-ms",
        type=click.FloatRange(min=1),
        default=10.0,
        show_default=True,
        help="The paced run enqueues whatever is due this often (webhooks: one by one).",
    ),
    click.option(
        "--baseline-seconds",
        type=click.FloatRange(min=1),
        help="Longest the naive Celery run and the plain loop may take.",
    ),
    click.option(
        "--json",
        "json_path",
        type=click.Path(path_type=Path),
        help="Write every figure as JSON here.",
    ),
    click.option("--keep-logs", is_flag=True, help="Keep the services' logs and print where."),
]


def compare_options(command: F) -> F:
    """Decorate `command` with every option of the comparison (names as `run_comparison`)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def run_comparison(
    profile: str,
    orders: int | None,
    lines: int | None,
    processes: int | None,
    workers: int | None,
    submit_concurrency: int | None,
    batch_size: int | None,
    latencies: tuple[float, ...] | None,
    long: int | None,
    rated_seconds: float | None,
    paced_tick_ms: float,
    baseline_seconds: float | None,
    json_path: Path | None,
    keep_logs: bool,
) -> None:
    """Run every measurement of the chosen profile, print the table, optionally write JSON."""

    from ops.bench.common import RunConfig, run_in_folder
    from ops.bench.report import render
    from ops.harness.services import exit_on_sigterm
    from ops.options import SANDBOX_MODULES, require_extra

    require_extra("sandbox", *SANDBOX_MODULES)
    exit_on_sigterm()

    chosen = PROFILES[profile]
    overrides: dict[str, Any] = {
        "orders": orders,
        "lines": lines,
        "processes": processes,
        "workers": workers,
        "latencies": latencies,
        "long": long,
        "rated_seconds": rated_seconds,
        "baseline_seconds": baseline_seconds,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    chosen = replace(chosen, **given)
    if given or submit_concurrency is not None or batch_size is not None or paced_tick_ms != 10:
        profile += " with options"
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-bench-"))
    config = RunConfig(
        folder=folder,
        lines=chosen.lines,
        processes=chosen.processes,
        workers=chosen.workers,
        submit_concurrency=submit_concurrency,
        batch_size=batch_size,
        paced_tick_s=paced_tick_ms / 1000,
    )
    run_in_folder(
        lambda: run(chosen, config, profile),
        render,
        folder,
        json_path=json_path,
        keep_logs=keep_logs,
    )


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def run(profile: Profile, config: Any, name: str) -> dict[str, Any]:
    """Every measurement of `profile`, as one JSON-ready dict with `targets` filled in."""
    from ops.bench import baselines as bench_baselines
    from ops.bench import runs as bench_runs
    from ops.bench.report import targets

    started = time.monotonic()
    result: dict[str, Any] = {
        "profile": name,
        "config": {
            **asdict(profile),
            "submit_concurrency": config.submit_concurrency,
            "batch_size": config.batch_size,
            "paced_tick_ms": config.paced_tick_s * 1000,
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Other load on the machine skews every figure: the load average says how much there was.
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0]},
        "latencies": {},
    }
    for latency in profile.latencies:
        key = f"{latency:g}"
        _say(f"ours, {profile.orders} orders, sandbox latency {key} ms")
        ours, paced = bench_runs.measure_ours(
            config, profile.orders, latency, profile.rated_seconds
        )
        _say(f"naive Celery, sandbox latency {key} ms")
        naive = bench_baselines.measure_naive(
            config, profile.orders, latency, profile.baseline_seconds
        )
        _say(f"plain loop, sandbox latency {key} ms")
        loop = bench_baselines.measure_loop(
            config, profile.orders, latency, profile.baseline_seconds
        )
        result["latencies"][key] = {
            "latency_ms": latency,
            "ours": ours,
            "ours_half_rate": paced,
            "naive_celery": naive,
            "plain_loop": loop,
            "ratios": {
                "ours_vs_naive": _ratio(ours["throughput"], naive["throughput"]),
                "ours_vs_loop": _ratio(ours["throughput"], loop["throughput"]),
            },
        }
    _say(f"enqueue, {max(profile.orders, 5_000)} orders")
    result["enqueue"] = bench_runs.measure_enqueue(config, max(profile.orders, 5_000))
    if profile.long:
        _say(f"memory over a long run of {profile.long} orders")
        result["memory"] = bench_runs.measure_memory(config, profile.long)
    result["seconds"] = time.monotonic() - started
    result["machine"]["load_average_end"] = os.getloadavg()[0]
    result["pids"] = list(config.pids)
    result["targets"] = targets(result)
    return result


def _ratio(ours: float, other: float) -> float | None:
    return ours / other if other else None
