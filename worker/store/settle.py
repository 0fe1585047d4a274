"""Ledger operations that settle an order after Jetti answered: confirm, reject, repair, cancel.

`SettleLedger` is the ledger plus the compare-and-set scripts the reconciler and the cancel path
need (worker/store/lua/confirm.lua, reject_sent.lua, repair.lua, mark_cancelled.lua, each prefixed
with
the ledger's prelude so the state indexes stay in step). Every one of them checks, inside the
script, that the order is still where the caller saw it (state and payload hash last sent): a
newer version that arrived meanwhile is never confirmed, killed or re-armed by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.core.records import Attempt, OrderEntry, Version
from worker.core.states import DeadReason
from worker.store.ledger import Ledger, _entry


class SettleLedger(Ledger):
    """The ledger with the reconciler's and the cancel path's settle operations."""

    def get_many(self, order_keys: Sequence[str]) -> list[OrderEntry | None]:
        """Entries of `order_keys` (None for unknown keys), one pipelined round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key in order_keys:
            pipe.hgetall(self._keys.order(key))
        return [
            _entry(key, data) if data else None
            for key, data in zip(order_keys, pipe.execute(), strict=True)
        ]

    def confirm_many(self, items: Sequence[tuple[str, str]], *, now: float) -> list[str]:
        """SUBMITTED -> CONFIRMED for each (order key, payload hash) still as given; returns the
        keys confirmed. One pipelined round trip."""
        if not items:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key, payload_hash in items:
            self._run("confirm", now, key, payload_hash, client=pipe)
        replies = pipe.execute()
        return [key for (key, _), done in zip(items, replies, strict=True) if int(done) == 1]

    def reject_sent(
        self,
        order_key: str,
        *,
        payload_hash: str,
        reason: DeadReason,
        error: str,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        """DEAD with `reason` if the order is SUBMITTED/CONFIRMED with `payload_hash` last sent."""
        reply = self._run(
            "reject_sent",
            now,
            order_key,
            payload_hash,
            str(reason),
            error[:1000],
            self._attempt_json(attempt),
        )
        return int(reply) == 1

    def repair(self, order_key: str, *, payload_hash: str, now: float, max_repairs: int = 3) -> int:
        """PENDING again, payload hash forgotten, so the latest version is sent again; only if
        the order is SUBMITTED/CONFIRMED with `payload_hash` last sent. 1: re-armed (the caller
        publishes); 0: the order moved on; -1: already repaired `max_repairs` times since its
        last confirmation (the caller gives up on it)."""
        return int(self._run("repair", now, order_key, payload_hash, max_repairs))

    def mark_cancelled(
        self,
        order_key: str,
        *,
        version: Version,
        sale_id: int | None,
        via: str,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        """CANCELLED for the version the worker read (`via`: "jetti" or "not_imported").

        Returns True, with the order PENDING again, when a newer version arrived meanwhile.
        """
        reply = self._run(
            "mark_cancelled",
            now,
            order_key,
            version.ts_ms,
            version.seq,
            "" if sale_id is None else sale_id,
            self._attempt_json(attempt),
            via,
        )
        return int(reply) == 1

    def cancelled_via(self, order_key: str) -> str | None:
        """How the order was cancelled ("jetti", "not_imported"), None if never (order show)."""
        value = self._client.hget(self._keys.order(order_key), "cancelled_via")
        return None if value is None else bytes(value).decode()
