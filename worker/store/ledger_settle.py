"""Ledger operations that settle an order after Jetti answered: confirm, reject, repair, cancel.

The compare-and-set scripts the reconciler and the cancel path need (worker/store/lua/confirm.lua,
reject_sent.lua, repair.lua, mark_cancelled.lua, each after the ledger's prelude so the state
indexes stay in step). Every one of them checks, inside the script, that the order is still
where the caller saw it (state and payload hash last sent): a newer version that arrived
meanwhile is never confirmed, killed or re-armed by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from worker.core.keys import Keys
from worker.core.records import Attempt, Version
from worker.core.states import DeadReason, RepairReply
from worker.store.ledger_schema import attempt_json
from worker.store.scripts import LedgerScripts

# Characters of an error message kept on a rejected order.
_ERROR_KEPT = 1000


class SettleOps:
    """`Ledger`'s settle operations (the class itself is worker.store.ledger.Ledger)."""

    _client: redis.Redis[bytes]
    _keys: Keys
    _scripts: LedgerScripts

    def confirm_many(self, items: Sequence[tuple[str, str]], *, now: float) -> list[str]:
        """SUBMITTED -> CONFIRMED for each (order key, payload hash) still as given; returns the
        keys confirmed. One pipelined round trip."""
        if not items:
            return []
        calls = [self._scripts.argv(now, key, payload_hash) for key, payload_hash in items]
        replies = self._scripts.run_pipelined("confirm", calls)
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
        reply = self._scripts.run(
            "reject_sent",
            now,
            order_key,
            payload_hash,
            str(reason),
            error[:_ERROR_KEPT],
            attempt_json(attempt),
        )
        return int(reply) == 1

    def repair(
        self, order_key: str, *, payload_hash: str, now: float, max_repairs: int = 3
    ) -> RepairReply:
        """PENDING again, payload hash forgotten, so the latest version is sent again; only if
        the order is SUBMITTED/CONFIRMED with `payload_hash` last sent. REARMED (1): the caller
        publishes; MOVED_ON (0): the order moved on; GAVE_UP (-1): already repaired
        `max_repairs` times since its last confirmation (the caller gives up on it)."""
        return RepairReply(
            int(self._scripts.run("repair", now, order_key, payload_hash, max_repairs))
        )

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
        reply = self._scripts.run(
            "mark_cancelled",
            now,
            order_key,
            version.ts_ms,
            version.seq,
            "" if sale_id is None else sale_id,
            attempt_json(attempt),
            via,
        )
        return int(reply) == 1
