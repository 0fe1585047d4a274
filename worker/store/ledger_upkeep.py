"""Ledger upkeep: replays, the retry pump, the sweeper's touch, shedding and purges, and the
operator's actions on one order (retry now, discard) and the index backfill.

What the maintenance loops (worker/pipeline/maintenance.py), `dlq replay`, `migrate-keys`,
`order retry`/`order discard`, `reindex` and the console ask of the ledger; each is one script
(worker/store/lua/*.lua after the prelude) over the order and the indexes, so a crash never
leaves them out of step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import redis

from worker.core.dead_entry import MASK
from worker.core.keys import Keys
from worker.core.privacy import mask_text
from worker.core.records import Attempt
from worker.core.states import DeadReason, DeadStatus, DiscardReply, RetryNowReply
from worker.store.audit import AuditLog
from worker.store.dead_letters import DeadLetters
from worker.store.ledger_schema import decode_pairs, raw_hash, version_ts_ms
from worker.store.scripts import LedgerScripts
from worker.store.stats import Stats

# The audit actions of the operator's order actions (`AuditLog.record`).
RETRY_NOW_ACTION = "retry_now"
DISCARD_ACTION = "discard"


class UpkeepOps:
    """`Ledger`'s upkeep operations (the class itself is worker.store.ledger.Ledger)."""

    _client: redis.Redis[bytes]
    _keys: Keys
    _scripts: LedgerScripts
    body_ttl_s: float
    tombstone_ttl_s: float

    # --- the operator's actions on one order ---------------------------------------------
    def retry_now(self, order_key: str, *, actor: str, now: float) -> RetryNowReply:
        """Try the order again at once (`order retry`, the console), in one script.

        RETRY_WAIT: due now (retry schedule score and next_attempt_at = `now`); it stays
        RETRY_WAIT and the retry pump publishes it on its next pass (within PUMP_INTERVAL_S),
        so a caller that stops right after loses nothing and needs no publisher. PENDING:
        REPUBLISH, its state_since refreshed: the caller publishes the key (a duplicate message
        is harmless). SUBMITTING (IN_FLIGHT), settled (SETTLED), DEAD (DEAD: replay the dead
        letter) and unknown keys (MISSING) are refused and nothing is written. The attempt
        budget and the retry deadline are kept. An effect puts a `retry_now` event with the
        actor on the order's timeline (in the script) and a `retry_now` audit record.
        """
        reply = RetryNowReply(int(self._scripts.run("retry_now", now, order_key, actor)))
        if reply.done:
            AuditLog(self._client, self._keys).record(
                RETRY_NOW_ACTION,
                actor=actor,
                order_keys=[order_key],
                details={"outcome": reply.name.lower()},
                now=now,
            )
        return reply

    def discard(self, order_key: str, *, reason_text: str, actor: str, now: float) -> DiscardReply:
        """Give up on an order still waiting (`order discard`, the console): PENDING or
        RETRY_WAIT becomes DEAD with reason `discarded` and gets a dead letter whose error is
        the operator's reason, so `dlq replay` can re-arm it later (nothing is lost).

        Order of writes: the ledger script first (atomic: a worker claiming the order at the
        same moment either finds it DEAD and does nothing, or holds it and the discard is
        refused as IN_FLIGHT), then the dead letter, then the audit record. A caller stopped
        between the first two leaves a DEAD (discarded) order without a dead letter; running
        the discard again answers ALREADY and writes the missing dead letter. SUBMITTING
        (IN_FLIGHT), settled (SETTLED), DEAD for another reason (DEAD) and unknown keys
        (MISSING) are refused and nothing is written. Raises ValueError for a blank reason.
        Emails in the reason are masked on the timeline and in the audit log.
        """
        if not reason_text.strip():
            raise ValueError("a discard needs a reason (the text the dead letter keeps)")
        note = mask_text(reason_text, MASK) or ""
        code, flat = self._scripts.run("discard", now, order_key, actor, note)
        reply = DiscardReply(int(code))
        if not reply.done:
            return reply
        dead = DeadLetters(self._client, self._keys)
        if reply is DiscardReply.ALREADY:
            existing = dead.get(order_key)
            if (
                existing is not None
                and existing.status is DeadStatus.DEAD
                and existing.reason is DeadReason.DISCARDED
            ):
                return reply
        entry = decode_pairs(order_key, flat)
        dead.put(
            order_key,
            reason=DeadReason.DISCARDED,
            raw=entry.raw,
            payload=None,
            attempts=[
                Attempt.from_dict(json.loads(row))
                for row in self._client.lrange(self._keys.order_attempts(order_key), 0, -1)
            ],
            source=entry.source,
            error=f"discarded by {actor}: {reason_text}",
            now=now,
        )
        if reply is DiscardReply.DISCARDED:
            Stats(self._client, self._keys).count_dead(DeadReason.DISCARDED)
        AuditLog(self._client, self._keys).record(
            DISCARD_ACTION,
            actor=actor,
            order_keys=[order_key],
            details={"reason": note, "rerun": reply is DiscardReply.ALREADY},
            now=now,
        )
        return reply

    def backfill_indexes(self, order_keys: Sequence[str], *, now: float) -> tuple[int, int]:
        """Add these orders to the order-key and received indexes where missing (`reindex`),
        in one script: (order-key entries added, received entries added). An order whose hash
        is gone is skipped; a key already indexed keeps its score."""
        if not order_keys:
            return (0, 0)
        added = self._scripts.run("reindex", now, "", *order_keys)
        return (int(added[0]), int(added[1]))

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
