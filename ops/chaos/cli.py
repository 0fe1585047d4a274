"""`jetti-relay chaos`: run the chaos scenarios on a private Redis, sandbox and workers, and print
the books of each one.

Exit codes: 0 every scenario balanced (zero lost, zero harmful duplicates, zero regressions, every
scenario check passed), 1 some scenario did not, 2 usage error.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from worker.core.exit_codes import ExitCode

SCALES = ("ci", "full")
# = ops.chaos.cluster.BROKERS, spelled here so `--help` loads no cluster (nor the Celery app).
BROKERS = ("redis", "amqp")


@click.command()
@click.option(
    "--scenario",
    "-s",
    "names",
    multiple=True,
    metavar="NAME|N",
    help="Scenario name (repeatable; default: all): kill, redis, outage, throttle, slow, "
    "duplicates, replay, rolling, bad-input, lost-message, hostile-producers, config, "
    "retry-after, intake, redis-primary-kill, redis-primary-stall, rabbitmq. Their numbers "
    "1-17, in that order, work too.",
)
@click.option(
    "--scale",
    type=click.Choice(SCALES),
    default="full",
    show_default=True,
    help="ci: the test suite's small runs; full: hundreds of orders, 10,000 hostile.",
)
@click.option(
    "--orders",
    type=click.IntRange(1),
    default=None,
    help="Orders per scenario (overrides the scale).",
)
@click.option(
    "--hostile",
    type=click.IntRange(1),
    default=None,
    help="Hostile raw orders in scenario bad-input (overrides the scale).",
)
@click.option(
    "--kills",
    type=click.IntRange(1),
    default=None,
    help="kill -9s in scenario kill (overrides the scale).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Worker processes (`jetti-relay worker`) per scenario.",
)
@click.option(
    "--broker",
    type=click.Choice(BROKERS),
    default="redis",
    show_default=True,
    help="Celery broker of the run: the ledger's Redis, or a private RabbitMQ node (amqp; the "
    "ledger stays in Redis). Scenario rabbitmq always runs on amqp.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per scenario on stdout.")
@click.option("--keep-logs", is_flag=True, help="Keep the logs and the AOF; print where.")
def chaos(
    names: tuple[str, ...],
    scale: str,
    orders: int | None,
    hostile: int | None,
    kills: int | None,
    workers: int | None,
    broker: str,
    as_json: bool,
    keep_logs: bool,
) -> None:
    """Break the pipeline on purpose (kill -9, Redis restarts, Jetti outages, 429 storms,
    slow answers, duplicates, replays, rolling restarts, hostile input, lost messages, hostile
    producers, configuration faults, absurd Retry-After, a Redis primary killed or stalled
    under Sentinel, RabbitMQ restarts) and check the books after each scenario: nothing lost,
    nothing sent twice."""
    from ops.options import SANDBOX_MODULES, require_extra

    require_extra("chaos", "hypothesis", *SANDBOX_MODULES)
    from ops.chaos.run import resolve, run_all
    from ops.chaos.scenarios import CI_SCALE, FULL_SCALE

    try:
        chosen_names = resolve(names)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    chosen = CI_SCALE if scale == "ci" else FULL_SCALE
    overrides = {
        k: v
        for k, v in (
            ("orders", orders),
            ("hostile", hostile),
            ("kills", kills),
            ("workers", workers),
        )
        if v is not None
    }
    chosen = dataclasses.replace(chosen, **overrides)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-chaos-"))
    click.echo(
        f"chaos: scenarios {', '.join(chosen_names)}, scale {scale} ({chosen}), broker {broker}",
        err=True,
    )
    started = time.monotonic()

    def show(result: object) -> None:
        from ops.chaos.flow import ScenarioResult

        assert isinstance(result, ScenarioResult)
        if as_json:
            click.echo(json.dumps(_as_dict(result)))
        else:
            mark = "ok  " if result.ok else "FAIL"
            click.echo(f"{mark} {result.summary()} ({result.elapsed_s:.0f} s)")
            for failure in result.failures:
                click.echo(f"       check failed: {failure}")
            for problem in result.books.problems[:10]:
                click.echo(f"       books: {problem}")
            if result.books.dead_reasons:
                click.echo(f"       dead letters by reason: {result.books.dead_reasons}")

    try:
        results = run_all(
            chosen_names,
            chosen,
            folder,
            on_result=show,
            broker="amqp" if broker == "amqp" else "redis",
        )
    finally:
        if keep_logs:
            click.echo(f"logs kept in {folder}", err=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    totals = {
        k: sum(getattr(r.books, k) for r in results)
        for k in (
            "sent",
            "delivered",
            "dead_lettered",
            "cancelled",
            "lost",
            "harmless_duplicates",
            "harmful_duplicates",
            "regressions",
        )
    }
    click.echo(
        f"chaos: {len(results) - len(failed)} of {len(results)} scenarios balanced in "
        f"{time.monotonic() - started:.0f} s; "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()),
        err=True,
    )
    sys.exit(ExitCode.FAILED if failed else ExitCode.OK)


def _as_dict(result: object) -> dict[str, object]:
    from ops.chaos.flow import ScenarioResult

    assert isinstance(result, ScenarioResult)
    return {
        "scenario": result.number,
        "name": result.name,
        "ok": result.ok,
        "recover_s": result.recover_s,
        "elapsed_s": round(result.elapsed_s, 1),
        **dataclasses.asdict(result.books),
        "figures": result.figures,
        "failures": result.failures,
    }
