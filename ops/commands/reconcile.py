"""`jetti-relay reconcile`: the reconciler's status, and one pass on demand.

`status` prints what the reconciler recorded in Redis (checkpoint and its lag, last run, last
success, last error, counts); `run` makes one pass now from this host (leader-elected like the
worker's: if another host leads the role, nothing happens and the exit code says so).

Exit codes: 0 ok; 1 the pass could not finish (Jetti unreachable or throttling) or the
reconciler is behind (`status`); 2 usage error or the reconciler is not configured (no API
token); 3 another host leads the role (`run`); 4 Redis unreachable or older than supported.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime

import click
import orjson

from ops.dlq.common import StoreGroup
from ops.options import redis_url_option, settings_from_options
from worker.core.exit_codes import ExitCode
from worker.redisconn import require_supported
from worker.store.reconcile_state import read_status
from worker.wiring import connect_supported
from worker.wiring import keys as wiring_keys


def _iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@click.group(
    cls=StoreGroup,
    epilog="Exit codes: 0 ok; 1 behind or the pass could not finish; "
    "2 usage error or not configured; 3 another host leads (run); 4 Redis unreachable.",
)
def reconcile() -> None:
    """Reconcile with Jetti's import log (status, one pass now)."""


@reconcile.command()
@redis_url_option
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def status(redis_url: str | None, as_json: bool) -> None:
    """What the reconciler last did; exit 1 when it is behind."""
    settings = settings_from_options(redis_url=redis_url)
    client = connect_supported(settings)
    now = time.time()
    st = read_status(client, wiring_keys(settings))
    behind = st.last_run_at is not None and st.behind(now)
    if as_json:
        doc = {
            **asdict(st),
            "lag_s": st.lag_s(now),
            "behind": behind,
            "configured": settings.reconcile_active,
        }
        click.echo(orjson.dumps(doc).decode())
    else:
        lag = st.lag_s(now)
        click.echo(
            f"configured: {'yes' if settings.reconcile_active else 'no (no API token)'}; "
            f"holder {st.holder or '-'}"
        )
        click.echo(
            f"import log read up to {_iso(st.checkpoint)}"
            + ("" if lag is None else f" ({lag:.0f} s behind now)")
        )
        click.echo(
            f"last run {_iso(st.last_run_at)}, last success {_iso(st.last_ok_at)}"
            + (f", last error: {st.last_error}" if st.last_error else "")
        )
        click.echo(", ".join(f"{name} {count}" for name, count in st.counts.items()))
    raise SystemExit(ExitCode.FAILED if behind else ExitCode.OK)


@reconcile.command()
@redis_url_option
def run(redis_url: str | None) -> None:
    """One reconciler pass now (if no other host leads the role)."""
    from worker.logconfig import configure_logging
    from worker.runtime import build_maintenance_parts, build_reconciler

    settings = settings_from_options(redis_url=redis_url)
    configure_logging(
        settings.log_format, settings.log_level, secrets=settings.secret_values
    )  # logs to stderr, JSON on stdout
    if not settings.reconcile_active:
        click.echo("reconciler off: set JETTI_RELAY_API_TOKEN (and RECONCILE_ENABLED)", err=True)
        raise SystemExit(ExitCode.RECONCILER_OFF)
    parts = build_maintenance_parts(settings)
    require_supported(parts.redis)
    reconciler = build_reconciler(parts)
    assert reconciler is not None
    report = reconciler.run_once()
    if not report.led:
        click.echo("another host leads the reconciler role; nothing done", err=True)
        raise SystemExit(ExitCode.NOT_LEADER)
    click.echo(
        orjson.dumps({k: v for k, v in asdict(report).items() if k != "rejected_keys"}).decode()
    )
    raise SystemExit(ExitCode.FAILED if report.error else ExitCode.OK)
