"""`jetti-relay migrate-keys`: move a Redis written before issue 12 to the encoded key names.

Renames every ledger entry (in flight, settled, dead, tombstones) with its events and attempts
lists and its lock, and every dead letter with its attempts and history lists, to the names
`worker.core.keys.Keys` builds now (the order key percent-encoded); repairs what id collisions left
behind and lowers far-future versions (see `worker.store.migrate`). Idempotent: run it again and it
finds nothing to do. Stop the producers and workers of the old version first.

Exit codes: 0 done, nothing left; 1 done in part: names left for an engineer (a conflict: an
entry under both names; or a name still holding another order's data), each printed; 2 usage
error; 4 Redis unreachable or older than supported; 5 Redis refused a command part-way (OOM,
READONLY, BUSY...): what was done stays done, run it again.
"""

from __future__ import annotations

import time

import click
import orjson
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ops.dlq.common import redis_failure_line
from ops.options import redis_url_option, settings_from_options
from worker.core.exit_codes import ExitCode
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S

EXIT_HELP = (
    "Exit codes: 0 done, nothing left; 1 done in part (names left for an engineer, "
    "each printed); 2 usage error; 4 Redis unreachable or too old; 5 Redis refused a "
    "command part-way (run it again)."
)
# Index members below which no progress is shown (the run is over before it would matter); above,
# a bar on a terminal, else a line on stderr every tenth of the way (logs of a batch job).
PROGRESS_MIN_MEMBERS = 2000


def _name(text: str) -> str:
    # Key names may hold any character an order id holds (newlines...): print them quoted.
    return orjson.dumps(text).decode()


@click.command("migrate-keys", epilog=EXIT_HELP)
@redis_url_option
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
@click.option(
    "--max-future-skew-s",
    type=click.FloatRange(min=0),
    default=None,
    help="A stored version further ahead of now than this is lowered (default: "
    f"JETTI_RELAY_MAX_FUTURE_SKEW_S, else {DEFAULT_MAX_FUTURE_SKEW_S:.0f}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def migrate_keys(
    redis_url: str | None, dry_run: bool, max_future_skew_s: float | None, as_json: bool
) -> None:
    """Rename per-order Redis keys to the encoded format and repair collision damage."""
    # Imported here so `jetti-relay --help` stays fast (Celery and Redis load on use only).
    from kombu.exceptions import OperationalError

    from worker.redisconn import RedisTooOld
    from worker.store.migrate import KeyMigration
    from worker.wiring import connect_supported
    from worker.wiring import keys as wiring_keys
    from worker.wiring import publisher as build_publisher

    settings = settings_from_options(redis_url=redis_url)
    skew_s = settings.max_future_skew_s if max_future_skew_s is None else max_future_skew_s
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        client = connect_supported(settings)
    except (redis.ConnectionError, redis.TimeoutError, RedisTooOld) as exc:
        errors.print(redis_failure_line(exc), markup=False)
        raise SystemExit(ExitCode.REDIS_UNREACHABLE) from exc
    publisher = None if dry_run else build_publisher(settings)
    try:
        progress = Progress(
            TextColumn("migrate-keys"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
            disable=not errors.is_terminal,
        )
        with progress:
            task = progress.add_task("migrate", total=None)
            done = [0, 0]  # members handled, and at the last progress line (not a terminal)

            def advance(n: int) -> None:
                progress.advance(task, n)
                done[0] += n
                if (
                    not errors.is_terminal
                    and total >= PROGRESS_MIN_MEMBERS
                    and done[0] - done[1] >= total // 10
                ):
                    done[1] = done[0]
                    errors.print(f"migrate-keys: {done[0]} of {total} index members", markup=False)

            migration = KeyMigration(
                client,
                wiring_keys(settings),
                publisher=publisher,
                now=time.time(),
                max_future_skew_s=skew_s,
                dry_run=dry_run,
                on_progress=advance,
            )
            total = migration.total_members()
            progress.update(task, total=total, visible=total >= PROGRESS_MIN_MEMBERS)
            report = migration.run()
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
        errors.print(redis_failure_line(exc), markup=False)
        raise SystemExit(ExitCode.REDIS_UNREACHABLE) from exc
    except redis.RedisError as exc:
        errors.print(
            f"error: Redis refused a command part-way ({type(exc).__name__}: {exc}); "
            "what was done stays done: run migrate-keys again",
            markup=False,
        )
        # Redis answered with an error part-way (as `enqueue`'s 5): not "names left" (1).
        raise SystemExit(ExitCode.REDIS_REFUSED) from exc
    finally:
        client.close()
    if as_json:
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        would = "would " if dry_run else ""
        for old, new in report.renamed:
            click.echo(f"{would}rename {_name(old)} -> {_name(new)}")
        for old, new in report.merged:
            click.echo(f"{would}merge {_name(old)} into {_name(new)}")
        for key, before, after in report.lowered:
            click.echo(
                f"{would}lower the version of {_name(key)} from {before} to {after} ms "
                "(far future; the newest copy it counted stale wins when sent again)"
            )
        for key in report.cancels_marked:
            click.echo(
                f"{would}mark {_name(key)} cancelled (terminal: its stored raw order "
                "carries cancelled_at)"
            )
        for key, index in report.reindexed:
            click.echo(f"{would}re-index dead letter {_name(key)} in {_name(index)}")
        for key in report.republished:
            click.echo(f"{would}re-publish {_name(key)} (half-recorded by an id collision)")
        for name in report.conflicts:
            click.echo(f"conflict: {_name(name)} and its new name both hold an entry; left")
        for name in report.foreign_left:
            click.echo(f"left: {_name(name)} still holds another order's data")
        click.echo(report.line())
    raise SystemExit(ExitCode.OK if report.complete else ExitCode.PARTIAL)
