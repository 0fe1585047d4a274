"""`jetti-relay bench`: every benchmark of the project behind one command.

`jetti-relay bench [--profile ...]` with no subcommand compares the real pipeline with naive Celery
and a plain loop, as it always has (`ops/bench/compare.py`). Each subcommand measures one part:
`pipeline` (one end-to-end orders/s figure for a given set of settings), `enqueue` (the producer
into a Redis you give it), `transform` (the pure transform), `sandbox` (the Jetti sandbox's
async endpoint), `intake` (the library, stream and HTTP ways in, side by side), `footprint`
(what one order costs Redis), `console` (the console's pages on a large store and what a bulk
replay costs new orders) and `restore-drill` (back up, lose and restore a live Redis). Each
subcommand's module is imported only when it runs.
"""

from __future__ import annotations

from typing import Any

import click

from ops.bench.compare import compare_options, run_comparison
from ops.cli import LazyGroup

# Subcommand name -> ("module:attribute", one-line help).
BENCH_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pipeline": ("ops.bench.pipeline:pipeline_bench", "One end-to-end orders/s figure, one line."),
    "enqueue": ("ops.bench.enqueue:enqueue_bench", "Producer throughput into a Redis you give it."),
    "transform": ("ops.bench.transform:transform_bench", "Median time of the pure transform."),
    "sandbox": ("ops.bench.sandbox:sandbox_bench", "Requests/s of the sandbox's async endpoint."),
    "intake": (
        "ops.bench.intake:intake_bench",
        "Library, stream and HTTP intake side by side, against issue 14's targets.",
    ),
    "footprint": (
        "ops.bench.footprint:footprint_bench",
        "Redis commands, bytes, memory, AOF and CPU per order (docs/scaling.md).",
    ),
    "console": (
        "ops.bench.console:console_bench",
        "Console pages on 100k orders / 10k dead letters; new orders' latency during a replay.",
    ),
    "restore-drill": (
        "ops.bench.restore_drill:restore_drill_bench",
        "Back up a live Redis, kill it, restore, check nothing acknowledged is missing.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=BENCH_SUBCOMMANDS,
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
)
@compare_options
@click.pass_context
def bench(ctx: click.Context, /, **options: Any) -> None:
    """Compare the real pipeline with naive Celery and a plain loop (no COMMAND), or measure one
    part of it (COMMAND).

    The options below belong to the comparison; a COMMAND takes its own.
    """
    if ctx.invoked_subcommand is None:
        run_comparison(**options)
        return
    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in options
        and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: options of the comparison (bare `bench`) only; give them after "
            f"`{ctx.invoked_subcommand}` if that command has them"
        )
