"""The order ledger in Redis: the durable unit of the pipeline (DESIGN.md principles 1-3).

One hash per order (`Keys.order`) holds the latest raw order, its version, state, what was last
sent, the attempt budget and the delivery markers; an events list is the order's timeline and an
attempts list its submission history. Sorted sets index orders by state (score = time entered),
by enqueue time (unsettled orders only), by retry due time, by settle time (bodies still to
shed) and by tombstone expiry, so the sweeper, listings and metrics never scan keys.

Every mutating operation is one Lua script (worker/store/lua/*.lua, each prefixed with prelude.lua),
so a crash or a concurrent writer can never leave the hash and the indexes out of step.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
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
from worker.core.states import DeadReason, OrderState

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
    "version_ts_ms",
]


# Orders per record_batch script call: Redis runs one call without serving anyone else, so a
# slice is kept to a few milliseconds of work.
RECORD_SLICE = 100

_LUA_DIR = Path(__file__).parent / "lua"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@cache
def _source(name: str) -> str:
    prelude = (_LUA_DIR / "prelude.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (_LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


def version_ts_ms(updated_at: datetime | None) -> int:
    """The timestamp half of a version: epoch ms of a timezone-aware `updated_at`, else 0.

    A naive datetime counts as absent: its instant is unknown, so it cannot order versions.
    """
    if updated_at is None or updated_at.tzinfo is None or updated_at.utcoffset() is None:
        return 0
    # Integer arithmetic: a float timestamp can be off by a millisecond and flip an order.
    return (updated_at - _EPOCH) // timedelta(milliseconds=1)


def _ts_arg(updated_at: datetime | None) -> str:
    """`version_ts_ms` as the record scripts take it: '' for a copy without a usable timestamp."""
    if updated_at is None or updated_at.tzinfo is None or updated_at.utcoffset() is None:
        return ""
    return str(version_ts_ms(updated_at))


def raw_hash(raw: bytes) -> str:
    """Hex sha256 of a stored raw order; equal hashes mean a byte-identical re-send."""
    return hashlib.sha256(raw).hexdigest()


class Ledger:
    """The ledger of one deployment (one `Keys` prefix) on a sync `redis.Redis`.

    The client must use decode_responses=False. Times (`now`, `due_at`, ...) are epoch seconds
    passed in by the caller. Redis errors propagate as `redis.RedisError`: the ledger is the
    source of truth, so a caller that cannot reach it must not pretend it wrote anything.
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
        self._states = [str(s) for s in OrderState]
        self._script_keys = [
            keys.retry_schedule(),
            keys.enqueued_index(),
            keys.sequence(),
            keys.shed_queue(),
            keys.tombstone_index(),
            keys.counters(),
            *(keys.state_index(s) for s in self._states),
        ]
        self._templates: list[str] = []
        for build in (keys.order, keys.order_events, keys.order_attempts):
            self._templates += keys.parts(build)
        self._scripts: dict[str, Any] = {}

    # --- plumbing -------------------------------------------------------------------------
    def _script(self, name: str) -> Any:
        if name not in self._scripts:
            self._scripts[name] = self._client.register_script(_source(name))
        return self._scripts[name]

    def _argv(self, now: float, order_key: str, *extra: str | int | float | bytes) -> list[Any]:
        return [" ".join(self._states), *self._templates, repr(float(now)), order_key, *extra]

    def _run(
        self,
        name: str,
        now: float,
        order_key: str = "",
        *extra: str | int | float | bytes,
        client: Any = None,
    ) -> Any:
        return self._script(name)(
            keys=self._script_keys, args=self._argv(now, order_key, *extra), client=client
        )

    def _evalsha_all(self, script: Any, calls: Sequence[list[Any]]) -> list[Any]:
        """Run `script` once per ARGV list in `calls`, in one pipelined round trip.

        EVALSHA goes straight into the pipeline (a Script object there costs an extra SCRIPT
        EXISTS round trip per execute); after a Redis restart flushed the script cache, the
        calls that failed with NOSCRIPT ran nothing and are run again, in order.
        """
        pipe = self._client.pipeline(transaction=False)
        for args in calls:
            pipe.evalsha(script.sha, len(self._script_keys), *self._script_keys, *args)
        replies = pipe.execute(raise_on_error=False)
        out: list[Any] = []
        for args, reply in zip(calls, replies, strict=True):
            if isinstance(reply, redis.exceptions.NoScriptError):
                reply = script(keys=self._script_keys, args=args)
            elif isinstance(reply, Exception):
                raise reply
            out.append(reply)
        return out

    @staticmethod
    def _attempt_json(attempt: Attempt | None) -> str:
        return "" if attempt is None else json.dumps(attempt.to_dict(), separators=(",", ":"))

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
        script = self._script("record_batch")
        calls: list[list[Any]] = []
        for start in range(0, len(items), RECORD_SLICE):
            flat: list[Any] = []
            for item in items[start : start + RECORD_SLICE]:
                flat += [
                    item.order_key,
                    item.raw,
                    raw_hash(item.raw),
                    _ts_arg(item.updated_at),
                    item.source or "",
                    "1" if item.cancelled else "0",
                ]
            calls.append(self._argv(now, "", *flat))
        replies = [row for reply in self._evalsha_all(script, calls) for row in reply]
        results = []
        for item, reply in zip(items, replies, strict=True):
            outcome, publish, ts_ms, seq = reply
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
        return _entry(order_key, data) if data else None

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

    # --- worker ---------------------------------------------------------------------------
    def begin_delivery(
        self, order_key: str, *, task_id: str, worker: str, now: float, max_unfinished: int
    ) -> Delivery:
        """Start one delivery of the order, atomically deciding what the worker must do.

        NOTHING_TO_DO: a final state (SUBMITTED, CONFIRMED, CANCELLED, DEAD); every newer version
        has already moved the order back to PENDING. CRASH_LOOP: deliveries started minus
        finished >= `max_unfinished`; nothing changes, the caller dead-letters it. NOT_DUE:
        RETRY_WAIT before its due time. PROCEED: state SUBMITTING, deliveries_started += 1,
        removed from the retry schedule. UNKNOWN: no entry. `entry` is the state after the call.
        The worker writes a finish marker only for a delivery that ended with an outcome, so
        CRASH_LOOP means `max_unfinished` deliveries ended without one (a dead process, an
        exception, the soft time limit) since the budget was last reset.
        """
        reply = self._run("begin_delivery", now, order_key, task_id, worker, max_unfinished)
        action = DeliveryAction(reply[0].decode())
        if action is DeliveryAction.UNKNOWN:
            return Delivery(action, None)
        flat = reply[1]
        return Delivery(action, _entry(order_key, dict(zip(flat[::2], flat[1::2], strict=True))))

    def finish_delivery(self, order_key: str, *, now: float) -> None:
        """Write the finish marker of a delivery that began (never above the started count)."""
        self._run("finish_delivery", now, order_key)

    # --- worker, one message at a time (two round trips per batch) ----------------------------
    def begin_batch(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        lock_head_tail: tuple[str, str],
        lock_ttl_s: float,
        lock_busy_due_at: float,
        task_id: str,
        worker: str,
        now: float,
        max_unfinished: int,
        fill: int = 0,
        fill_token: str = "",
    ) -> list[Claim]:
        """Lock and begin the delivery of every `(order_key, lock token)` in ONE script.

        Per order, atomically and in order: `SET NX PX` the per-order lock (`lock_head_tail`:
        the lock key around the order key) with the token; a lock held elsewhere reschedules the
        order to `lock_busy_due_at` without spending an attempt (see `reschedule`) and gives
        `locked=True`. Otherwise `begin_delivery` runs; the caller keeps the lock only for
        PROCEED and CRASH_LOOP (`Claim.token`) and must hand it back through `finish_batch`.
        For NOTHING_TO_DO and NOT_DUE the entry carries only the state. When several orders
        are named, a suspect below the crash-loop bound is not claimed: `isolate=True`, for the
        caller to publish it in a message of its own.

        `fill` > 0 also takes on up to that many of the oldest PENDING orders not named here
        (none when a named order is a suspect, i.e. a delivery of it ended without an outcome
        since its budget was reset, and never a suspect itself)
        (their messages are still queued; they will find the orders done or in flight), with
        tokens `fill_token:1`, `fill_token:2`, ...: only those begun (PROCEED or CRASH_LOOP)
        are returned, after the named ones. One whose lock is held elsewhere is left untouched.
        """
        if not claims:
            return []
        head, tail = lock_head_tail
        flat: list[str] = []
        for key, token in claims:
            flat += [key, token]
        reply = self._run(
            "begin_batch",
            now,
            "",
            task_id,
            worker,
            max_unfinished,
            head,
            tail,
            max(1, int(lock_ttl_s * 1000)),
            repr(float(lock_busy_due_at)),
            max(0, fill),
            fill_token,
            *flat,
        )
        named = [(key, token, row) for (key, token), row in zip(claims, reply, strict=False)]
        extra = [(row[2].decode(), row[3].decode(), row) for row in reply[len(claims) :]]
        out: list[Claim] = []
        for key, token, row in [*named, *extra]:
            action = row[0].decode()
            if action == "locked":
                out.append(Claim(key, None, None, locked=True))
                continue
            if action == "isolate":
                out.append(Claim(key, None, None, isolate=True))
                continue
            act = DeliveryAction(action)
            if act is DeliveryAction.UNKNOWN:
                out.append(Claim(key, None, Delivery(act, None)))
                continue
            data = row[1]
            entry = _entry(key, dict(zip(data[::2], data[1::2], strict=True)))
            held = act in (DeliveryAction.PROCEED, DeliveryAction.CRASH_LOOP)
            out.append(Claim(key, token if held else None, Delivery(act, entry)))
        return out

    def finish_batch(
        self,
        items: Sequence[Finish],
        *,
        lock_head_tail: tuple[str, str],
        now: float,
        also: Callable[[Any], None] | None = None,
    ) -> list[int]:
        """Write every order's outcome, its finish marker and its lock release in ONE script.

        Per item, in order: the outcome (`Submitted` = `mark_submitted`, `Retry` =
        `schedule_retry`, `Dead` = `mark_dead`, None = nothing), the finish marker when
        `finish` is set, then the lock released if `token` still holds it. `also(pipeline)` may
        queue more commands (counters) into the same round trip. Returns one integer per item:
        the outcome's answer as the single-order method gives it (`Submitted`: 1 = a newer
        version is waiting and must be re-published, 0 = SUBMITTED, -1 = unknown key; `Dead`:
        1 = DEAD, 2 = a newer version is PENDING instead and must be re-published, 0 = unknown
        key), 0 for None.
        """
        if not items and also is None:
            return []
        ops: list[dict[str, str]] = []
        for item in items:
            op: dict[str, str] = {
                "k": item.order_key,
                "t": item.token or "",
                "fin": "1" if item.finish else "0",
                "op": "",
            }
            outcome = item.outcome
            if isinstance(outcome, Submitted):
                op.update(
                    op="submitted",
                    ts=str(outcome.version.ts_ms),
                    seq=str(outcome.version.seq),
                    hash=outcome.payload_hash,
                    lines=json.dumps(list(outcome.line_ids)),
                    sale="" if outcome.sale_id is None else str(outcome.sale_id),
                    attempt=self._attempt_json(outcome.attempt),
                )
            elif isinstance(outcome, Retry):
                op.update(
                    op="retry",
                    due=repr(float(outcome.due_at)),
                    spend="1" if outcome.spend_attempt else "0",
                    attempt=self._attempt_json(outcome.attempt),
                )
            elif isinstance(outcome, Dead):
                op.update(
                    op="dead",
                    reason=str(outcome.reason),
                    attempt=self._attempt_json(outcome.attempt),
                    ts="" if outcome.version is None else str(outcome.version.ts_ms),
                    seq="" if outcome.version is None else str(outcome.version.seq),
                )
            ops.append(op)
        head, tail = lock_head_tail
        script = self._script("finish_batch")
        args = self._argv(now, "", head, tail, orjson.dumps(ops))
        pipe = self._client.pipeline(transaction=False)
        if items:
            # EVALSHA straight into the pipeline: a Script object there costs an extra
            # SCRIPT EXISTS round trip on every execute.
            pipe.evalsha(script.sha, len(self._script_keys), *self._script_keys, *args)
        if also is not None:
            also(pipe)
        replies = pipe.execute(raise_on_error=False)
        if not items:
            return []
        first = replies[0]
        if isinstance(first, redis.exceptions.NoScriptError):
            # Redis restarted or flushed its scripts: nothing of this call ran; run it again.
            first = script(keys=self._script_keys, args=args)
        elif isinstance(first, Exception):
            raise first
        for reply in replies[1:]:
            if isinstance(reply, Exception):
                raise reply
        return [int(r) for r in first]

    def mark_submitted(
        self,
        order_key: str,
        *,
        version: Version,
        payload_hash: str,
        line_ids: Sequence[str],
        sale_id: int | None,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        """Record what Jetti accepted (`version` is the one the worker read and sent).

        Returns True, with the order PENDING again, when a newer version arrived meanwhile: the
        caller must re-publish it. Otherwise the order is SUBMITTED and False is returned (also
        when the key is unknown).
        """
        reply = self._run(
            "mark_submitted",
            now,
            order_key,
            version.ts_ms,
            version.seq,
            payload_hash,
            json.dumps(list(line_ids)),
            "" if sale_id is None else sale_id,
            self._attempt_json(attempt),
        )
        return int(reply) == 1

    def schedule_retry(
        self,
        order_key: str,
        *,
        due_at: float,
        spend_attempt: bool,
        now: float,
        attempt: Attempt | None = None,
    ) -> None:
        """RETRY_WAIT until `due_at` (epoch s), in the retry schedule, in one script.

        `spend_attempt` counts the attempt against the budget (False for a 429 or a taken
        lock). `first_failure_at` is set on the first real failure (spent or with an attempt).
        """
        self._run(
            "schedule_retry",
            now,
            order_key,
            repr(float(due_at)),
            "1" if spend_attempt else "0",
            self._attempt_json(attempt),
        )

    def mark_dead(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        now: float,
        attempt: Attempt | None = None,
        version: Version | None = None,
    ) -> bool:
        """DEAD with `reason`, out of the retry schedule. The dead-letter entry is the caller's.

        `version` is the version the caller gave up on. Returns True, with the order PENDING
        again on a fresh budget instead of DEAD, when a newer version is stored: the caller must
        re-publish it and resolve its dead letter. False otherwise (DEAD, or an unknown key)."""
        reply = self._run(
            "mark_dead",
            now,
            order_key,
            str(reason),
            self._attempt_json(attempt),
            "" if version is None else version.ts_ms,
            "" if version is None else version.seq,
        )
        return int(reply) == 2

    def reschedule(self, order_key: str, *, due_at: float, now: float | None = None) -> bool:
        """Bring back an order whose lock another worker holds, without spending an attempt.

        PENDING becomes RETRY_WAIT until `due_at`; RETRY_WAIT keeps the earlier due time;
        SUBMITTING and final states are left alone (the lock holder re-publishes a newer
        version itself, the sweeper covers a holder that died). True when the order is
        scheduled. `now` defaults to the wall clock (it only stamps the event and index).
        """
        at = time.time() if now is None else now
        return int(self._run("reschedule", at, order_key, repr(float(due_at)))) == 1

    def rearm(self, order_key: str, *, now: float) -> bool:
        """Replay: PENDING with a fresh attempt budget and crash-loop count; the version, raw
        and history are kept. False when the key is unknown or only a tombstone remains."""
        return int(self._run("rearm", now, order_key)) == 1

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
        reply = self._run(
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
        return [k.decode() for k in self._run("pop_due", now, "", limit)]

    def mark_republished(self, order_keys: Sequence[str], *, now: float) -> None:
        """The sweeper re-published these: refresh state_since of those still PENDING or
        SUBMITTING, so they are not re-published again before the next threshold."""
        pipe = self._client.pipeline(transaction=False)
        for key in order_keys:
            self._run("touch", now, key, client=pipe)
        pipe.execute()

    def shed_settled(self, *, now: float, limit: int) -> int:
        """Shed up to `limit` orders settled before `now - body_ttl_s` to their tombstone: the
        raw body, the transient fields and the events and attempts lists go; the version, hashes,
        state, sale id, line ids and cancellation stay until `tombstone_ttl_s` later. The same
        pass purges up to `limit` tombstones whose time is up. Returns the number shed."""
        shed = self._run(
            "shed", now, "", repr(now - self.body_ttl_s), repr(self.tombstone_ttl_s), limit
        )
        self.purge_tombstones(now=now, limit=limit)
        return int(shed)

    def purge_tombstones(self, *, now: float, limit: int) -> int:
        """Delete up to `limit` tombstones whose time is up (hash, events, attempts, indexes)."""
        return int(self._run("purge_tombstones", now, "", limit))

    def lower_version(
        self, order_key: str, *, above_ts_ms: int, to_ts_ms: int, now: float
    ) -> int | None:
        """Lower a stored version timestamp above `above_ts_ms` to `to_ts_ms` (a far-future
        `updated_at` froze the order: every real update was stale), with a `version_lowered`
        event. Returns the old timestamp (ms) when lowered, else None (`migrate-keys`)."""
        reply = self._run("lower_version", now, order_key, above_ts_ms, to_ts_ms)
        return int(reply) if reply else None

    def purge_dead(self, order_key: str, *, now: float) -> bool:
        """Delete a DEAD order's entry (hash, events, attempts, indexes) once its dead letter was
        purged: DEAD entries are never shed, so this is what bounds them. True when deleted;
        False when the key is unknown or no longer DEAD (replayed, or a newer version came)."""
        return int(self._run("purge_dead", now, order_key)) == 1


def _text(data: dict[bytes, bytes], field: str) -> str | None:
    value = data.get(field.encode())
    return None if value is None or value == b"" else value.decode()


def _float(data: dict[bytes, bytes], field: str) -> float | None:
    value = _text(data, field)
    return None if value is None else float(value)


def _int(data: dict[bytes, bytes], field: str) -> int:
    value = _text(data, field)
    return 0 if value is None else int(value)


def _entry(order_key: str, data: dict[bytes, bytes]) -> OrderEntry:
    sent_ts = _text(data, "sent_v_ts")
    sale_id = _text(data, "sale_id")
    reason = _text(data, "dead_reason")
    line_ids = _text(data, "line_ids")
    return OrderEntry(
        order_key=order_key,
        raw=data.get(b"raw"),
        raw_hash=_text(data, "raw_hash") or "",
        version=Version(_int(data, "v_ts"), _int(data, "v_seq")),
        state=OrderState(_text(data, "state") or ""),
        state_since=_float(data, "state_since") or 0.0,
        first_seen_at=_float(data, "first_seen_at") or 0.0,
        enqueued_at=_float(data, "enqueued_at") or 0.0,
        submitted_at=_float(data, "submitted_at"),
        source=_text(data, "source"),
        payload_hash=_text(data, "payload_hash"),
        sent_version=None if sent_ts is None else Version(int(sent_ts), _int(data, "sent_v_seq")),
        line_ids=tuple(json.loads(line_ids)) if line_ids else (),
        sale_id=None if sale_id is None else int(sale_id),
        attempts=_int(data, "attempts"),
        first_failure_at=_float(data, "first_failure_at"),
        next_attempt_at=_float(data, "next_attempt_at"),
        deliveries_started=_int(data, "d_started"),
        deliveries_finished=_int(data, "d_finished"),
        dead_reason=None if reason is None else DeadReason(reason),
        last_error=_text(data, "last_error"),
        stale_arrivals=_int(data, "stale"),
        replayed=_text(data, "replayed") == "1",
        resend_payload=data.get(b"resend_payload"),
    )
