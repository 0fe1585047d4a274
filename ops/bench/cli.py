"""`jetti-relay bench`: every benchmark of the project behind one command.

`jetti-relay bench [--profile ...]` with no subcommand runs the pipeline benchmark, as it always
has (`bench pipeline` is the same thing by name). The other subcommands measure one part each:
`enqueue` (the producer into a Redis you give it), `transform` (the pure transform), `sandbox`
(the Jetti sandbox's async endpoint) and `e2e` (one end-to-end figure for a given set of
settings). Each subcommand's module is imported only when it runs.
"""

from __future__ import annotations

from typing import Any

import click

from ops.bench.pipeline import pipeline_options, run_pipeline
from ops.cli import LazyGroup

# Subcommand name -> ("module:attribute", one-line help).
BENCH_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pipeline": (
        "ops.bench.pipeline:pipeline",
        "The pipeline against naive Celery and a plain loop (the default).",
    ),
    "enqueue": ("ops.bench.enqueue:enqueue_bench", "Producer throughput into a Redis you give it."),
    "transform": ("ops.bench.transform:transform_bench", "Median time of the pure transform."),
    "sandbox": ("ops.bench.sandbox:sandbox_bench", "Requests/s of the sandbox's async endpoint."),
    "e2e": ("ops.bench.e2e:e2e_bench", "One end-to-end orders/s figure for given settings."),
}


@click.group(
    cls=LazyGroup,
    lazy=BENCH_SUBCOMMANDS,
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
)
@pipeline_options
@click.pass_context
def bench(ctx: click.Context, /, **options: Any) -> None:
    """Benchmark the pipeline (no COMMAND, or `pipeline`) or one part of it.

    The options below belong to the pipeline benchmark; a COMMAND takes its own.
    """
    if ctx.invoked_subcommand is None:
        run_pipeline(**options)
        return
    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in options
        and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: pipeline benchmark options only; give them after "
            f"`{ctx.invoked_subcommand}` if that command has them"
        )
