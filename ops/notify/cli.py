"""`jetti-relay notify` (the notifier alone) and `jetti-relay alerts` (see, acknowledge, silence).

Every `jetti-relay worker` and `jetti-relay pump` already runs a notifier loop; `notify` is for
a deployment that wants it in its own process (it is leader-elected: any number may run).

Exit codes: 0 done; 1 `alerts ack` of an alert that is not firing; 2 usage; 3 no such alert, or
`notify --once` while another process leads; 4 Redis unreachable.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
import orjson

from ops.dlq.common import StoreGroup
from ops.options import redis_url_option, settings_from_options
from worker.core.exit_codes import ExitCode
from worker.store.alerts import (
    ALERT_NAMES,
    AlertNotFiring,
    AlertState,
    UnknownAlert,
    acknowledge,
    alert_states,
    silence,
    unsilence,
)
from worker.store.audit import os_user

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Duration(click.ParamType[float]):
    """A duration: `90s`, `30m`, `1h`, `2d`, or plain seconds. Converts to seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        match = _DURATION.match(str(value).strip())
        if not match or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a duration: use e.g. 90s, 30m, 1h, 2d", param, ctx)
        return float(match.group(1)) * _UNIT_S[match.group(2)]


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(state: AlertState, now: float) -> str:
    doc = state.to_dict(now=now)
    notes = []
    if doc["acked"]:
        notes.append(f"acked by {doc['acked_by']}")
    if doc["silenced"]:
        notes.append(f"silenced by {doc['silenced_by']} until {_when(doc['silenced_until'])}")
    if doc["last_error"]:
        notes.append(f"last send failed: {doc['last_error']}")
    since = f"since {_when(doc['since'])}" if doc["status"] == "firing" else ""
    tail = f" [{'; '.join(notes)}]" if notes else ""
    return f"{doc['status']:<9}{state.name:<21}{since:<28}{doc['summary']}{tail}"


def _client_keys(redis_url: str | None) -> tuple[Any, Any]:
    from worker import wiring

    settings = settings_from_options(redis_url=redis_url)
    return wiring.redis_client(settings), wiring.keys(settings)


def _show(state: AlertState, as_json: bool, verb: str) -> None:
    now = time.time()
    if as_json:
        click.echo(orjson.dumps(state.to_dict(now=now)).decode())
    else:
        click.echo(_line(state, now))
        click.echo(f"{state.name}: {verb}")


@click.group(cls=StoreGroup, invoke_without_command=True)
@redis_url_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert, in an array.")
@click.pass_context
def alerts(ctx: click.Context, redis_url: str | None, as_json: bool) -> None:
    """The relay's alerts (docs/alerts.md): state, figures, who acknowledged or silenced them.

    Without a subcommand, lists every alert.
    """
    ctx.obj = redis_url
    if ctx.invoked_subcommand is not None:
        return
    client, keys = _client_keys(redis_url)
    states = alert_states(client, keys)
    now = time.time()
    if as_json:
        click.echo(orjson.dumps([s.to_dict(now=now) for s in states]).decode())
        return
    for state in states:
        click.echo(_line(state, now))
    firing = sum(1 for s in states if s.status == "firing")
    click.echo(f"{firing} of {len(states)} alerts firing")


def _name_argument(fn: Any) -> Any:
    return click.argument("name", type=click.Choice(ALERT_NAMES))(fn)


@alerts.command("ack")
@_name_argument
@click.option("--json", "as_json", is_flag=True, help="The alert as JSON.")
@click.pass_obj
def ack_command(redis_url: str | None, name: str, as_json: bool) -> None:
    """Acknowledge a firing alert: no repeats until it resolves (the resolution is still sent).
    Recorded with your OS user, and audited."""
    client, keys = _client_keys(redis_url)
    try:
        state = acknowledge(client, keys, name, os_user())
    except UnknownAlert as exc:
        raise click.ClickException(str(exc)) from exc
    except AlertNotFiring as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(ExitCode.FAILED) from exc
    _show(state, as_json, "acknowledged")


@alerts.command("silence")
@_name_argument
@click.option(
    "--for",
    "duration_s",
    type=Duration(),
    required=True,
    help="How long nothing is sent for it: 30m, 1h, 2d...",
)
@click.option("--json", "as_json", is_flag=True, help="The alert as JSON.")
@click.pass_obj
def silence_command(redis_url: str | None, name: str, duration_s: float, as_json: bool) -> None:
    """Send nothing for an alert for a while (firings and resolutions are still recorded).
    Recorded with your OS user, and audited."""
    client, keys = _client_keys(redis_url)
    now = time.time()
    state = silence(client, keys, name, now + duration_s, os_user(), now=now)
    _show(state, as_json, f"silenced until {_when(now + duration_s)}")


@alerts.command("unsilence")
@_name_argument
@click.option("--json", "as_json", is_flag=True, help="The alert as JSON.")
@click.pass_obj
def unsilence_command(redis_url: str | None, name: str, as_json: bool) -> None:
    """End an alert's silence now; what is due is sent on the notifier's next pass."""
    client, keys = _client_keys(redis_url)
    state = unsilence(client, keys, name, os_user())
    _show(state, as_json, "silence ended")


@click.command()
@redis_url_option
@click.option("--once", is_flag=True, help="One pass, then exit (exit 3 if another leads).")
def notify(redis_url: str | None, once: bool) -> None:
    """Run the notifier alone: evaluate the alerts every JETTI_RELAY_NOTIFY_INTERVAL_S and send
    them to JETTI_RELAY_NOTIFY_WEBHOOK_URL / _SLACK_URL (leader-elected: safe on several hosts).
    """
    from ops.notify.build import build_notifier

    settings = settings_from_options(redis_url=redis_url)
    notifier = build_notifier(settings)
    if once:
        report = notifier.pass_once()
        if report is None:
            click.echo("another process leads the notifier; nothing done", err=True)
            raise SystemExit(ExitCode.NOT_LEADER)
        click.echo(orjson.dumps({"sent": report.sent, "failed": report.failed}).decode())
        return
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = notifier.start(stop)
    while thread.is_alive():
        thread.join(timeout=0.5)
