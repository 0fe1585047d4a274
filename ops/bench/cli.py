"""`jetti-relay bench`: the real pipeline against two baselines, one table, pass/fail targets.

Every measurement starts its own private Redis, sandbox and workers (`ops/bench/runs.py`) and
stops them before the next. For each sandbox latency: our pipeline flat out and paced at half
the rate it reached, the naive one-task-per-order Celery app (`ops/bench/naive.py`, same pool,
processes and prefetch), and a plain sequential httpx loop. Then the producer's enqueue rate
on an idle Redis and, with `--long N`, worker memory after 10% and 100% of N orders.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click

# Targets (issue 6), printed as pass/fail next to the figures.
TARGET_VS_NAIVE = 1.0  # ours / naive Celery, at every latency
TARGET_E2E = {0.0: 500.0, 50.0: 300.0}  # orders/s end to end, by sandbox latency (ms)
TARGET_ENQUEUE = 5_000.0  # orders/s through the producer
TARGET_P99_S = 1.0  # p99 enqueue -> Jetti acceptance at half the max rate


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


@click.command()
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="quick",
    show_default=True,
    help="Preset sizes; the options below override it.",
)
@click.option("--orders", type=click.IntRange(min=1), help="Orders per throughput run.")
@click.option("--lines", type=click.IntRange(min=1), help="Lines per order.")
@click.option(
    "--processes",
    "-c",
    type=click.IntRange(min=1),
    help="Celery prefork processes per worker (ours and the naive baseline alike).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker instances.")
@click.option(
    "--concurrency",
    "submit_concurrency",
    type=click.IntRange(min=1),
    help="In-flight submissions per process, ours only (JETTI_RELAY_SUBMIT_CONCURRENCY).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Order keys per message, ours only (JETTI_RELAY_BATCH_SIZE).",
)
@click.option(
    "--latency",
    "latencies",
    callback=_latencies,
    help="Sandbox latencies in ms, comma-separated (e.g. 0,50).",
)
@click.option(
    "--long",
    "long",
    type=click.IntRange(min=0),
    help="Orders in the memory-flatness run (0 skips it).",
)
@click.option(
    "--rated-seconds",
    type=click.FloatRange(min=0),
    help="Length of the run paced at half the max rate (0 skips it).",
)
@click.option(
    "--paced-tick-ms",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="The paced run enqueues whatever is due this often (webhooks: one by one).",
)
@click.option(
    "--baseline-seconds",
    type=click.FloatRange(min=1),
    help="Longest the naive Celery run and the plain loop may take.",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Write every figure as JSON here."
)
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs and print where.")
def bench(
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
    """Benchmark the real pipeline against naive Celery and a plain loop; print one table."""
    import shutil

    from ops.bench.common import RunConfig
    from ops.harness.ports import ServiceError
    from ops.harness.services import exit_on_sigterm

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
    keep = keep_logs
    try:
        result = run(chosen, config, profile)
        if json_path is not None:
            json_path.write_text(json.dumps(result, indent=2, sort_keys=True))
        click.echo(render(result))
    except ServiceError as exc:
        keep = True
        raise click.ClickException(f"{exc} (logs in {folder})") from exc
    finally:
        if keep:
            click.echo(f"logs kept in {folder}", err=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def run(profile: Profile, config: Any, name: str) -> dict[str, Any]:
    """Every measurement of `profile`, as one JSON-ready dict with `targets` filled in."""
    from ops.bench import baselines as bench_baselines
    from ops.bench import runs as bench_runs

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


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it passed."""
    out: list[dict[str, Any]] = [
        _target("enqueue >= 5,000/s", result["enqueue"]["rate"], TARGET_ENQUEUE, ">=", "rate"),
    ]
    for key, run in result["latencies"].items():
        latency = run["latency_ms"]
        out.append(
            _target(
                f"ours / naive Celery >= 1.0x @ {key} ms",
                run["ratios"]["ours_vs_naive"],
                TARGET_VS_NAIVE,
                ">=",
                "ratio",
            )
        )
        if latency in TARGET_E2E:
            goal = TARGET_E2E[latency]
            out.append(
                _target(
                    f"end to end >= {goal:g}/s @ {key} ms",
                    run["ours"]["throughput"],
                    goal,
                    ">=",
                    "rate",
                )
            )
        paced = run["ours_half_rate"]
        if paced is not None:
            out.append(
                _target(
                    f"p99 < 1 s at half max rate @ {key} ms",
                    paced["latency_s"]["p99"],
                    TARGET_P99_S,
                    "<",
                    "seconds",
                )
            )
    memory = result.get("memory")
    if memory is not None:
        out.append(
            _target(
                f"worker memory flat within 10% (10% -> 100% of {memory['orders']})",
                memory["worker_growth"],
                0.10,
                "<=",
                "growth",
            )
        )
    return out


def _target(name: str, value: float | None, goal: float, op: str, kind: str) -> dict[str, Any]:
    if value is None:
        passed = False
    elif op == ">=":
        passed = value >= goal
    elif op == "<=":
        passed = value <= goal
    else:
        passed = value < goal
    return {"name": name, "value": value, "goal": goal, "op": op, "kind": kind, "pass": passed}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def _mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f} MB"


def render(result: dict[str, Any]) -> str:
    """The one table: figures, then targets with PASS/FAIL."""
    config = result["config"]
    rows: list[tuple[str, str]] = []
    for key, run in result["latencies"].items():
        ours, naive, loop, paced = (
            run["ours"],
            run["naive_celery"],
            run["plain_loop"],
            run["ours_half_rate"],
        )
        lat = ours["latency_s"]
        rows += [
            (
                f"@ {key} ms  ours end to end ({ours['delivered']}/{ours['orders']} delivered)",
                _rate(ours["throughput"]),
            ),
            (
                f"@ {key} ms  ours latency p50 / p95 / p99",
                f"{_secs(lat['p50'])} / {_secs(lat['p95'])} / {_secs(lat['p99'])}",
            ),
        ]
        if paced is not None:
            plat = paced["latency_s"]
            rows.append(
                (
                    f"@ {key} ms  ours at half max ({_rate(paced['target_rate'])}, "
                    f"every {paced['tick_ms']:g} ms) p50 / p95 / p99",
                    f"{_secs(plat['p50'])} / {_secs(plat['p95'])} / {_secs(plat['p99'])}",
                )
            )
        rows += [
            (
                f"@ {key} ms  naive Celery ({naive['delivered']}/{naive['orders']} delivered"
                + ("" if naive["complete"] else ", time budget hit")
                + ")",
                _rate(naive["throughput"]),
            ),
            (
                f"@ {key} ms  plain sequential loop ({loop['orders']} orders)",
                _rate(loop["throughput"]),
            ),
            (
                f"@ {key} ms  ours / naive Celery, ours / plain loop",
                f"{_x(run['ratios']['ours_vs_naive'])}, {_x(run['ratios']['ours_vs_loop'])}",
            ),
            (
                f"@ {key} ms  CPU s of ours (flat-out run): workers, Redis, sandbox",
                f"{ours['cpu_s']['workers']:.1f}, {ours['cpu_s']['redis']:.1f}, "
                f"{ours['cpu_s']['sandbox']:.1f}",
            ),
            (
                f"@ {key} ms  peak RSS: our workers, naive workers, Redis",
                f"{_mb(ours['peak_rss_kb']['workers'])}, {_mb(naive['peak_rss_kb']['workers'])}, "
                f"{_mb(ours['peak_rss_kb']['redis']['vm_hwm_kb'])} "
                f"(used_memory_peak {_mb(ours['peak_rss_kb']['redis']['used_memory_peak_kb'])})",
            ),
        ]
    enqueue = result["enqueue"]
    rows.append(
        (
            f"enqueue through the producer ({enqueue['orders']} orders, idle Redis)",
            _rate(enqueue["rate"]),
        )
    )
    memory = result.get("memory")
    if memory is not None:
        a, b = memory["at_10pct"], memory["at_100pct"]
        rows.append(
            (
                f"worker RSS at 10% -> 100% of {memory['orders']} orders",
                f"{_mb(a['workers_rss_kb'])} -> {_mb(b['workers_rss_kb'])} "
                f"({memory['worker_growth']:+.1%}); Redis used "
                f"{_mb(a['redis_used_memory_kb'])} -> {_mb(b['redis_used_memory_kb'])}",
            )
        )
    width = max(len(label) for label, _ in rows)
    lines = [
        f"jetti-relay bench, profile {result['profile']}: {config['orders']} orders of "
        f"{config['lines']} lines, {config['workers']} worker(s) x {config['processes']} "
        f"processes, latencies {', '.join(result['latencies'])} ms, {result['seconds']:.0f} s",
        f"machine: {result['machine']['cpus']} CPUs, load average "
        f"{result['machine']['load_average_start']:.1f} at the start, "
        f"{result['machine']['load_average_end']:.1f} at the end (this run adds about 2)",
        "",
        *(f"{label:<{width}}  {value}" for label, value in rows),
        "",
        "targets:",
    ]
    for target in result["targets"]:
        shown = _FORMATS[target["kind"]](target["value"])
        lines.append(f"  {'PASS' if target['pass'] else 'FAIL'}  {target['name']}  ({shown})")
    return "\n".join(lines)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _growth(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


_FORMATS = {"rate": _rate, "ratio": _x, "seconds": _secs, "growth": _growth}
