"""The dead-letter store: orders that cannot go through, kept until an engineer acts.

One entry per order key (DESIGN.md principle 8):

    keys.dead(k)           hash: reason, status, error, http_status, source, raw, payload,
                           first_dead_at, last_dead_at, status_since, replay_count, email_hashes
    keys.dead_attempts(k)  list: the last DEAD_ATTEMPTS_KEPT attempts (JSON of `Attempt.to_dict`)
    keys.dead_history(k)   list: the last DEAD_HISTORY_KEPT status changes (JSON of `StatusChange`)

Indexes, all sorted sets scored by the entry's `last_dead_at` (epoch s): `keys.dead_index()` (every
entry), `keys.dead_reason_index(r)` (exactly one per entry) and `keys.dead_status_index(s)` (exactly
one per entry); `keys.dead_email_index(h)` maps an email hash to order keys for privacy requests.
Every write changes the entry and its indexes in one MULTI guarded by WATCH, so a reader never sees
an entry missing from its indexes or indexed under a stale reason or status.

Nothing expires. Only `purge` deletes, and it returns what it deleted so the caller can export it
(and purge the order's DEAD ledger entry with it). The attempts and history lists are trimmed to
their newest rows, so an order dead-lettered in a loop cannot grow them without bound.
Status moves dead -> replayed -> resolved; a replayed order that fails again is `put` again and
becomes dead, with its new attempts and a status change appended to the history.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar, cast

import redis
from redis.client import Pipeline

from worker.core.dead_entry import (
    ERASED,
    DeadEntry,
    DeadStats,
    StatusChange,
    attempt_bytes,
    erase_attempt,
    masked,
)
from worker.core.limits import DEAD_ATTEMPTS_KEPT, DEAD_HISTORY_KEPT
from worker.core.privacy import email_hash, find_emails, mask_text, scrub_bytes
from worker.core.records import Attempt, Version
from worker.core.states import DeadReason, DeadStatus
from worker.store.dead_reads import DeadLetterReads

__all__ = ["DeadEntry", "DeadLetters", "DeadStats", "StatusChange", "email_hash", "masked"]


T = TypeVar("T")
Fields = dict[str, bytes | str | float]


def _now_mode(pipe: Pipeline[bytes]) -> redis.Redis[bytes]:
    # A pipeline that WATCHes runs each command at once until multi(); the stubs type every
    # pipeline command as queued, so reads in that phase are typed through this view.
    return cast("redis.Redis[bytes]", pipe)


def _hashes(conn: redis.Redis[bytes], dead_key: str) -> builtins.list[str]:
    return (conn.hget(dead_key, "email_hashes") or b"").decode().split()


class DeadLetters(DeadLetterReads):
    """The dead-letter store (see the module docstring for the layout)."""

    def _transact(self, watched: Sequence[str], body: Callable[[Pipeline[bytes]], T]) -> T:
        """Run `body` under WATCH on `watched`, retrying when one changed before EXEC. `body`
        reads in immediate mode, then calls `pipe.multi()` and queues its writes (or returns
        before multi() to write nothing)."""
        while True:
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(*watched)
                    result = body(pipe)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def _append_history(self, pipe: Pipeline[bytes], order_key: str, change: StatusChange) -> None:
        history = self._keys.dead_history(order_key)
        pipe.rpush(history, json.dumps(change.to_dict()))
        pipe.ltrim(history, -DEAD_HISTORY_KEPT, -1)

    # --- writes -------------------------------------------------------------------------
    def put(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        raw: bytes | None,
        payload: bytes | None,
        attempts: Sequence[Attempt],
        source: str | None,
        error: str,
        now: float,
        payload_version: Version | None = None,
    ) -> None:
        """Dead-letter `order_key` at `now`: create the entry, or make an existing one dead again.

        `raw`, `payload` and `source` replace the stored values when given; None keeps them.
        `payload_version` is the ledger version the payload was built from: stored with a new
        payload (a payload without one is of unknown version), kept with the payload it belongs
        to, so `dlq replay --resend-stored` can refuse a payload older than the ledger's
        latest version (reliability #13).
        `attempts` may be the order's whole history or only the new ones: an attempt already
        stored (identical record) is not appended twice. `http_status` becomes the status of the
        last attempt given. `first_dead_at` is kept; `last_dead_at` and every index score become
        `now`. A status change to dead is appended to the history. Emails found in `raw` and
        `payload` are indexed by hash for `erase_personal_data`.
        """
        k = self._keys
        dead_key, attempts_key = k.dead(order_key), k.dead_attempts(order_key)
        new_hashes = {email_hash(e) for e in find_emails(raw) | find_emails(payload)}

        def write(pipe: Pipeline[bytes]) -> None:
            now_pipe = _now_mode(pipe)
            old_reason, old_status = now_pipe.hmget(dead_key, ["reason", "status"])
            hashes = set(_hashes(now_pipe, dead_key)) | new_hashes
            stored = set(now_pipe.lrange(attempts_key, 0, -1)) if attempts else set()
            pipe.multi()
            if old_reason is not None and old_reason.decode() != reason:
                pipe.zrem(k.dead_reason_index(old_reason.decode()), order_key)
            if old_status is not None and old_status.decode() != DeadStatus.DEAD:
                pipe.zrem(k.dead_status_index(old_status.decode()), order_key)
            fields: Fields = {
                "reason": str(reason),
                "status": str(DeadStatus.DEAD),
                "error": error,
                "last_dead_at": now,
                "status_since": now,
                "email_hashes": " ".join(sorted(hashes)),
            }
            if old_reason is None:
                fields.update(first_dead_at=now, replay_count=0)
            for name, value in (("raw", raw), ("payload", payload), ("source", source)):
                if value is not None:
                    fields[name] = value
            if payload is not None and payload_version is not None:
                fields["payload_version"] = f"{payload_version.ts_ms}:{payload_version.seq}"
            elif payload is not None:
                pipe.hdel(dead_key, "payload_version")
            if attempts:
                last = attempts[-1].status
                fields["http_status"] = "" if last is None else str(last)
            pipe.hset(dead_key, mapping=fields)  # type: ignore[arg-type]  # stubs omit float
            fresh = [b for b in map(attempt_bytes, attempts) if b not in stored]
            if fresh:
                pipe.rpush(attempts_key, *fresh)
                pipe.ltrim(attempts_key, -DEAD_ATTEMPTS_KEPT, -1)
            change = StatusChange(now, DeadStatus.DEAD, reason)
            self._append_history(pipe, order_key, change)
            for index in (
                k.dead_index(),
                k.dead_reason_index(reason),
                k.dead_status_index(DeadStatus.DEAD),
            ):
                pipe.zadd(index, {order_key: now})
            for h in new_hashes:
                pipe.sadd(k.dead_email_index(h), order_key)

        self._transact((dead_key, attempts_key), write)

    def mark_replayed(self, order_key: str, *, now: float, if_dead_at: float | None = None) -> bool:
        """The order is back in the pipeline: status replayed, `replay_count` + 1, history
        appended. Allowed from any status (an operator may replay a resolved order again).
        False when there is no such entry.

        With `if_dead_at` (compare-and-set, used by `dlq replay`): only when the entry is still
        dead with exactly that `last_dead_at`, so a worker that resolved the order or dead-lettered
        it again in the meantime is never overwritten."""
        if if_dead_at is None:
            return self._set_status(
                order_key, DeadStatus.REPLAYED, now=now, allowed=set(DeadStatus)
            )
        return self._set_status(
            order_key,
            DeadStatus.REPLAYED,
            now=now,
            allowed={DeadStatus.DEAD},
            if_dead_at=if_dead_at,
        )

    def mark_resolved(self, order_key: str, *, now: float) -> bool:
        """Jetti accepted the order (or an engineer closed it): status resolved, history
        appended. False when there is no such entry or it is resolved already."""
        allowed = {DeadStatus.DEAD, DeadStatus.REPLAYED}
        return self._set_status(order_key, DeadStatus.RESOLVED, now=now, allowed=allowed)

    def _set_status(
        self,
        order_key: str,
        status: DeadStatus,
        *,
        now: float,
        allowed: set[DeadStatus],
        if_dead_at: float | None = None,
    ) -> bool:
        k = self._keys
        dead_key = k.dead(order_key)

        def write(pipe: Pipeline[bytes]) -> bool:
            old, last_dead_at = _now_mode(pipe).hmget(dead_key, ["status", "last_dead_at"])
            if old is None or last_dead_at is None or DeadStatus(old.decode()) not in allowed:
                return False
            if if_dead_at is not None and float(last_dead_at) != if_dead_at:
                return False
            pipe.multi()
            pipe.zrem(k.dead_status_index(old.decode()), order_key)
            # Every index is scored by last_dead_at, so a time window means the same in each.
            pipe.zadd(k.dead_status_index(status), {order_key: float(last_dead_at)})
            pipe.hset(dead_key, mapping={"status": str(status), "status_since": now})
            if status is DeadStatus.REPLAYED:
                pipe.hincrby(dead_key, "replay_count", 1)
            self._append_history(pipe, order_key, StatusChange(now, status))
            return True

        return self._transact((dead_key,), write)

    def purge(self, order_keys: Iterable[str]) -> builtins.list[DeadEntry]:
        """Delete these entries with their attempts, history and index memberships. Returns the
        entries as they were just before deletion (missing keys are skipped), for export."""
        k = self._keys
        purged: list[DeadEntry] = []
        for order_key in order_keys:
            watched = (k.dead(order_key), k.dead_attempts(order_key), k.dead_history(order_key))

            def delete(
                pipe: Pipeline[bytes], key: str = order_key, watched: tuple[str, ...] = watched
            ) -> DeadEntry | None:
                entry = self._read(_now_mode(pipe), key)
                if entry is None:
                    return None
                hashes = _hashes(_now_mode(pipe), watched[0])
                pipe.multi()
                pipe.delete(*watched)
                for index in (
                    k.dead_index(),
                    k.dead_reason_index(entry.reason),
                    k.dead_status_index(entry.status),
                ):
                    pipe.zrem(index, key)
                for h in hashes:
                    pipe.srem(k.dead_email_index(h), key)
                return entry

            entry = self._transact(watched, delete)
            if entry is not None:
                purged.append(entry)
        return purged

    def erase_personal_data(self, email: str, *, now: float) -> int:
        """Privacy request: in every entry whose raw order or payload carried `email`, replace
        all names, emails, phones and addresses (this customer's and any other) in the raw order,
        the payload, the error text and attempt excerpts with "[erased]". Returns the number of
        entries rewritten; an unknown email returns 0. The entries stay, with `erased_at` set."""
        k = self._keys
        index_key = k.dead_email_index(email_hash(email))
        erased = 0
        for member in sorted(self._client.smembers(index_key)):
            order_key = member.decode()
            watched = (k.dead(order_key), k.dead_attempts(order_key))

            def rewrite(
                pipe: Pipeline[bytes], key: str = order_key, watched: tuple[str, ...] = watched
            ) -> bool:
                entry = self._read(_now_mode(pipe), key)
                if entry is None:
                    return False
                hashes = _hashes(_now_mode(pipe), watched[0])
                pipe.multi()
                fields: Fields = {
                    "error": mask_text(entry.error, ERASED) or "",
                    "email_hashes": "",
                    "erased_at": now,
                }
                for name, value in (("raw", entry.raw), ("payload", entry.payload)):
                    scrubbed = scrub_bytes(value, ERASED)
                    if scrubbed is not None:
                        fields[name] = scrubbed
                pipe.hset(watched[0], mapping=fields)  # type: ignore[arg-type]  # stubs omit float
                if entry.attempts:
                    pipe.delete(watched[1])
                    pipe.rpush(
                        watched[1], *(attempt_bytes(erase_attempt(a)) for a in entry.attempts)
                    )
                for h in hashes:
                    pipe.srem(k.dead_email_index(h), key)
                return True

            if self._transact(watched, rewrite):
                erased += 1
        self._client.delete(index_key)
        return erased
