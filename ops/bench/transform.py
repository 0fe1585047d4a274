"""Median wall time of `transform` for a 10-line order and for one line split into 1,000 units.

Run: `jetti-relay bench transform [--repeat N]`. Prints one line per case, in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import click

from worker.core.contract import RawOrder, parse_raw_order
from worker.core.rules import Rules
from worker.core.transform import transform

# Timed runs per case; the median hides the odd GC pause.
DEFAULT_REPEAT = 200


def _ten_lines() -> RawOrder:
    lines = [
        {
            "id": f"l{i}",
            "sku": f"SKU-{i}",
            "name": f"Item {i}",
            "quantity": 2,
            "unit_price": "19.99",
            "properties": {"colour": "red"},
        }
        for i in range(10)
    ]
    return parse_raw_order({"id": "bench-10", "number": "10", "lines": lines})


def _thousand_units() -> RawOrder:
    units: list[dict[str, Any]] = [{"properties": {"engraving": f"n{i}"}} for i in range(1000)]
    line = {"id": "l", "sku": "RING", "name": "Ring", "quantity": 1000, "unit_price": "9.5"}
    return parse_raw_order({"id": "bench-1000", "lines": [{**line, "units": units}]})


def _median_ms(order: RawOrder, repeat: int) -> float:
    rules = Rules.empty()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        transform(order, rules)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@click.command("transform")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=DEFAULT_REPEAT,
    show_default=True,
    help="Timed runs per case (the median is printed).",
)
def transform_bench(repeat: int) -> None:
    """Print the median time of `transform` for a 10-line order and for 1,000 units."""
    click.echo(f"10-line order:        median {_median_ms(_ten_lines(), repeat):.3f} ms")
    click.echo(f"1 line of 1000 units: median {_median_ms(_thousand_units(), repeat):.3f} ms")
