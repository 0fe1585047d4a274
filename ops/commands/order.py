"""`jetti-relay order show KEY`: where is order X? Support's first question, in one screen.
`order retry KEY` and `order discard KEY --reason TEXT`: the operator's two actions on one order.

`show` reads the ledger entry (state, versions received, what was sent, the Jetti sale id), its
attempts, its dead letter if any and its timeline (the ledger's events), without changing
anything. Emails in errors and response excerpts are masked unless `--include-personal-data`;
secrets always.

Exit codes: 0 found / done; 2 usage error (discard not confirmed); 3 no such order; 4 Redis
unreachable; 7 refused: the order is in flight, settled or dead.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.dlq.common import StoreGroup, age, echo_json, fail, iso, open_stores
from ops.options import redis_url_option
from worker.core.dead_entry import MASK, SECRET_MASK
from worker.core.exit_codes import ExitCode
from worker.core.privacy import hide_secrets, mask_text
from worker.core.records import OrderEntry
from worker.core.states import DeadReason, DiscardReply, OrderState, RetryNowReply
from worker.store.audit import os_user
from worker.store.reconcile_state import read_status as read_reconcile_status
from worker.wiring import Stores

EXIT_HELP = "Exit codes: 0 found; 3 no such order; 4 Redis unreachable."
ACTION_EXIT_HELP = (
    "Exit codes: 0 done; 2 usage error or not confirmed; 3 no such order; 4 Redis unreachable; "
    "7 refused (in flight, settled or dead)."
)


def order_view(stores: Stores, order_key: str, *, personal: bool) -> dict[str, Any] | None:
    """Everything known about `order_key` as a JSON-ready dict, or None when nothing is."""
    entry = stores.ledger.get(order_key)
    dead = stores.dead.get(order_key)
    if entry is None and dead is None:
        return None

    def text(value: str | None) -> str | None:
        return value if personal else mask_text(value, MASK)

    events = stores.ledger.events(order_key) if entry is not None else []
    received = Counter(str(e.get("outcome")) for e in events if e.get("type") == "received")
    attempts = [a.to_dict() for a in stores.ledger.attempts(order_key)] if entry else []
    for a in attempts:
        a["excerpt"] = text(a["excerpt"])
    view: dict[str, Any] = {"order_key": order_key, "in_ledger": entry is not None}
    if entry is not None:
        view.update(
            {
                "state": str(entry.state),
                "state_since": entry.state_since,
                "source": entry.source,
                "version": {"ts_ms": entry.version.ts_ms, "seq": entry.version.seq},
                "versions_received": dict(received),
                "stale_arrivals": entry.stale_arrivals,
                "first_seen_at": entry.first_seen_at,
                "enqueued_at": entry.enqueued_at,
                "submitted_at": entry.submitted_at,
                "sale_id": entry.sale_id,
                "payload_hash": entry.payload_hash,
                "sent_version": None
                if entry.sent_version is None
                else {"ts_ms": entry.sent_version.ts_ms, "seq": entry.sent_version.seq},
                "line_ids": list(entry.line_ids),
                "attempts_spent": entry.attempts,
                "deliveries": {
                    "started": entry.deliveries_started,
                    "finished": entry.deliveries_finished,
                },
                "next_attempt_at": entry.next_attempt_at,
                "dead_reason": None if entry.dead_reason is None else str(entry.dead_reason),
                "last_error": text(entry.last_error),
                "replayed": entry.replayed,
                "resend_stored_payload": entry.resend_payload is not None,
                "body_shed": entry.is_tombstone,
            }
        )
        view["jetti_confirmation"] = confirmation(stores, entry, events)
    view["attempts"] = attempts
    view["dead_letter"] = (
        None
        if dead is None
        else {
            "status": str(dead.status),
            "reason": str(dead.reason),
            "error": text(dead.error),
            "http_status": dead.http_status,
            "replay_count": dead.replay_count,
            "first_dead_at": dead.first_dead_at,
            "last_dead_at": dead.last_dead_at,
            "attempts": len(dead.attempts),
            "history": [h.to_dict() for h in dead.history],
        }
    )
    view["timeline"] = events
    result: dict[str, Any] = hide_secrets(view, stores.settings.secret_values, SECRET_MASK)
    return result


def confirmation(stores: Stores, entry: OrderEntry, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether Jetti has the order, as far as the reconciler (worker/pipeline/reconciler.py)
    knows."""
    status = read_reconcile_status(stores.client, stores.keys)
    on = status.last_run_at is not None
    out: dict[str, Any] = {"reconciler": "running" if on else "never ran"}
    at = next(
        (
            e.get("at")
            for e in reversed(events)
            if e.get("type") in ("confirmed", "repair", "cancelled", "dead")
        ),
        None,
    )
    if entry.state is OrderState.CONFIRMED:
        out.update(status="confirmed", at=at)
    elif entry.state is OrderState.CANCELLED:
        out.update(status="cancelled", via=stores.ledger.cancelled_via(entry.order_key), at=at)
    elif entry.dead_reason is DeadReason.REJECTED_BY_JETTI:
        out.update(status="rejected_by_jetti", at=at)
    elif entry.state is OrderState.SUBMITTED:
        grace = status.grace_s
        due = None if grace is None or entry.submitted_at is None else entry.submitted_at + grace
        out.update(status="awaiting_confirmation" if on else "unconfirmed", confirm_after=due)
    else:
        out.update(status="not_sent_yet" if entry.state is not OrderState.DEAD else "dead")
    repairs = sum(1 for e in events if e.get("type") == "repair")
    if repairs:
        out["repairs"] = repairs
    return out


@click.group(cls=StoreGroup)
def order() -> None:
    """Look up single orders."""


@order.command(epilog=EXIT_HELP)
@click.argument("order_key")
@click.option(
    "--include-personal-data",
    is_flag=True,
    help="Show emails in errors and response excerpts unmasked.",
)
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@redis_url_option
def show(order_key: str, include_personal_data: bool, as_json: bool, redis_url: str | None) -> None:
    """Where is order KEY? Ledger state, versions received, attempts, dead-letter status, the
    Jetti sale id when known, and the timeline.

    \b
    Example:
      jetti-relay order show shop-a:1001
      jetti-relay order show shop-a:1001 --json | jq .state
    """
    stores = open_stores(redis_url)
    view = order_view(stores, order_key, personal=include_personal_data)
    if view is None:
        fail(f"no order and no dead letter under {order_key!r}", ExitCode.NOT_FOUND)
    if as_json:
        echo_json(view)
        return
    _render(view)


def _render(view: dict[str, Any]) -> None:
    console = Console()
    now = time.time()
    # Keys, sources, worker ids and errors are user text: escaped wherever markup is on.
    console.print(f"[bold]{escape(view['order_key'])}[/bold]", end="  ")
    if view["in_ledger"]:
        console.print(
            f"{view['state']} for {age(view['state_since'], now=now)}"
            f" (since {iso(view['state_since'])})"
        )
        v, received = view["version"], view["versions_received"]
        console.print(
            f"source {escape(view['source'] or '-')}; version {v['ts_ms']}/{v['seq']}; "
            "received " + (", ".join(f"{n} {o}" for o, n in received.items()) or "-"),
            markup=False,
        )
        console.print(
            f"Jetti sale id {view['sale_id'] or 'unknown'}; last submitted "
            f"{iso(view['submitted_at'])}; attempts spent {view['attempts_spent']}; "
            f"deliveries {view['deliveries']['started']} started, "
            f"{view['deliveries']['finished']} finished"
        )
        conf = view["jetti_confirmation"]
        line = f"Jetti confirmation: {conf['status']}"
        if conf.get("via"):
            line += f" (via {conf['via']})"
        if conf.get("confirm_after"):
            line += f", confirmed if no import-log error by {iso(conf['confirm_after'])}"
        if conf.get("repairs"):
            line += f"; resent {conf['repairs']}x after Jetti applied an older version"
        console.print(f"{line}; reconciler {conf['reconciler']}", markup=False)
        if view["last_error"]:
            console.print(f"last error: {view['last_error']}", markup=False)
    else:
        console.print("not in the ledger")
    dead = view["dead_letter"]
    if dead is None:
        console.print("dead letter: none")
    else:
        console.print(
            f"dead letter: {dead['status']} ({dead['reason']}), replayed "
            f"{dead['replay_count']}x, last dead {iso(dead['last_dead_at'])}"
        )
    if view["attempts"]:
        table = Table(title="attempts")
        for column in ("at", "status", "error", "outcome", "worker"):
            table.add_column(column, overflow="fold")
        for a in view["attempts"]:
            table.add_row(
                iso(a["at"]),
                str(a["status"] or "-"),
                escape(a["error_class"] or "-"),
                escape(a["outcome"]),
                escape(a["worker"]),
            )
        console.print(table)
    timeline = Table(title="timeline")
    timeline.add_column("at")
    timeline.add_column("event")
    timeline.add_column("details", overflow="fold")
    for event in view["timeline"]:
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "type"))
        timeline.add_row(iso(event.get("at")), escape(str(event.get("type"))), escape(details))
    console.print(timeline)


@order.command(epilog=ACTION_EXIT_HELP)
@click.argument("order_key")
@redis_url_option
def retry(order_key: str, redis_url: str | None) -> None:
    """Retry order KEY now instead of at its next attempt.

    An order waiting to retry becomes due at once and the retry pump publishes it on its next
    pass (within JETTI_RELAY_PUMP_INTERVAL_S); a pending order is published again now. The
    attempt budget is kept. Audited with your OS user.

    \b
    Example:
      jetti-relay order retry shop-a:1001
    """
    stores = open_stores(redis_url)
    reply = stores.ledger.retry_now(order_key, actor=os_user(), now=time.time())
    if reply is RetryNowReply.MISSING:
        fail(f"no order under {order_key!r}", ExitCode.NOT_FOUND)
    if not reply.done:
        fail(f"order {order_key!r} {reply.refusal}", ExitCode.WRONG_STATE)
    if reply is RetryNowReply.REPUBLISH:
        from worker.wiring import publisher

        publisher(stores.settings).publish([order_key])
        click.echo(f"retry {order_key}: pending, published again")
    else:
        click.echo(f"retry {order_key}: due now, the retry pump publishes it on its next pass")


@order.command(epilog=ACTION_EXIT_HELP)
@click.argument("order_key")
@click.option("--reason", "reason_text", required=True, help="Why (kept in the dead letter).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@redis_url_option
def discard(order_key: str, reason_text: str, yes: bool, redis_url: str | None) -> None:
    """Give up on order KEY while it waits (pending or retry_wait).

    It becomes dead with reason `discarded` and a dead letter that keeps the raw order and your
    reason, so `jetti-relay dlq replay KEY` can still send it later. An order in flight or
    settled is refused (exit 7). Asks for confirmation unless --yes. Audited with your OS user.

    \b
    Example:
      jetti-relay order discard shop-a:1001 --reason "duplicate of shop-a:1002" --yes
    """
    if not reason_text.strip():
        fail("--reason must say why (the dead letter keeps it)", ExitCode.USAGE)
    stores = open_stores(redis_url)
    if not yes:
        entry = stores.ledger.get(order_key)
        if entry is None:
            fail(f"no order under {order_key!r}", ExitCode.NOT_FOUND)
        try:
            click.confirm(f"discard {order_key} ({entry.state})?", abort=True)
        except click.Abort:
            fail("not discarded (not confirmed; --yes skips the question)", ExitCode.USAGE)
    reply = stores.ledger.discard(
        order_key, reason_text=reason_text, actor=os_user(), now=time.time()
    )
    if reply is DiscardReply.MISSING:
        fail(f"no order under {order_key!r}", ExitCode.NOT_FOUND)
    if not reply.done:
        fail(f"order {order_key!r} {reply.refusal}", ExitCode.WRONG_STATE)
    click.echo(
        f"discarded {order_key}: dead (discarded), dead letter kept; "
        f"`jetti-relay dlq replay {order_key}` sends it again"
    )
