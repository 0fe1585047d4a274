"""Ledger upkeep: replays, the retry pump, the sweeper's touch, shedding and purges.

What the maintenance loops (worker/pipeline/maintenance.py), `dlq replay` and `migrate-keys`
ask of the ledger; each is one script (worker/store/lua/*.lua after the prelude) over the order
and the indexes, so a crash never leaves them out of step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import redis

from worker.core.keys import Keys
from worker.store.ledger_schema import raw_hash, version_ts_ms
from worker.store.scripts import LedgerScripts


class UpkeepOps:
    """`Ledger`'s upkeep operations (the class itself is worker.store.ledger.Ledger)."""

    _client: redis.Redis[bytes]
    _keys: Keys
    _scripts: LedgerScripts
    body_ttl_s: float
    tombstone_ttl_s: float

    def replay(
        self,
        order_key: str,
        *,
        now: float,
        raw: bytes | None = None,
        updated_at: datetime | None = None,
        resend_payload: bytes | None = None,
        accept_line_changes: bool = False,
    ) -> tuple[str, str]:
        """Re-arm a DEAD order for `dlq replay` (worker/pipeline/replayer.py), atomically.

        `raw` replaces the stored raw order as a new version (next arrival sequence, timestamp
        above the stored one); `resend_payload` makes the worker send those bytes instead
        of re-transforming, until submitted or a newer version arrives; `accept_line_changes`
        forgets the line ids last sent, so an update dropping some is sent (the engineer checked
        Jetti: lines_changed). Returns (outcome, state
        before): "rearmed"; "not_dead" (only a DEAD order is armed, so a rerun never arms one
        twice); "missing" (no entry); "no_body" (no raw order to send).
        """
        reply = self._scripts.run(
            "replay",
            now,
            order_key,
            raw or b"",
            "" if raw is None else raw_hash(raw),
            version_ts_ms(updated_at),
            resend_payload or b"",
            "1" if accept_line_changes else "0",
        )
        return reply[0].decode(), reply[1].decode()

    def pop_due_retries(self, *, now: float, limit: int) -> list[str]:
        """Atomically take up to `limit` due keys off the retry schedule and set them PENDING.

        Keys whose order is no longer RETRY_WAIT are dropped from the schedule and not returned.
        """
        return [k.decode() for k in self._scripts.run("pop_due", now, "", limit)]

    def mark_republished(self, order_keys: Sequence[str], *, now: float) -> None:
        """The sweeper re-published these: refresh state_since of those still PENDING or
        SUBMITTING, so they are not re-published again before the next threshold."""
        self._scripts.run_pipelined("touch", [self._scripts.argv(now, key) for key in order_keys])

    def shed_settled(self, *, now: float, limit: int) -> int:
        """Shed up to `limit` orders settled before `now - body_ttl_s` to their tombstone: the
        raw body, the transient fields and the events and attempts lists go; the version, hashes,
        state, sale id, line ids and cancellation stay until `tombstone_ttl_s` later. The same
        pass purges up to `limit` tombstones whose time is up. Returns the number shed."""
        shed = self._scripts.run(
            "shed", now, "", repr(now - self.body_ttl_s), repr(self.tombstone_ttl_s), limit
        )
        self.purge_tombstones(now=now, limit=limit)
        return int(shed)

    def purge_tombstones(self, *, now: float, limit: int) -> int:
        """Delete up to `limit` tombstones whose time is up (hash, events, attempts, indexes)."""
        return int(self._scripts.run("purge_tombstones", now, "", limit))

    def lower_version(
        self, order_key: str, *, above_ts_ms: int, to_ts_ms: int, now: float
    ) -> int | None:
        """Lower a stored version timestamp above `above_ts_ms` to `to_ts_ms` (a far-future
        `updated_at` froze the order: every real update was stale), with a `version_lowered`
        event. Returns the old timestamp (ms) when lowered, else None (`migrate-keys`)."""
        reply = self._scripts.run("lower_version", now, order_key, above_ts_ms, to_ts_ms)
        return int(reply) if reply else None

    def purge_dead(self, order_key: str, *, now: float) -> bool:
        """Delete a DEAD order's entry (hash, events, attempts, indexes) once its dead letter was
        purged: DEAD entries are never shed, so this is what bounds them. True when deleted;
        False when the key is unknown or no longer DEAD (replayed, or a newer version came)."""
        return int(self._scripts.run("purge_dead", now, order_key)) == 1
