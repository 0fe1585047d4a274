"""The read-only dead-letter commands: `list`, `stats`, `show` and `audit`.

Personal data is masked in everything they print unless `--include-personal-data`; the webhook
hash and the API token are masked always.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.dlq.common import (
    EXIT_CODES_HELP,
    WHEN,
    age,
    echo_json,
    fail,
    filter_options,
    iso,
    open_stores,
)
from ops.options import redis_url_option
from worker.core.dead_entry import MASK, SECRET_MASK, DeadEntry, masked
from worker.core.exit_codes import ExitCode
from worker.core.privacy import hide_secrets, mask_text
from worker.core.states import DeadReason, DeadStatus
from worker.store.dead_query import DeadFilter, list_entries

# Characters of the error shown per row of `list` (the full error is in `show`).
ERROR_WIDTH = 80


def summary_row(entry: DeadEntry, secrets: Sequence[str]) -> dict[str, Any]:
    """One entry as a `list --json` row: no raw order or payload, emails masked."""
    row = {
        "order_key": entry.order_key,
        "reason": str(entry.reason),
        "status": str(entry.status),
        "http_status": entry.http_status,
        "source": entry.source,
        "error": mask_text(entry.error, MASK),
        "attempts": len(entry.attempts),
        "replay_count": entry.replay_count,
        "first_dead_at": entry.first_dead_at,
        "last_dead_at": entry.last_dead_at,
        "status_since": entry.status_since,
    }
    result: dict[str, Any] = hide_secrets(row, secrets, SECRET_MASK)
    return result


@click.command(name="list", epilog=EXIT_CODES_HELP)
@filter_options()
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many entries.",
)
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Skip this many first.")
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
@redis_url_option
def list_command(
    flt: DeadFilter, limit: int, offset: int, as_json: bool, redis_url: str | None
) -> None:
    """List dead letters, newest first, filtered by reason, HTTP status, source, key or glob,
    time window, text in the error and status.

    \b
    Examples:
      jetti-relay dlq list --reason rejected --since 24h
      jetti-relay dlq list --key 'shop-a:*' --error 'unknown variant' --json
    """
    stores = open_stores(redis_url)
    entries = list_entries(stores.dead, flt, offset=offset, limit=limit)
    rows = [summary_row(e, stores.settings.secret_values) for e in entries]
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"dead letters ({len(rows)} shown)")
    for column in ("order key", "reason", "status", "http", "source", "tries", "dead for", "error"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for row in rows:
        error = (row["error"] or "")[:ERROR_WIDTH]
        # Keys, sources and errors are user text: escaped wherever markup is on.
        table.add_row(
            escape(row["order_key"]),
            row["reason"],
            row["status"],
            str(row["http_status"] or "-"),
            escape(row["source"] or "-"),
            str(row["attempts"]),
            age(row["last_dead_at"], now=now),
            escape(error),
        )
    Console().print(table)


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@redis_url_option
def stats(as_json: bool, redis_url: str | None) -> None:
    """Dead letters by reason and status, and the age of the oldest one still dead.

    Read from the indexes only (no entry is read), so it is cheap on a large store.
    """
    stores = open_stores(redis_url)
    st = stores.dead.stats()
    data = {
        "total": st.total,
        "by_reason": {str(r): n for r, n in st.by_reason.items()},
        "dead_by_reason": {str(r): n for r, n in st.dead_by_reason.items()},
        "by_status": {str(s): n for s, n in st.by_status.items()},
        "oldest_dead_at": st.oldest_dead_at,
        "oldest_dead_age_s": None
        if st.oldest_dead_at is None
        else max(0.0, time.time() - st.oldest_dead_at),
    }
    if as_json:
        echo_json(data)
        return
    table = Table(title=f"dead letters: {st.total}")
    table.add_column("reason")
    table.add_column("still dead", justify="right")
    table.add_column("all", justify="right")
    for reason in DeadReason:
        table.add_row(str(reason), str(st.dead_by_reason[reason]), str(st.by_reason[reason]))
    console = Console()
    console.print(table)
    console.print("by status: " + ", ".join(f"{s} {st.by_status[s]}" for s in DeadStatus))
    console.print(
        f"oldest still dead: {iso(st.oldest_dead_at)} ({age(st.oldest_dead_at)} ago)"
        if st.oldest_dead_at
        else "oldest still dead: none"
    )


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("order_key")
@click.option(
    "--include-personal-data",
    is_flag=True,
    help="Show names, emails, phones and addresses unmasked.",
)
@click.option("--json", "as_json", is_flag=True, help="The whole entry as JSON.")
@redis_url_option
def show(order_key: str, include_personal_data: bool, as_json: bool, redis_url: str | None) -> None:
    """Show one dead letter: reason, error, the raw order, the last payload, every attempt and
    the status history. Secrets are always masked; personal data unless asked."""
    stores = open_stores(redis_url)
    entry = stores.dead.get(order_key)
    if entry is None:
        fail(
            f"no dead letter under {order_key!r} (try `jetti-relay order show`)", ExitCode.NOT_FOUND
        )
    view = masked(
        entry, include_personal_data=include_personal_data, secrets=stores.settings.secret_values
    )
    order = stores.ledger.get(order_key)
    view["ledger_state"] = None if order is None else str(order.state)
    if as_json:
        echo_json(view)
        return
    console = Console()
    console.print(
        f"[bold]{escape(view['order_key'])}[/bold]  {view['status']} ({view['reason']}), "
        f"ledger: {view['ledger_state'] or 'no entry'}"
    )
    console.print(
        f"first dead {iso(view['first_dead_at'])}, last dead "
        f"{iso(view['last_dead_at'])}, replayed {view['replay_count']}x, "
        f"source {view['source'] or '-'}, http {view['http_status'] or '-'}",
        markup=False,
    )
    console.print(f"error: {view['error']}", markup=False)
    for title in ("raw", "payload"):
        console.rule(title)
        document = view[title]
        console.print(
            document
            if isinstance(document, str)
            else json.dumps(document, indent=2, ensure_ascii=False),
            markup=False,
        )
    attempts = Table(title="attempts")
    for column in ("at", "status", "error", "outcome", "worker", "excerpt"):
        attempts.add_column(column, overflow="fold")
    for a in view["attempts"]:
        attempts.add_row(
            iso(a["at"]),
            str(a["status"] or "-"),
            escape(a["error_class"] or "-"),
            escape(a["outcome"]),
            escape(a["worker"]),
            escape(a["excerpt"] or ""),
        )
    console.print(attempts)
    history = Table(title="history")
    for column in ("at", "status", "reason"):
        history.add_column(column)
    for h in view["history"]:
        history.add_row(iso(h["at"]), h["status"], escape(h["reason"] or ""))
    console.print(history)


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--action", help="Only this action (replay, purge, erase, export).")
@click.option("--actor", help="Only records by this OS user.")
@click.option("--key", "order_key", help="Only records touching this order key.")
@click.option("--since", type=WHEN, help="At or after this time (ISO 8601, epoch, or 6h, 7d).")
@click.option("--until", type=WHEN, help="At or before this time.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many records.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
@redis_url_option
def audit(
    action: str | None,
    actor: str | None,
    order_key: str | None,
    since: float | None,
    until: float | None,
    limit: int,
    as_json: bool,
    redis_url: str | None,
) -> None:
    """Who replayed, purged, erased or exported what, and when (newest first)."""
    stores = open_stores(redis_url)
    records = stores.audit.read(
        since=since, until=until, action=action, actor=actor, order_key=order_key, limit=limit
    )
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    table = Table(title=f"audit log ({len(records)} shown)")
    for column in ("at", "actor", "action", "orders", "details"):
        table.add_column(column, overflow="fold")
    for r in records:
        keys = ", ".join(r.order_keys[:5]) + (" ..." if len(r.order_keys) > 5 else "")
        table.add_row(
            iso(r.at),
            escape(r.actor),
            escape(r.action),
            escape(keys),
            escape(json.dumps(r.details, sort_keys=True)),
        )
    Console().print(table)
