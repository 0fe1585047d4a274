"""`jetti-relay bench intake`'s targets (issue 14) and its printed table.

Figures are medians over the run's repeats; each row lists every run's value after it.
"""

from __future__ import annotations

from typing import Any

from ops.bench.report import target_lines, target_row

TARGET_STREAM = 10_000.0  # orders/s into the ledger, one intake process, XADD from another
TARGET_STREAM_VS_LIBRARY = 1.0  # stream intake / producers.enqueue, same run
TARGET_NDJSON = 3_000.0  # orders/s, NDJSON batches of 100
TARGET_SINGLE = 1_000.0  # requests/s, one order each, keep-alive
TARGET_OPEN_P99_S = 0.050  # p99 accept latency at half that load


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue-14 target with its measured value and whether it passed."""
    open_loop = result["http_open"]
    ledger = result["ledger"]
    return [
        target_row(
            "stream intake >= 10,000 orders/s",
            result["stream"]["rate"],
            TARGET_STREAM,
            ">=",
            "rate",
        ),
        target_row(
            "stream intake / library enqueue >= 1.0x",
            result["stream"]["vs_library"],
            TARGET_STREAM_VS_LIBRARY,
            ">=",
            "ratio",
        ),
        target_row(
            f"HTTP NDJSON (batches of {result['config']['batch']}) >= 3,000 orders/s",
            result["http_ndjson"]["rate"],
            TARGET_NDJSON,
            ">=",
            "rate",
        ),
        target_row(
            "HTTP one order per request >= 1,000 requests/s",
            result["http_single"]["rate"],
            TARGET_SINGLE,
            ">=",
            "rate",
        ),
        target_row(
            f"HTTP p99 accept latency < 50 ms at {open_loop['target_rate']:,.0f} requests/s",
            open_loop["latency_s"]["p99"],
            TARGET_OPEN_P99_S,
            "<",
            "seconds",
        ),
        target_row(
            "every order sent is in the ledger, no request failed",
            ledger["missing"] + ledger["failed"],
            0,
            "<=",
            "count",
        ),
    ]


def _rate(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f} {unit}/s".replace(" /s", "/s")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.1f} ms"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} µs"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _runs(values: list[float | None], show: Any = _number, what: str = "runs") -> str:
    """Every run's value, when there was more than one (the figure before it is their median)."""
    return "" if len(values) < 2 else f"  ({what} {' / '.join(show(v) for v in values)})"


def _share(runs: list[dict[str, Any]]) -> str:
    """The load generator's busiest CPU share: near 100% it, not the server, was the limit."""
    return f"{max(r['client_cpu_share'] for r in runs):.0%}"


def render(result: dict[str, Any]) -> str:
    """The one table: figures, then targets with PASS/FAIL."""
    config = result["config"]
    library, stream = result["library"], result["stream"]
    ndjson, single, paced = result["http_ndjson"], result["http_single"], result["http_open"]
    framework = result["framework"]
    conns = config["connections"]
    rows: list[tuple[str, str]] = [
        (
            f"library: producers.enqueue, raw JSON bytes ({config['orders']} orders)",
            _rate(library["rate"]) + _runs([r["rate"] for r in library["runs"]]),
        ),
        (
            f"stream intake: XADD from another process -> ledger ({config['orders']} orders)",
            _rate(stream["rate"]) + _runs([r["rate"] for r in stream["runs"]]),
        ),
        (
            "  stream intake CPU per order; the XADD feeder's own rate",
            f"{_us(stream['intake_cpu_us_per_order'])}; {_rate(stream['feeder_rate'])}",
        ),
        ("stream intake / library", f"{stream['vs_library']:.2f}x"),
        (
            f"HTTP NDJSON, {config['batch']} orders per request, {conns} connections "
            f"({config['orders']} orders)",
            _rate(ndjson["rate"], "orders") + _runs([r["orders_per_s"] for r in ndjson["runs"]]),
        ),
        (
            f"HTTP one order per request, {conns} connections, closed loop "
            f"({config['single']} requests)",
            _rate(single["rate"], "requests") + _runs([r["rate"] for r in single["runs"]]),
        ),
        (
            "  intake CPU per order: NDJSON, one per request; load generator's CPU share",
            f"{_us(ndjson['intake_cpu_us_per_order'])}, "
            f"{_us(single['intake_cpu_us_per_order'])}; "
            f"{_share(ndjson['runs'] + single['runs'])}",
        ),
        (
            f"HTTP one order per request, open loop at {paced['target_rate']:,.0f}/s "
            f"for {config['seconds']:g} s: p50 / p99 accept latency",
            f"{_ms(paced['latency_s']['p50'])} / {_ms(paced['latency_s']['p99'])}"
            + _runs([r["latency_s"]["p99"] for r in paced["runs"]], _ms, "p99 of the runs")
            + f", {_rate(paced['rate'])} answered",
        ),
    ]
    for key, label in (
        ("sandbox", "raw-ASGI sandbox: GET unrouted path (404)"),
        ("intake", "intake's Starlette app: GET unrouted path (404)"),
        ("intake_health", "intake's Starlette app: GET /health"),
    ):
        figure = framework[key]
        rows.append(
            (
                f"{label}, {conns} connections",
                f"{_rate(figure['rate'], 'requests')}, server CPU "
                f"{_us(figure['server_cpu_us_per_request'])}/request"
                + _runs([r["rate"] for r in figure["runs"]]),
            )
        )
    rows += [
        (
            "Starlette intake / raw ASGI (unrouted GET): requests/s; extra CPU per request",
            f"{framework['ratio']:.2f}x; +{_us(framework['extra_cpu_us_per_request'])}",
        ),
        (
            "orders sent / in the ledger / failed requests",
            f"{result['ledger']['sent']:,} / {result['ledger']['held']:,} / "
            f"{result['ledger']['failed']:,}",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    machine = result["machine"]
    lines = [
        f"jetti-relay bench intake: {config['orders']} orders of {config['lines']} lines per "
        f"throughput run, {config['repeat']} run(s) of each (medians), one private Redis, "
        f"{result['seconds']:.0f} s",
        f"machine: {machine['cpus']} CPUs, load average {machine['load_average_start']:.1f} at "
        f"the start, {machine['load_average_end']:.1f} at the end",
        "",
        *(f"{label:<{width}}  {value}" for label, value in rows),
        "",
        *target_lines(result["targets"]),
    ]
    return "\n".join(lines)
