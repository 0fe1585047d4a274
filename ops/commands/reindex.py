"""`jetti-relay reindex`: put orders recorded before the search indexes existed into them.

The order-key index (prefix search) and the received index (search by time) are kept by the
ledger's scripts from this version on; orders recorded earlier are in neither. This walks every
state index with ZSCAN (every order is in exactly one), a batch at a time, and adds what is
missing in one script per batch (`Ledger.backfill_indexes`: received time = the order's
enqueued_at; keys already indexed are left alone), so it is idempotent, safe while the fleet
runs, and can be stopped and run again.

Exit codes: 0 done (or nothing to do); 4 Redis unreachable.
"""

from __future__ import annotations

import time

import click

from ops.dlq.common import StoreCommand, open_stores
from ops.options import redis_url_option
from worker.core.states import OrderState
from worker.wiring import Stores

# Order keys read per ZSCAN round and indexed per script call.
REINDEX_BATCH = 500


@click.command(cls=StoreCommand)
@click.option("--dry-run", is_flag=True, help="Count what is missing; change nothing.")
@redis_url_option
def reindex(dry_run: bool, redis_url: str | None) -> None:
    """Add orders recorded before this version to the search indexes (idempotent).

    \b
    Example:
      jetti-relay reindex --dry-run
      jetti-relay reindex
    """
    stores = open_stores(redis_url)
    seen = added_keys = added_received = 0
    for state in OrderState:
        batch: list[str] = []
        members = stores.client.zscan_iter(stores.keys.state_index(state), count=REINDEX_BATCH)
        for member, _score in members:
            batch.append(member.decode())
            if len(batch) < REINDEX_BATCH:
                continue
            a, b = _batch(stores, batch, dry_run=dry_run)
            seen, added_keys, added_received = seen + len(batch), added_keys + a, added_received + b
            click.echo(f"... {seen} orders looked at, {added_keys} missing", err=True)
            batch = []
        if batch:
            a, b = _batch(stores, batch, dry_run=dry_run)
            seen, added_keys, added_received = seen + len(batch), added_keys + a, added_received + b
    verb = "would add" if dry_run else "added"
    click.echo(
        f"reindex: {seen} orders looked at; {verb} {added_keys} to the key index and "
        f"{added_received} to the received index"
    )


def _batch(stores: Stores, order_keys: list[str], *, dry_run: bool) -> tuple[int, int]:
    """(key-index, received-index) entries missing (dry run) or added for `order_keys`."""
    if not dry_run:
        return stores.ledger.backfill_indexes(order_keys, now=time.time())
    client, keys = stores.client, stores.keys
    in_keys = client.execute_command("ZMSCORE", keys.order_key_index(), *order_keys)
    in_received = client.execute_command("ZMSCORE", keys.received_index(), *order_keys)
    return (
        sum(1 for s in in_keys if s is None),
        sum(1 for s in in_received if s is None),
    )
