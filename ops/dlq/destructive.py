"""The dead-letter commands that copy or remove data: `export`, `purge` and `erase`.

Personal data is masked in exports unless `--include-personal-data` (and such an export is
audited); `purge` and `erase` need `--yes` and are always audited. No email address is written to
the audit log: an erase is recorded by the address's hash.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO

import click

from ops.dlq.common import EXIT_CODES_HELP, fail, filter_options, open_stores
from ops.options import redis_url_option
from worker.core.dead_entry import DeadEntry, masked
from worker.core.exit_codes import ExitCode
from worker.core.privacy import email_hash
from worker.store.audit import os_user
from worker.store.dead_query import DeadFilter, iter_entries
from worker.store.erasure import erase_customer

# Entries deleted per purge round: the export of a round is on disk before it is deleted.
PURGE_CHUNK = 200


@contextmanager
def _output(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def _write(
    handle: IO[str], entries: Iterable[DeadEntry], *, personal: bool, secrets: Sequence[str]
) -> int:
    count = 0
    for entry in entries:
        view = masked(entry, include_personal_data=personal, secrets=secrets)
        handle.write(json.dumps(view, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def _filter_keys(flt: DeadFilter) -> dict[str, object]:
    """The filters given, for the audit record (no personal data in filters)."""
    return {name: value for name, value in vars(flt).items() if value is not None}


@click.command(epilog=EXIT_CODES_HELP)
@filter_options()
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="JSON Lines file to write ('-' for stdout).",
)
@click.option(
    "--include-personal-data",
    is_flag=True,
    help="Keep names, emails, phones and addresses (the export is audited).",
)
@redis_url_option
def export(
    flt: DeadFilter, output: str, include_personal_data: bool, redis_url: str | None
) -> None:
    """Export dead letters (raw order, payload, attempts, history) as JSON Lines.

    Personal data is masked as "***" unless --include-personal-data; secrets are always masked.
    """
    stores = open_stores(redis_url)
    if include_personal_data:
        stores.audit.record(
            "export",
            actor=os_user(),
            now=time.time(),
            details={"personal_data": True, "filters": _filter_keys(flt), "output": output},
        )
    with _output(output) as handle:
        count = _write(
            handle,
            iter_entries(stores.dead, flt),
            personal=include_personal_data,
            secrets=stores.settings.secret_values,
        )
    click.echo(f"exported {count} entries to {'stdout' if output == '-' else output}", err=True)


@click.command(epilog=EXIT_CODES_HELP)
@filter_options()
@click.option("--all", "purge_all", is_flag=True, help="Purge every entry (when no filter).")
@click.option("--yes", is_flag=True, help="Really delete (without it, only say how many).")
@click.option(
    "--export-to",
    metavar="FILE",
    help="Where the export goes (default: dlq-purge-<UTC time>.jsonl here).",
)
@click.option("--no-export", is_flag=True, help="Delete without exporting first.")
@click.option("--include-personal-data", is_flag=True, help="Keep personal data in the export.")
@redis_url_option
def purge(
    flt: DeadFilter,
    purge_all: bool,
    yes: bool,
    export_to: str | None,
    no_export: bool,
    include_personal_data: bool,
    redis_url: str | None,
) -> None:
    """Delete dead letters for good, exporting them to JSON Lines first.

    Only purge deletes dead letters; nothing expires on its own. The order's ledger entry goes
    too while it is still DEAD (its raw body, timeline and attempts). Needs --yes (and --all
    when no filter is given). Each round of entries is written to the export and synced to disk
    before it is deleted, so a purge killed half-way never loses an entry it did not export.

    \b
    Example:
      jetti-relay dlq purge --status resolved --until 30d --yes
    """
    if flt.is_empty and not purge_all:
        fail("give a filter, or --all to purge every dead letter", ExitCode.USAGE)
    stores = open_stores(redis_url)
    started = time.time()
    keys = [e.order_key for e in iter_entries(stores.dead, flt.bounded(started))]
    if not yes:
        fail(f"purge would delete {len(keys)} dead letters; add --yes to do it", ExitCode.USAGE)
    path = (
        None
        if no_export
        else (export_to or time.strftime("dlq-purge-%Y%m%dT%H%M%SZ.jsonl", time.gmtime(started)))
    )
    handle = None if path is None else open(path, "a", encoding="utf-8")  # noqa: SIM115
    purged = 0
    try:
        for start in range(0, len(keys), PURGE_CHUNK):
            chunk = keys[start : start + PURGE_CHUNK]
            if handle is not None:
                entries = [e for e in (stores.dead.get(k) for k in chunk) if e is not None]
                _write(
                    handle,
                    entries,
                    personal=include_personal_data,
                    secrets=stores.settings.secret_values,
                )
                handle.flush()
                os.fsync(handle.fileno())
            stores.audit.record(
                "purge",
                actor=os_user(),
                order_keys=chunk,
                now=time.time(),
                details={"filters": _filter_keys(flt), "export": path},
            )
            for entry in stores.dead.purge(chunk):
                # The order's DEAD ledger entry goes with its dead letter (never before: DEAD
                # entries are not shed); one replayed or updated since is left alone.
                stores.ledger.purge_dead(entry.order_key, now=time.time())
                purged += 1
    finally:
        if handle is not None:
            handle.close()
    where = f", exported to {path}" if path else ", not exported"
    click.echo(f"purged {purged} dead letters{where}")


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--email", required=True, metavar="ADDRESS", help="The customer's email address.")
@click.option("--yes", is_flag=True, help="Really erase (without it, nothing is changed).")
@redis_url_option
def erase(email: str, yes: bool, redis_url: str | None) -> None:
    """Privacy request: remove one customer's personal data from dead letters and the ledger.

    In every dead letter and ledger order that carries the address, names, emails, phones and
    addresses become "[erased]"; the entries stay (with their history). An order still on its
    way to Jetti is left alone and reported (exit 1): run the command again once it settled.
    The audit log records the address's hash, never the address.
    """
    if not yes:
        fail("erase rewrites stored orders for good; add --yes to do it", ExitCode.USAGE)
    stores = open_stores(redis_url)
    now = time.time()
    result = erase_customer(stores.client, stores.keys, email, now=now)
    stores.audit.record(
        "erase",
        actor=os_user(),
        order_keys=result.ledger_orders,
        now=now,
        details={
            "email_hash": email_hash(email),
            "dead_letters": result.dead_letters,
            "ledger_orders": len(result.ledger_orders),
            "in_flight": result.in_flight,
        },
    )
    click.echo(
        f"erased personal data in {result.dead_letters} dead letters and "
        f"{len(result.ledger_orders)} ledger orders"
    )
    if result.in_flight:
        click.echo(
            "still on their way to Jetti, run again once settled: " + ", ".join(result.in_flight),
            err=True,
        )
        raise click.exceptions.Exit(ExitCode.PARTIAL)
