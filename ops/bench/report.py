"""The pipeline benchmark's targets (pass/fail against issue 6's goals) and its printed table."""

from __future__ import annotations

from typing import Any

# Targets (issue 6), printed as pass/fail next to the figures.
TARGET_VS_NAIVE = 1.0  # ours / naive Celery, at every latency
TARGET_E2E = {0.0: 500.0, 50.0: 300.0}  # orders/s end to end, by sandbox latency (ms)
TARGET_ENQUEUE = 5_000.0  # orders/s through the producer
TARGET_P99_S = 1.0  # p99 enqueue -> Jetti acceptance at half the max rate


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it passed."""
    out: list[dict[str, Any]] = [
        target_row("enqueue >= 5,000/s", result["enqueue"]["rate"], TARGET_ENQUEUE, ">=", "rate"),
    ]
    for key, run in result["latencies"].items():
        latency = run["latency_ms"]
        out.append(
            target_row(
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
                target_row(
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
                target_row(
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
            target_row(
                f"worker memory flat within 10% (10% -> 100% of {memory['orders']})",
                memory["worker_growth"],
                0.10,
                "<=",
                "growth",
            )
        )
    return out


def target_row(name: str, value: float | None, goal: float, op: str, kind: str) -> dict[str, Any]:
    """One target as the JSON and the table show it: `value op goal` (op is >=, <= or <)
    passes; a missing value fails. `kind` picks how the value prints (`format_value`)."""
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
        *target_lines(result["targets"]),
    ]
    return "\n".join(lines)


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """`targets:` and one `PASS|FAIL  name  (value)` line per target row."""
    lines = ["targets:"]
    for target in rows:
        shown = format_value(target["kind"], target["value"])
        lines.append(f"  {'PASS' if target['pass'] else 'FAIL'}  {target['name']}  ({shown})")
    return lines


def format_value(kind: str, value: float | None) -> str:
    """A figure of `kind` (rate, ratio, seconds, growth, count) as the tables print it."""
    return _FORMATS[kind](value)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _growth(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


_FORMATS = {"rate": _rate, "ratio": _x, "seconds": _secs, "growth": _growth, "count": _count}
