"""`jetti-relay pause` and `jetti-relay resume`: stop and restart submission for the whole fleet.

Both act on the fleet circuit breaker (worker/store/breaker.py) and are recorded in the audit
log (`fleet_pause`, `fleet_resume`) with the OS user, as the console's buttons are with theirs.
A pause holds until `resume`: workers keep taking orders off the queue but reschedule them
instead of submitting. `resume` also closes a breaker that Jetti's answers tripped, without
waiting for the probe.

Exit codes: 0 done; 1 Redis unreachable or older than supported, or another error (one line).
"""

from __future__ import annotations

import time

import click

from ops.options import redis_url_option, settings_from_options
from worker.store.audit import FLEET_PAUSE, FLEET_RESUME, AuditLog, os_user
from worker.store.breaker import DEFAULT_PAUSE_REASON, Breaker


def _breaker(redis_url: str | None) -> tuple[Breaker, AuditLog]:
    from worker.redisconn import RedisTooOld
    from worker.wiring import breaker, connect_supported, keys

    settings = settings_from_options(redis_url=redis_url)
    try:
        client = connect_supported(settings)
    except RedisTooOld as exc:
        raise click.ClickException(str(exc)) from exc
    return breaker(client, keys(settings), settings), AuditLog(client, keys(settings))


@click.command()
@click.option(
    "--reason",
    default=DEFAULT_PAUSE_REASON,
    show_default=True,
    help="Why; shown by `health` and recorded on the breaker.",
)
@redis_url_option
def pause(reason: str, redis_url: str | None) -> None:
    """Pause submission to Jetti for the whole fleet until `jetti-relay resume`."""
    breaker, audit = _breaker(redis_url)
    audit.record(FLEET_PAUSE, actor=os_user(), details={"reason": reason}, now=time.time())
    breaker.pause(reason)
    click.echo(f"fleet paused: {breaker.state().reason}")


@click.command()
@redis_url_option
def resume(redis_url: str | None) -> None:
    """Resume submission after a pause or a tripped breaker."""
    breaker, audit = _breaker(redis_url)
    before = breaker.state().state
    audit.record(FLEET_RESUME, actor=os_user(), details={"was": str(before)}, now=time.time())
    breaker.resume()
    click.echo(f"fleet resumed: breaker closed (was {before})")
