"""`jetti-relay orders list`: which orders are pending, waiting to retry, in flight, dead...

Reads the ledger's indexes through `worker.store.order_query.OrderQuery` (the console's
orders and backlog pages use the same queries): by key prefix, state and received time, a page
at a time with a cursor. Errors in the listing may quote Jetti's answers: emails are masked
unless `--include-personal-data`, secrets always.

Exit codes: 0 listed (maybe nothing); 2 a bad option or cursor; 4 Redis unreachable.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ops.dlq.common import WHEN, StoreGroup, age, echo_json, fail, iso, open_stores
from ops.options import redis_url_option
from worker.core.dead_entry import MASK, SECRET_MASK
from worker.core.exit_codes import ExitCode
from worker.core.privacy import hide_secrets, mask_text
from worker.core.states import OrderState
from worker.store.order_query import MAX_LIMIT, BadCursor, OrderPage, OrderQuery

EXIT_HELP = "Exit codes: 0 listed; 2 bad option or cursor; 4 Redis unreachable."
# Characters of an error shown in the table (the JSON has it whole).
ERROR_SHOWN = 60


@click.group(cls=StoreGroup)
def orders() -> None:
    """Find orders: by state, key prefix and time."""


@orders.command("list", epilog=EXIT_HELP)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in OrderState]),
    help="Only orders in this state (repeat for several).",
)
@click.option("--prefix", help="Only keys starting with this text (an exact key works too).")
@click.option(
    "--since",
    type=WHEN,
    help="Received at or after (ISO 8601, epoch seconds, or an age: 15m, 2h, 1d).",
)
@click.option("--until", type=WHEN, help="Received at or before this time.")
@click.option(
    "--backlog",
    is_flag=True,
    help="With one --state of pending, retry_wait or submitting: in backlog order "
    "(retry_wait by next attempt, the others oldest first).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="Rows per page.",
)
@click.option("--cursor", help="Continue a listing (the cursor a previous page printed).")
@click.option("--include-personal-data", is_flag=True, help="Show emails in errors unmasked.")
@click.option("--json", "as_json", is_flag=True, help="Rows and next_cursor as one JSON object.")
@redis_url_option
def list_orders(
    states: tuple[str, ...],
    prefix: str | None,
    since: float | None,
    until: float | None,
    backlog: bool,
    limit: int,
    cursor: str | None,
    include_personal_data: bool,
    as_json: bool,
    redis_url: str | None,
) -> None:
    """List orders, newest received first (in key order with --prefix).

    One call looks at a bounded number of orders (5,000): a rare filter may print fewer rows
    than --limit, or none, with a cursor to go on.

    \b
    Examples:
      jetti-relay orders list --state retry_wait --state pending
      jetti-relay orders list --prefix shop-a: --since 2h --json
      jetti-relay orders list --state retry_wait --backlog
    """
    stores = open_stores(redis_url)
    query = OrderQuery(stores.client, stores.keys)
    wanted = [OrderState(s) for s in states]
    try:
        if backlog:
            if len(wanted) != 1 or prefix or since is not None or until is not None:
                fail("--backlog takes exactly one --state and no other filter", ExitCode.USAGE)
            page = query.backlog(wanted[0], limit=limit, cursor=cursor)
        else:
            page = query.search(
                prefix=prefix, states=wanted, since=since, until=until, limit=limit, cursor=cursor
            )
    except (BadCursor, ValueError) as exc:
        fail(str(exc), ExitCode.USAGE)
    view = _view(page, personal=include_personal_data, secrets=stores.settings.secret_values)
    if as_json:
        echo_json(view)
        return
    _render(view, indexed=query.indexed(), counts=query.counts())


def _view(page: OrderPage, *, personal: bool, secrets: tuple[str, ...]) -> dict[str, Any]:
    rows = [row.to_dict() for row in page.rows]
    if not personal:
        for row in rows:
            row["last_error"] = mask_text(row["last_error"], MASK)
    view = {"rows": rows, "next_cursor": page.next_cursor, "examined": page.examined}
    result: dict[str, Any] = hide_secrets(view, secrets, SECRET_MASK)
    return result


def _render(view: dict[str, Any], *, indexed: int, counts: dict[OrderState, int]) -> None:
    console = Console()
    now = time.time()
    table = Table()
    for column in ("key", "state", "since", "attempts", "next attempt", "last error"):
        table.add_column(column, overflow="fold")
    for row in view["rows"]:
        error = row["last_error"] or "-"
        if len(error) > ERROR_SHOWN:
            error = error[: ERROR_SHOWN - 1] + "…"
        nxt = row["next_attempt_at"]
        table.add_row(
            escape(row["order_key"]),
            row["state"],
            f"{age(row['state_since'], now=now)} ago",
            str(row["attempts"]),
            "-" if nxt is None else f"{iso(nxt)} (in {max(0, round(nxt - now))} s)",
            escape(error),
        )
    if view["rows"]:
        console.print(table)
    total = sum(counts.values())
    line = f"{len(view['rows'])} orders listed ({view['examined']} examined)"
    if view["next_cursor"]:
        line += f"; more: --cursor {view['next_cursor']}"
    console.print(line, markup=False, soft_wrap=True)
    if indexed < total:
        console.print(
            f"note: {total - indexed} of {total} orders are not in the search index "
            "(recorded before it existed): run `jetti-relay reindex`",
            markup=False,
        )
