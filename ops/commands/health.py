"""`jetti-relay health`: is the fleet doing its job? For compose health checks and for people.

The checks themselves (what each one judges, and its thresholds) are in
`ops/monitoring/checks.py`; this module reads the options, runs them and prints the verdict.

Exit codes: 0 healthy (warnings allowed), 1 unhealthy, 2 usage error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
import orjson

from ops.monitoring.checks import (
    CHECK_NAMES,
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_BLOCK_S,
    DEFAULT_MAX_DEAD,
    DEFAULT_MAX_INTAKE_AGE_S,
    DEFAULT_MAX_OLDEST_WAITING_S,
    DEFAULT_MAX_STALL_S,
    DEFAULT_PING_TIMEOUT_S,
    Check,
    Thresholds,
    all_checks,
    check_reconciler,
    check_redis,
    pump_max_age_s,
    run_checks,
    sweeper_max_age_s,
)
from ops.monitoring.intake_checks import check_intake
from ops.monitoring.replication_checks import check_replication
from ops.monitoring.sources import Sources
from ops.options import redis_url_option, settings_from_options
from worker.core.exit_codes import ExitCode
from worker.settings import Settings

__all__ = ["Thresholds", "celery_ping", "check_reconciler", "health"]


def celery_ping(settings: Settings) -> Callable[[float], list[str]]:
    """`ping(timeout_s)`: node names of the Celery workers that answer on the broker."""

    def ping(timeout_s: float) -> list[str]:
        from worker.celery_app import create_app

        app = create_app(settings)
        try:
            replies = app.control.ping(timeout=timeout_s) or []
        finally:
            app.close()
        return [name for reply in replies for name in reply]

    return ping


def _render(results: list[Check], healthy: bool) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
    lines = [f"{marks[c.status]}  {c.name:<13}{c.detail}" for c in results]
    counts = {s: sum(1 for c in results if c.status == s) for s in marks}
    lines.append(
        f"{'healthy' if healthy else 'UNHEALTHY'}: {counts['ok']} ok, {counts['warn']} "
        f"warn, {counts['fail']} fail, {counts['skip']} skipped"
    )
    return "\n".join(lines)


@click.command()
@redis_url_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(CHECK_NAMES),
    help="Run only this check (repeatable), e.g. for one container's health check.",
)
@click.option(
    "--min-workers",
    type=int,
    default=1,
    show_default=True,
    help="Celery workers that must answer a ping; 0 skips the check.",
)
@click.option("--ping-timeout-s", type=float, default=DEFAULT_PING_TIMEOUT_S, show_default=True)
@click.option(
    "--max-stall-s",
    type=float,
    default=DEFAULT_MAX_STALL_S,
    show_default=True,
    help="Orders ready this long with none handled means the workers are stuck.",
)
@click.option(
    "--max-pump-age-s",
    type=float,
    default=None,
    help="Oldest acceptable pump heartbeat [default: 10 x PUMP_INTERVAL_S + 20].",
)
@click.option(
    "--max-sweeper-age-s",
    type=float,
    default=None,
    help="Oldest acceptable sweeper heartbeat [default: 3 x SWEEP_INTERVAL_S + 30].",
)
@click.option(
    "--max-oldest-waiting-s",
    type=float,
    default=DEFAULT_MAX_OLDEST_WAITING_S,
    show_default=True,
    help="Oldest acceptable unsettled order (retries included).",
)
@click.option(
    "--max-backlog",
    type=int,
    default=DEFAULT_MAX_BACKLOG,
    show_default=True,
    help="Most unsettled orders before the backlog check fails.",
)
@click.option(
    "--max-dead",
    type=int,
    default=DEFAULT_MAX_DEAD,
    show_default=True,
    help="Dead letters waiting above this fail (any at all is a warning).",
)
@click.option(
    "--max-block-s",
    type=float,
    default=DEFAULT_MAX_BLOCK_S,
    show_default=True,
    help="A 429 block with more than this left fails (a fleet pause).",
)
@click.option(
    "--max-intake-age-s",
    type=float,
    default=DEFAULT_MAX_INTAKE_AGE_S,
    show_default=True,
    help="An intake stream entry unread or unacknowledged this long fails.",
)
def health(
    redis_url: str | None,
    as_json: bool,
    only: tuple[str, ...],
    min_workers: int,
    ping_timeout_s: float,
    max_stall_s: float,
    max_pump_age_s: float | None,
    max_sweeper_age_s: float | None,
    max_oldest_waiting_s: float,
    max_backlog: int,
    max_dead: int,
    max_block_s: float,
    max_intake_age_s: float,
) -> None:
    """Check Redis, workers, progress, pump, sweeper, breaker, backlog, dead letters, the Redis
    server's durability settings and its memory, the stream intake, and the replication
    (replicas, lag, sentinels).

    Exit 0 when healthy (warnings allowed), 1 when any check fails.
    """
    settings = settings_from_options(redis_url=redis_url)
    limits = Thresholds(
        min_workers=min_workers,
        ping_timeout_s=ping_timeout_s,
        max_stall_s=max_stall_s,
        max_pump_age_s=(
            max_pump_age_s
            if max_pump_age_s is not None
            else pump_max_age_s(settings.pump_interval_s)
        ),
        max_sweeper_age_s=(
            max_sweeper_age_s
            if max_sweeper_age_s is not None
            else sweeper_max_age_s(settings.sweep_interval_s)
        ),
        max_oldest_waiting_s=max_oldest_waiting_s,
        max_backlog=max_backlog,
        max_dead=max_dead,
        max_block_s=max_block_s,
        max_intake_age_s=max_intake_age_s,
    )
    checks = [(n, fn) for n, fn in all_checks(celery_ping(settings)) if not only or n in only]
    if ("reconciler" in only) or (not only and settings.reconcile_active):
        checks.append(("reconciler", check_reconciler))  # optional: only where it is configured
    if not only or "intake" in only:
        checks.append(("intake", check_intake))
    if not only or "replication" in only:
        checks.append(("replication", check_replication))
    if only and "redis" not in only:
        # Every check reads Redis: ask it first so an outage reads as one clear failure.
        checks.insert(0, ("redis", check_redis))
    src = Sources.from_settings(settings)
    now = time.time()
    results = run_checks(src, limits, checks, now=now)
    healthy = not any(c.status == "fail" for c in results)
    if as_json:
        doc: dict[str, Any] = {
            "healthy": healthy,
            "at": now,
            "checks": [asdict(c) for c in results],
            "thresholds": asdict(limits),
        }
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(_render(results, healthy))
    raise SystemExit(ExitCode.OK if healthy else ExitCode.UNHEALTHY)
