"""The printed table of `jetti-relay bench footprint` (ops/bench/footprint.py): per order, one
column per phase, then the memory of an order's keys and the fixed costs of a worker."""

from __future__ import annotations

from typing import Any

PHASES = ("accept", "deliver", "shed", "whole_order")
# Commands shown by name per phase; the rest are summed on one line.
TOP_COMMANDS = 12


def _row(label: str, values: list[str]) -> str:
    return f"{label:<34}" + "".join(f"{v:>13}" for v in values)


def render_table(result: dict[str, Any]) -> str:
    """The figures of one run, as text."""
    config = result["config"]
    phases = [p for p in PHASES if p in result]
    out = [
        f"bench footprint: {config['orders']} orders of {config['lines']} lines "
        f"(raw order {result['raw_order_bytes']:.0f} B), Redis {result['redis_version']}, "
        f"AOF everysec, {config['concurrency']} worker processes, accepted via {config['via']}",
        "",
        _row("per order", phases),
    ]
    figures = [
        ("commands (scripts' inner included)", "commands_per_order", "{:.1f}"),
        ("  of which script calls", "script_calls_per_order", "{:.2f}"),
        ("network in (B)", "net_in_bytes_per_order", "{:,.0f}"),
        ("network out (B)", "net_out_bytes_per_order", "{:,.0f}"),
        ("used_memory delta (B)", "used_memory_delta_per_order", "{:,.0f}"),
        ("AOF (B)", "aof_bytes_per_order", "{:,.0f}"),
        ("Redis CPU (us)", "redis_cpu_us_per_order", "{:.1f}"),
        ("seconds (deliver: with start-up)", "seconds", "{:.2f}"),
    ]
    for label, key, fmt in figures:
        out.append(_row(label, [fmt.format(result[p][key]) for p in phases]))
    for phase in ("accept", "deliver", "shed"):
        out += ["", f"{phase}: commands per order by name"]
        by_name = list(result[phase]["by_command_per_order"].items())
        for name, n in by_name[:TOP_COMMANDS]:
            out.append(f"  {name:<24}{n:>10.2f}")
        rest = sum(n for _name, n in by_name[TOP_COMMANDS:])
        if rest:
            out.append(f"  {'(others)':<24}{rest:>10.2f}")
    out += ["", _row("memory per order (B)", ["in flight", "settled", "tombstone"])]
    stages = ("in_flight", "settled", "tombstone")
    for name in ("order_hash", "events", "attempts", "total"):
        out.append(
            _row(
                f"  MEMORY USAGE {name}",
                [f"{result[s]['per_order_keys'][name]:,.0f}" for s in stages],
            )
        )
    shared = sorted({n for s in stages for n in result[s]["shared_keys_per_order"]})
    for name in shared:
        out.append(
            _row(
                f"  {name}",
                [f"{result[s]['shared_keys_per_order'].get(name, 0):,.0f}" for s in stages],
            )
        )
    out.append(
        _row(
            "  used_memory since start",
            [f"{result[s]['used_memory_per_order']:,.0f}" for s in stages],
        )
    )
    fixed = result["fixed"]
    out += [
        "",
        f"fixed: a worker's start-up {fixed['worker_start_commands']} commands; "
        f"an idle worker {fixed['idle_commands_per_s']:.1f} commands/s ("
        + ", ".join(
            f"{name} {n:.1f}" for name, n in list(fixed["idle_by_command_per_s"].items())[:5]
        )
        + ")",
        f"sandbox: {result['sandbox']['sales']} sales, "
        f"{result['sandbox']['duplicates']} duplicates; ledger states {result['states']}",
    ]
    return "\n".join(out)
