"""The order ledger in Redis: the durable unit of the pipeline (DESIGN.md principles 1-3).

One hash per order (`Keys.order`, fields in worker/store/ledger_schema.py) holds the latest raw
order, its version, state, what was last sent, the attempt budget and the delivery markers; an
events list is the order's timeline and an attempts list its submission history. Sorted sets
index orders by state (score = time entered), by enqueue time (unsettled orders only), by retry
due time, by settle time (bodies still to shed) and by tombstone expiry, so the sweeper,
listings and metrics never scan keys.

Every mutating operation is one Lua script (worker/store/lua/*.lua, each after prelude.lua, run
by worker/store/scripts.py), so a crash or a concurrent writer can never leave the hash and the
indexes out of step. `Ledger` is one class whose operations live by concern: recording and
reading here, the worker's claim and finish in ledger_delivery.py, the reconciler's and cancel
path's settle operations in ledger_settle.py, replays, the retry pump and shedding in
ledger_upkeep.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from worker.core.keys import Keys
from worker.core.limits import DEFAULT_BODY_TTL_S, DEFAULT_TOMBSTONE_TTL_S
from worker.core.records import (
    Attempt,
    Claim,
    Dead,
    Delivery,
    DeliveryAction,
    Finish,
    NewVersion,
    OrderEntry,
    RecordOutcome,
    RecordResult,
    Retry,
    Submitted,
    Version,
)
from worker.core.states import OrderState
from worker.store.ledger_delivery import DeliveryOps
from worker.store.ledger_schema import (
    OrderField,
    decode_entry,
    raw_hash,
    ts_arg,
    version_ts_ms,
)
from worker.store.ledger_settle import SettleOps
from worker.store.ledger_upkeep import UpkeepOps
from worker.store.scripts import LedgerScripts

__all__ = [
    "Attempt",
    "Claim",
    "Dead",
    "Delivery",
    "DeliveryAction",
    "Finish",
    "Ledger",
    "NewVersion",
    "OrderEntry",
    "RecordOutcome",
    "RecordResult",
    "Retry",
    "Submitted",
    "Version",
    "raw_hash",
    "version_ts_ms",
]

# Orders per record_batch script call: Redis runs one call without serving anyone else, so a
# slice is kept to a few milliseconds of work.
RECORD_SLICE = 100


class Ledger(DeliveryOps, SettleOps, UpkeepOps):
    """The ledger of one deployment (one `Keys` prefix) on a sync `redis.Redis`.

    The client must use decode_responses=False. Times (`now`, `due_at`, ...) are epoch seconds
    passed in by the caller. Redis errors propagate as `redis.RedisError`: the ledger is the
    source of truth, so a caller that cannot reach it must not pretend it wrote anything.
    `body_ttl_s` and `tombstone_ttl_s` are the retention of `shed_settled` (defaults: those of
    Settings, worker.core.limits).
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        body_ttl_s: float = DEFAULT_BODY_TTL_S,
        tombstone_ttl_s: float = DEFAULT_TOMBSTONE_TTL_S,
    ) -> None:
        self._client = client
        self._keys = keys
        self.body_ttl_s = body_ttl_s
        self.tombstone_ttl_s = tombstone_ttl_s
        self._scripts = LedgerScripts(client, keys)

    # --- producers ------------------------------------------------------------------------
    def record(self, item: NewVersion, *, now: float) -> RecordResult:
        """Compare-and-set one raw order's version (see `record_many`)."""
        return self.record_many([item], now=now)[0]

    def record_many(self, items: Sequence[NewVersion], *, now: float) -> list[RecordResult]:
        """Record raw orders in one pipelined round trip; results in the order of `items`.

        Per item, atomically: a new key is ACCEPTED (PENDING, publish). Byte-identical to the
        stored raw (hash compare, tombstones included) is UNCHANGED. Once a cancelling copy
        (`cancelled`) is stored, or the order is CANCELLED, a copy that is not a cancellation is
        AFTER_CANCEL (counted, an event, not stored: the stored raw stays the cancelling one).
        An `updated_at` older than the stored one is STALE (counted, an event, ignored), except
        for a first cancelling copy, which is always recorded. Otherwise the item is newer (ties
        on the timestamp go to the later arrival) and is UPDATED: it replaces the stored raw
        and gets the next arrival sequence. A copy without `updated_at`, and a first cancelling
        copy older than the stored timestamp, take the stored timestamp: they are ordered after
        every earlier copy, by arrival, and the stored version never goes down.
        publish is True when the order moved to PENDING from a state with no work in flight
        (new, SUBMITTED, CONFIRMED, CANCELLED, DEAD; the latter with a fresh attempt budget),
        and for an UNCHANGED, STALE or AFTER_CANCEL copy of an order still PENDING (a re-run
        after a producer stopped between recording and publishing publishes it at once); an
        update to a PENDING, SUBMITTING or RETRY_WAIT order coalesces into the work already
        queued (publish False). Items for the same key in one call are applied in order.
        """
        if not items:
            return []
        # One record_batch script per slice (Redis runs a slice without pausing, so slices
        # stay small), every slice in one pipelined round trip.
        calls: list[list[Any]] = []
        for start in range(0, len(items), RECORD_SLICE):
            flat: list[Any] = []
            for item in items[start : start + RECORD_SLICE]:
                flat += [
                    item.order_key,
                    item.raw,
                    raw_hash(item.raw),
                    ts_arg(item.updated_at),
                    item.source or "",
                    "1" if item.cancelled else "0",
                    item.trace or "",
                ]
            calls.append(self._scripts.argv(now, "", *flat))
        replies = self._scripts.run_pipelined("record_batch", calls)
        rows = [row for reply in replies for row in reply]
        results = []
        for item, (outcome, publish, ts_ms, seq) in zip(items, rows, strict=True):
            results.append(
                RecordResult(
                    order_key=item.order_key,
                    outcome=RecordOutcome(outcome.decode()),
                    publish=bool(publish),
                    version=Version(int(ts_ms), int(seq)),
                )
            )
        return results

    # --- reading --------------------------------------------------------------------------
    def get(self, order_key: str) -> OrderEntry | None:
        """The order's entry, or None when the key is unknown (or its tombstone was purged)."""
        data = self._client.hgetall(self._keys.order(order_key))
        return decode_entry(order_key, data) if data else None

    def get_many(self, order_keys: Sequence[str]) -> list[OrderEntry | None]:
        """Entries of `order_keys` (None for unknown keys), one pipelined round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key in order_keys:
            pipe.hgetall(self._keys.order(key))
        return [
            decode_entry(key, data) if data else None
            for key, data in zip(order_keys, pipe.execute(), strict=True)
        ]

    def cancelled_via(self, order_key: str) -> str | None:
        """How the order was cancelled ("jetti", "not_imported"), None if never (order show)."""
        value = self._client.hget(self._keys.order(order_key), OrderField.CANCELLED_VIA)
        return None if value is None else bytes(value).decode()

    def attempts(self, order_key: str) -> list[Attempt]:
        """Every attempt recorded for the order, oldest first (capped at the last 1000)."""
        rows = self._client.lrange(self._keys.order_attempts(order_key), 0, -1)
        return [Attempt.from_dict(json.loads(row)) for row in rows]

    def events(self, order_key: str) -> list[dict[str, Any]]:
        """The order's timeline, oldest first (the last 200 events); each has `type` and `at`."""
        rows = self._client.lrange(self._keys.order_events(order_key), 0, -1)
        return [json.loads(row) for row in rows]

    def stuck(self, state: OrderState, *, older_than: float, limit: int) -> list[str]:
        """Up to `limit` keys in `state` since before the epoch time `older_than`, oldest first."""
        rows = self._client.zrangebyscore(
            self._keys.state_index(state), "-inf", f"({older_than!r}", start=0, num=limit
        )
        return [row.decode() for row in rows]

    def state_counts(self) -> dict[OrderState, int]:
        """Number of orders in each state (one ZCARD per state index, pipelined)."""
        pipe = self._client.pipeline(transaction=False)
        for state in OrderState:
            pipe.zcard(self._keys.state_index(state))
        return dict(zip(OrderState, (int(n) for n in pipe.execute()), strict=True))

    def oldest_enqueued(self) -> tuple[str, float] | None:
        """The unsettled order whose latest version was enqueued longest ago, with that time."""
        rows = self._client.zrange(self._keys.enqueued_index(), 0, 0, withscores=True)
        return (rows[0][0].decode(), float(rows[0][1])) if rows else None
