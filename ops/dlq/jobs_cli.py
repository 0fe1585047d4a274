"""The job side of `jetti-relay dlq`: `dlq replay --job` (estimate, confirm, create, follow),
`dlq replay --status JOB` and `--cancel JOB`, and `dlq jobs`.

The job itself is run by the worker fleet (`worker.pipeline.job_runner`); this module only
talks to Redis through `ops.dlq.jobs`, so leaving the command (Ctrl-C, `--detach`) leaves the
job running. Exit codes of the job forms:

    0  created (--detach), followed to done with no failed key, status shown, cancel asked
    1  followed to its end: some keys failed, or the job was cancelled or failed
    2  usage: an option a job cannot take, a bad job id, the estimate declined
    3  no job under that id
    7  --cancel of a job that has already ended
"""

from __future__ import annotations

import time
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
)

from ops.dlq.common import EXIT_CODES_HELP, age, echo_json, fail, iso, open_stores
from ops.dlq.jobs import (
    DEFAULT_LIST_LIMIT,
    JobError,
    JobNotFound,
    cancel_job,
    create_replay_job,
    estimate,
    filter_doc,
    job_status,
    list_jobs,
)
from ops.options import redis_url_option
from worker.core.exit_codes import ExitCode
from worker.core.jobs import Job, JobState
from worker.store.audit import os_user
from worker.store.dead_query import DeadFilter
from worker.wiring import Stores

JOB_EXIT_CODES_HELP = (
    "With --job, --status, --cancel: 0 created, shown or cancel asked (or followed to done); "
    "1 followed to an end with failed keys, cancelled or failed; 2 usage or declined; "
    "3 no such job; 7 --cancel of an ended job."
)
# How often a followed job is read again, seconds.
FOLLOW_POLL_S = 0.5


def _bad_id(exc: JobError) -> NoReturn:
    fail(str(exc), ExitCode.USAGE)


def _how_to_follow(job_id: str) -> str:
    return (
        f"the fleet runs it; follow it with `jetti-relay dlq replay --status {job_id}`, "
        f"cancel it with `jetti-relay dlq replay --cancel {job_id}`"
    )


def job_forms(
    *,
    job: bool,
    status_id: str | None,
    cancel_id: str | None,
    order_keys: tuple[str, ...],
    flt: DeadFilter,
    replay_all: bool,
    single_key_options: list[str],
    options: dict[str, bool],
    dry_run: bool,
    sample: int,
    yes: bool,
    detach: bool,
    as_json: bool,
    redis_url: str | None,
) -> None:
    """Handle `dlq replay --job`, `--status JOB` and `--cancel JOB` (exits); return at once
    for the in-process replay. `single_key_options`: the in-process-only options given
    (`--limit`, `--rate`, `--raw-file`, `--edit`), which a job refuses."""
    if status_id is not None or cancel_id is not None:
        if status_id is not None and cancel_id is not None:
            fail("choose one of --status and --cancel", ExitCode.USAGE)
        if job or order_keys or not flt.is_empty or replay_all or single_key_options:
            fail("--status and --cancel take a job id and no other selection", ExitCode.USAGE)
        stores = open_stores(redis_url)
        if status_id is not None:
            show_status(stores, status_id, as_json=as_json)
        cancel(stores, str(cancel_id), as_json=as_json)
    if not job:
        if yes or detach:
            fail("--yes and --detach go with --job", ExitCode.USAGE)
        return
    if order_keys:
        fail("a job takes filters, not KEYs: replay named keys without --job", ExitCode.USAGE)
    if single_key_options:
        fail(
            f"{', '.join(single_key_options)}: not for a job (its pace is the fleet's replay "
            "share, JETTI_RELAY_REPLAY_RATE_SHARE)",
            ExitCode.USAGE,
        )
    if flt.is_empty and not replay_all:
        fail("give a filter, or pass --all to replay every dead letter", ExitCode.USAGE)
    run_replay_job(
        open_stores(redis_url),
        flt,
        options=options,
        dry_run=dry_run,
        sample=sample,
        yes=yes,
        detach=detach,
        as_json=as_json,
    )


def run_replay_job(
    stores: Stores,
    flt: DeadFilter,
    *,
    options: dict[str, bool],
    dry_run: bool,
    sample: int,
    yes: bool,
    detach: bool,
    as_json: bool,
) -> NoReturn:
    """`dlq replay --job`: print the estimate; stop there on --dry-run; confirm unless --yes;
    create the job; follow it unless --detach."""
    est = estimate(stores, flt, sample=sample)
    if as_json and dry_run:
        echo_json(
            {
                "dry_run": True,
                "count": est.count,
                "filter": filter_doc(flt),
                "options": options,
                "sample": [
                    _sample_row(e.order_key, str(e.reason), e.last_dead_at, e.error)
                    for e in est.sample
                ],
            }
        )
        raise click.exceptions.Exit(ExitCode.OK)
    if not as_json:
        for entry in est.sample:
            click.echo(
                f"{entry.order_key}  {entry.reason}  {iso(entry.last_dead_at)}  {entry.error[:80]}",
                err=not dry_run,
            )
        more = est.count - len(est.sample)
        tail = f" ({len(est.sample)} shown above, {more} more)" if more > 0 else ""
        click.echo(
            f"a replay job would take {est.count} dead letters{tail}",
            err=not dry_run,
        )
    if dry_run:
        raise click.exceptions.Exit(ExitCode.OK)
    if not yes and not _confirmed(est.count):
        fail("nothing created (add --yes to skip the question)", ExitCode.USAGE)
    job = create_replay_job(stores, flt, options=options, actor=os_user(), now=time.time())
    if as_json:
        if detach:
            echo_json(job.to_dict())
            raise click.exceptions.Exit(ExitCode.OK)
    else:
        click.echo(f"job {job.id} created: {job.total} dead letters; {_how_to_follow(job.id)}")
        if detach:
            raise click.exceptions.Exit(ExitCode.OK)
    _follow(stores, job, as_json=as_json)


def _sample_row(key: str, reason: str, at: float, error: str) -> dict[str, object]:
    return {"order_key": key, "reason": reason, "last_dead_at": at, "error": error}


def _confirmed(count: int) -> bool:
    try:
        return click.confirm(
            f"Create a job that replays {count} dead letters?", default=False, err=True
        )
    except click.Abort:  # no input to read an answer from
        return False


def _follow(stores: Stores, job: Job, *, as_json: bool) -> NoReturn:
    """Show the job's progress until it ends; Ctrl-C leaves it running."""
    err = Console(stderr=True)
    try:
        with Progress(
            TextColumn("[bold]{task.fields[state]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[pace]}"),
            console=err,
            disable=as_json,
            transient=False,
        ) as progress:
            task = progress.add_task("job", total=max(job.total, 1), state="pending", pace="")
            current: Job | None = job
            while current is not None and not current.state.is_final:
                progress.update(
                    task, completed=current.done, state=str(current.state), pace=_pace(current)
                )
                time.sleep(FOLLOW_POLL_S)
                current = job_status(stores, job.id)
            if current is not None:
                progress.update(task, completed=current.done, state=str(current.state), pace="")
    except KeyboardInterrupt:
        click.echo(f"\nstopped following job {job.id}; {_how_to_follow(job.id)}", err=True)
        raise click.exceptions.Exit(ExitCode.OK) from None
    if current is None:
        fail(f"job {job.id} is gone", ExitCode.NOT_FOUND)
    _print_end(current, as_json=as_json)


def _pace(job: Job) -> str:
    if job.waiting_reason:
        return f"waiting: {job.waiting_reason}"
    if job.state is JobState.PENDING:
        return "waiting for a worker to take it"
    rate = "-" if job.rate_per_s is None else f"{job.rate_per_s:.1f}/s"
    eta = "-" if job.eta_s is None else f"{job.eta_s:.0f} s"
    return f"{rate}  ETA {eta}"


def _summary(job: Job) -> str:
    c = job.counts
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(c.skipped.items())) or "0"
    return (
        f"job {job.id} {job.state}: {job.done} of {job.total} worked through; "
        f"replayed {c.replayed}, skipped {skipped}, failed {c.failed}"
    )


def _print_end(job: Job, *, as_json: bool) -> NoReturn:
    if as_json:
        echo_json(job.to_dict())
    else:
        for key, why in job.counts.failures:
            click.echo(f"{key}: not replayed ({why})", err=True)
        if job.error:
            click.echo(f"error: {job.error}", err=True)
        click.echo(_summary(job))
    good = job.state is JobState.DONE and job.counts.failed == 0
    raise click.exceptions.Exit(ExitCode.OK if good else ExitCode.PARTIAL)


def show_status(stores: Stores, job_id: str, *, as_json: bool) -> NoReturn:
    """`dlq replay --status JOB`."""
    try:
        job = job_status(stores, job_id)
    except JobError as exc:
        _bad_id(exc)
    if job is None:
        fail(f"no job {job_id!r} (ended jobs are kept 7 days)", ExitCode.NOT_FOUND)
    if as_json:
        echo_json(job.to_dict())
        raise click.exceptions.Exit(ExitCode.OK)
    rows = [
        ("job", f"{job.id} ({job.kind})"),
        ("state", str(job.state) + (" (cancel requested)" if job.cancel_requested else "")),
        ("progress", f"{job.done} of {job.total}"),
        ("pace", _pace(job) if not job.state.is_final else "-"),
        ("created", f"{iso(job.created_at)} by {job.created_by} ({age(job.created_at)} ago)"),
        ("last progress", iso(job.last_progress_at)),
        ("held by", job.holder or "-"),
        ("filter", ", ".join(f"{k}={v}" for k, v in job.filter.items()) or "(every entry)"),
        ("options", ", ".join(k for k, v in job.options.items() if v) or "-"),
    ]
    if job.ended_at is not None:
        rows.append(("ended", iso(job.ended_at)))
    if job.error:
        rows.append(("error", job.error))
    for name, value in rows:
        click.echo(f"{name + ':':<15}{value}")
    for key, why in job.counts.failures:
        click.echo(f"{'failed:':<15}{key} ({why})")
    click.echo(_summary(job))
    raise click.exceptions.Exit(ExitCode.OK)


def cancel(stores: Stores, job_id: str, *, as_json: bool) -> NoReturn:
    """`dlq replay --cancel JOB`."""
    try:
        before = job_status(stores, job_id)
        if before is not None and before.state.is_final:
            fail(
                f"job {before.id} has already ended ({before.state}): nothing to cancel",
                ExitCode.WRONG_STATE,
            )
        job = cancel_job(stores, job_id, actor=os_user())
    except JobError as exc:
        _bad_id(exc)
    except JobNotFound as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    if as_json:
        echo_json(job.to_dict())
    elif job.state is JobState.CANCELLED:
        click.echo(f"job {job.id} cancelled: {job.done} of {job.total} worked through")
    else:
        click.echo(
            f"job {job.id}: cancel requested; its runner stops after the chunk in hand "
            f"({job.done} of {job.total} so far)"
        )
    raise click.exceptions.Exit(ExitCode.OK)


@click.command("jobs", epilog=EXIT_CODES_HELP)
@click.option(
    "--limit",
    default=DEFAULT_LIST_LIMIT,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most this many jobs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="The jobs as JSON.")
@redis_url_option
def jobs(limit: int, as_json: bool, redis_url: str | None) -> None:
    """Recent bulk replay jobs, newest first: state, progress, who created them.

    \b
    Examples:
      jetti-relay dlq jobs
      jetti-relay dlq jobs --json
    """
    stores = open_stores(redis_url)
    found = list_jobs(stores, limit)
    if as_json:
        echo_json([j.to_dict() for j in found])
        return
    if not found:
        click.echo("no jobs")
        return
    click.echo(f"{'id':<17} {'state':<10} {'progress':>15}  {'created':<20} created by")
    for job in found:
        progress = f"{job.done}/{job.total}"
        click.echo(
            f"{job.id:<17} {job.state!s:<10} {progress:>15}  {iso(job.created_at):<20} "
            f"{job.created_by}"
        )
    click.echo(f"{len(found)} jobs")
