"""`jetti-relay dlq replay`: dead letters back through the normal pipeline.

The logic lives in `worker/pipeline/replayer.py` (usable without the CLI); this module selects
entries, reads a corrected raw order from a file or an editor, paces the run and reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ops.dlq.common import EXIT_CODES_HELP, echo_json, fail, filter_options, open_stores
from ops.dlq.jobs_cli import JOB_EXIT_CODES_HELP, job_forms
from ops.options import redis_url_option
from worker.core.dead_entry import DeadEntry
from worker.core.exit_codes import ExitCode
from worker.core.privacy import decode_document
from worker.core.replay_plan import (
    SENDING,
    Action,
    CorrectedRaw,
    ReplayInputError,
    ReplayMode,
    Step,
    Summary,
    parse_corrected_raw,
)
from worker.core.states import DeadStatus
from worker.pipeline.replayer import Replayer
from worker.store.audit import os_user
from worker.store.dead_query import DeadFilter, iter_entries
from worker.wiring import Stores

if TYPE_CHECKING:
    from worker.publisher import Publisher

# Steps listed by --dry-run unless --sample says otherwise.
DEFAULT_SAMPLE = 10
# Runs with fewer entries than this finish before a progress bar would be worth drawing.
PROGRESS_MIN = 2


def _select(
    stores: Stores, order_keys: tuple[str, ...], flt: DeadFilter, started: float
) -> tuple[list[str], list[str]]:
    """(keys to consider, keys given that have no dead letter). A filter run takes every entry
    not resolved and dead-lettered before the run started, so an order that fails again during
    this run is not replayed twice by it."""
    if order_keys:
        found = [k for k in dict.fromkeys(order_keys) if stores.dead.get(k) is not None]
        return found, [k for k in order_keys if k not in found]
    keys = [
        e.order_key
        for e in iter_entries(stores.dead, flt.bounded(started))
        if e.status is not DeadStatus.RESOLVED
    ]
    return keys, []


def _corrected(
    stores: Stores, order_key: str, raw_file: Path | None, edit: bool
) -> CorrectedRaw | None:
    if raw_file is None and not edit:
        return None
    entry = stores.ledger.get(order_key)
    stored = entry.raw if entry is not None and entry.raw is not None else None
    if stored is None:
        dead = stores.dead.get(order_key)
        stored = dead.raw if dead is not None else None
    if raw_file is not None:
        try:
            data = raw_file.read_bytes()
        except OSError as exc:
            fail(f"{raw_file}: cannot read: {exc.strerror}", ExitCode.USAGE)
        return _parse(
            data,
            order_key,
            str(raw_file),
            stored,
            max_future_skew_s=stores.settings.max_future_skew_s,
        )
    document = decode_document(stored)
    text = (
        document
        if isinstance(document, str)
        else json.dumps(document, indent=2, ensure_ascii=False)
    )
    while True:
        edited = click.edit(text, extension=".json", require_save=True)
        if edited is None:
            fail("editor closed without saving: nothing replayed", ExitCode.USAGE)
        try:
            return parse_corrected_raw(
                edited.encode(),
                order_key=order_key,
                where="edited order",
                stored_raw=stored,
                now_s=time.time(),
                max_future_skew_s=stores.settings.max_future_skew_s,
            )
        except ReplayInputError as exc:
            click.echo(str(exc), err=True)
            if not click.confirm("Edit again?", default=True, err=True):
                fail("the corrected order is invalid: nothing replayed", ExitCode.USAGE)
            text = edited


def _parse(
    data: bytes, order_key: str, where: str, stored: bytes | None, *, max_future_skew_s: float
) -> CorrectedRaw:
    try:
        return parse_corrected_raw(
            data,
            order_key=order_key,
            where=where,
            stored_raw=stored,
            now_s=time.time(),
            max_future_skew_s=max_future_skew_s,
        )
    except ReplayInputError as exc:
        click.echo(str(exc), err=True)
        fail(f"{where}: invalid raw order: nothing replayed", ExitCode.USAGE)


def _mode(resend_stored: bool, raw_file: Path | None, edit: bool) -> ReplayMode:
    chosen = [
        name
        for name, on in (
            ("--resend-stored", resend_stored),
            ("--raw-file", raw_file is not None),
            ("--edit", edit),
        )
        if on
    ]
    if len(chosen) > 1:
        fail(f"choose one of {', '.join(chosen)}", ExitCode.USAGE)
    if resend_stored:
        return ReplayMode.RESEND_STORED
    if raw_file is not None or edit:
        return ReplayMode.CORRECTED_RAW
    return ReplayMode.RETRANSFORM


@click.command(epilog=f"{EXIT_CODES_HELP} {JOB_EXIT_CODES_HELP}")
@click.argument("order_keys", nargs=-1, metavar="[KEY]...")
@filter_options(with_status=False)
@click.option(
    "--all",
    "replay_all",
    is_flag=True,
    help="Replay every dead letter (needed when no KEY and no filter is given).",
)
@click.option(
    "--dry-run", is_flag=True, help="Say how many would be replayed, with a sample; send nothing."
)
@click.option(
    "--sample",
    default=DEFAULT_SAMPLE,
    show_default=True,
    type=click.IntRange(min=0),
    help="Entries listed by --dry-run.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Send at most this many orders.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many orders per second.",
)
@click.option(
    "--resend-stored",
    is_flag=True,
    help="Send the stored payload unchanged instead of re-transforming the raw order.",
)
@click.option(
    "--raw-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A corrected raw order (JSON) to send instead; one KEY only.",
)
@click.option(
    "--edit", is_flag=True, help="Correct the stored raw order in $EDITOR first; one KEY only."
)
@click.option(
    "--accept-line-changes",
    is_flag=True,
    help="Send an update that drops lines already in Jetti (lines_changed), once you "
    "have checked the sale there.",
)
@click.option(
    "--job",
    is_flag=True,
    help="Run it as a job of the worker fleet: estimate, confirm, then follow its progress.",
)
@click.option("--yes", is_flag=True, help="With --job: create the job without asking.")
@click.option("--detach", is_flag=True, help="With --job: create it and return; the fleet runs it.")
@click.option("--status", "status_id", metavar="JOB", help="Show a job's progress and counts.")
@click.option("--cancel", "cancel_id", metavar="JOB", help="Cancel a job (between two chunks).")
@click.option("--json", "as_json", is_flag=True, help="Every step and the summary as JSON.")
@redis_url_option
def replay(
    order_keys: tuple[str, ...],
    flt: DeadFilter,
    replay_all: bool,
    dry_run: bool,
    sample: int,
    limit: int | None,
    rate: float | None,
    resend_stored: bool,
    raw_file: Path | None,
    edit: bool,
    accept_line_changes: bool,
    job: bool,
    yes: bool,
    detach: bool,
    status_id: str | None,
    cancel_id: str | None,
    as_json: bool,
    redis_url: str | None,
) -> None:
    """Send dead letters through the normal pipeline again, by KEY or by the filters.

    By default the worker re-transforms the stored raw order with the current code and rules.
    The order is re-armed in the ledger (its version never goes down), its key is published, and
    the worker sends it under the usual lock and idempotency checks. The entry keeps its history:
    it becomes `replayed`, then `resolved` when Jetti accepts it, or `dead` again with the new
    attempt appended. Killing a replay half-way loses nothing; running it again sends nothing
    twice (orders already re-armed are only re-published, in-flight ones are left alone).

    \b
    Examples:
      jetti-relay dlq replay --reason retries_exhausted --since 6h --dry-run
      jetti-relay dlq replay --reason rejected --limit 100 --rate 5
      jetti-relay dlq replay shop-a:1001 --resend-stored
      jetti-relay dlq replay shop-a:1001 --raw-file fixed.json
      jetti-relay dlq replay --job --reason rejected --since 24h --dry-run
      jetti-relay dlq replay --job --reason rejected --since 24h --yes --detach
      jetti-relay dlq replay --status 19ac4f2e3b17f3a2
      jetti-relay dlq replay --cancel 19ac4f2e3b17f3a2

    With --job the worker fleet replays a snapshot of the selection at its replay share of the
    rate; leaving the command (or --detach) leaves the job running.
    """
    job_forms(
        job=job,
        status_id=status_id,
        cancel_id=cancel_id,
        order_keys=order_keys,
        flt=flt,
        replay_all=replay_all,
        single_key_options=[
            name
            for name, given in (
                ("--limit", limit is not None),
                ("--rate", rate is not None),
                ("--raw-file", raw_file is not None),
                ("--edit", edit),
            )
            if given
        ],
        options={"resend_stored": resend_stored, "accept_line_changes": accept_line_changes},
        dry_run=dry_run,
        sample=sample,
        yes=yes,
        detach=detach,
        as_json=as_json,
        redis_url=redis_url,
    )
    mode = _mode(resend_stored, raw_file, edit)
    if mode is ReplayMode.CORRECTED_RAW and (len(order_keys) != 1 or not flt.is_empty):
        fail("--raw-file and --edit take exactly one KEY and no filters", ExitCode.USAGE)
    if not order_keys and flt.is_empty and not replay_all:
        fail("name KEYs, give a filter, or pass --all to replay every dead letter", ExitCode.USAGE)
    stores = open_stores(redis_url)
    started = time.time()
    keys, missing = _select(stores, order_keys, flt, started)
    corrected = (
        _corrected(stores, keys[0], raw_file, edit)
        if keys and mode is ReplayMode.CORRECTED_RAW
        else None
    )
    replayer = Replayer(
        ledger=stores.ledger,
        dead_letters=stores.dead,
        publisher=_LazyPublisher(stores),
        audit=stores.audit,
        actor=os_user(),
    )
    summary, steps = Summary.empty(), []
    err = Console(stderr=True)
    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=as_json or dry_run or len(keys) < PROGRESS_MIN,
    ) as progress:
        task = progress.add_task("replay", total=len(keys))
        next_at = time.monotonic()
        for key in keys:
            if limit is not None and summary.sent >= limit:
                break
            entry = stores.dead.get(key)
            if entry is None:  # purged meanwhile
                progress.advance(task)
                continue
            if dry_run:
                step = replayer.plan(entry, mode=mode, corrected=corrected)
            else:
                if rate is not None:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                step = _replay_one(replayer, entry, mode, corrected, accept_line_changes)
                if step.action in SENDING and rate is not None:
                    next_at = time.monotonic() + 1.0 / rate
            summary.add(step)
            steps.append(step)
            progress.advance(task)
    summary.counts[Action.NOT_REPLAYABLE] += len(missing)
    _report(steps, missing, summary, dry_run=dry_run, sample=sample, as_json=as_json)
    failed = summary.counts[Action.NOT_REPLAYABLE]
    if order_keys and not keys:  # every named key unknown
        raise click.exceptions.Exit(ExitCode.NOT_FOUND)
    raise click.exceptions.Exit(ExitCode.PARTIAL if failed else ExitCode.OK)


def _replay_one(
    replayer: Replayer,
    entry: DeadEntry,
    mode: ReplayMode,
    corrected: CorrectedRaw | None,
    accept_line_changes: bool,
) -> Step:
    try:
        return replayer.replay(
            entry, mode=mode, corrected=corrected, accept_line_changes=accept_line_changes
        )
    except ReplayInputError as exc:
        return Step(entry.order_key, Action.NOT_REPLAYABLE, str(exc))


def _report(
    steps: list[Step],
    missing: list[str],
    summary: Summary,
    *,
    dry_run: bool,
    sample: int,
    as_json: bool,
) -> None:
    if as_json:
        echo_json(
            {
                "dry_run": dry_run,
                "steps": [
                    {
                        "order_key": s.order_key,
                        "action": str(s.action),
                        "why": s.why,
                        "ledger_state": None if s.ledger_state is None else str(s.ledger_state),
                    }
                    for s in steps
                ],
                "missing": missing,
                "summary": {str(a): n for a, n in summary.counts.items()},
            }
        )
        return
    shown = steps[:sample] if dry_run else [s for s in steps if s.action not in SENDING]
    for step in shown:
        click.echo(f"{step.order_key}: {step.action} ({step.why})", err=not dry_run)
    for key in missing:
        click.echo(f"{key}: no dead letter under this key", err=True)
    if dry_run:
        click.echo(
            f"dry run, nothing sent: would send {summary.sent} of {len(steps)} "
            f"entries considered; {summary.line(dry_run=True)}"
        )
    else:
        click.echo(summary.line())


class _LazyPublisher:
    """Builds the Celery app only when the first key is published (a dry run never does, and
    the other dlq commands never import Celery)."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._publisher: Publisher | None = None

    def publish(self, order_keys: Sequence[str]) -> int:
        if self._publisher is None:
            from worker.wiring import publisher

            self._publisher = publisher(self._stores.settings)
        return self._publisher.publish(order_keys)
