"""The intake stream (`Keys.intake_stream()`) and its rejects stream: their fields and commands.

Upstream appends one raw order per entry (`XADD <prefix>:intake * order <json> [source S]
[id_prefix P]`); the intake's processes read it as consumers of one group (INTAKE_GROUP), and
write what they refuse to `Keys.intake_rejects()`, capped by MAXLEN. This module is the only
Python spelling of either stream's fields and the only code sending their commands.

Acknowledgement is the caller's: an entry stays pending in the group until `settle` acks it,
after the ledger holds it. `trim` removes only entries every group of the stream has acked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.core.keys import INTAKE_GROUP, Keys
from worker.core.stream_ids import GroupCursor, stream_id_seconds, trim_floor
from worker.store.scripts import Script

# Fields of an intake entry: the raw order JSON, and optionally the source and the id prefix
# that replace the intake's own for this order.
ORDER_FIELD = b"order"
SOURCE_FIELD = b"source"
ID_PREFIX_FIELD = b"id_prefix"
# Fields of a rejects entry: the intake entry's id, why, when (epoch s) and the order key when
# the order had a readable id; then the entry's own `order`, `source` and `id_prefix` as sent.
REJECT_ENTRY_FIELD = b"entry_id"
REJECT_REASON_FIELD = b"reason"
REJECT_AT_FIELD = b"rejected_at"
REJECT_ORDER_KEY_FIELD = b"order_key"
# On Redis 6.2 (no `lag` in XINFO GROUPS) the unread entries are counted up to this many.
LAG_COUNT_CAP = 100_000

# The `type: ignore[no-untyped-call]` below: types-redis leaves XCLAIM, XACK, XPENDING and
# XINFO GROUPS without annotations.


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One intake entry: its id and its fields as sent (bytes both sides)."""

    entry_id: str
    fields: Mapping[bytes, bytes]


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry delivered to `consumer` and not acknowledged: idle for `idle_ms`, delivered
    `deliveries` times (each read or claim counts one)."""

    entry_id: str
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """An intake entry refused for `reason` (every problem, with its field path)."""

    entry: StreamEntry
    reason: str
    order_key: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeStatus:
    """What the metrics and `jetti-relay health` show of the intake (times are epoch s).

    `lag` is the entries the group has not read yet (all of them when there is no group);
    `oldest_unread_at` / `oldest_pending_at` are when the oldest unread / delivered but
    unacknowledged entry was added, None when there is none."""

    length: int
    has_group: bool
    lag: int
    pending: int
    oldest_pending_at: float | None
    oldest_unread_at: float | None
    rejects: int
    newest_reject_at: float | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class IntakeStream:
    """The intake stream of one deployment, read in consumer group `group`."""

    def __init__(
        self, client: redis.Redis[bytes], keys: Keys, *, group: str = INTAKE_GROUP
    ) -> None:
        self._client = client
        self._stream = keys.intake_stream()
        self._rejects = keys.intake_rejects()
        self._group = group
        self._status_script = Script(client, "intake_status")  # lua/intake_status.lua
        self._forget_script = Script(client, "forget_consumer")  # lua/forget_consumer.lua

    def ensure_group(self) -> bool:
        """Create the group (and the stream) so it reads from the first entry ever added;
        True when this call created it, False when it existed."""
        try:
            self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            # BUSYGROUP is Redis's error code for "exists"; redis-py has no class for it.
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise
        return True

    def append(self, raws: Sequence[bytes], *, source: str | None = None) -> list[str]:
        """XADD each raw order as one entry (with `source` when given), in one pipelined round
        trip, as an upstream does; the entry ids. What the relay's own tools (the demo, the
        chaos suite) feed the stream with."""
        extra: dict[bytes, bytes | str] = {} if source is None else {SOURCE_FIELD: source}
        with self._client.pipeline(transaction=False) as pipe:
            for raw in raws:
                pipe.xadd(self._stream, {ORDER_FIELD: raw, **extra})
            return [_text(entry_id) for entry_id in pipe.execute()]

    def read_new(self, consumer: str, *, count: int, block_ms: int | None) -> list[StreamEntry]:
        """Up to `count` entries never delivered to the group, now delivered to `consumer`
        (pending until acked); waits up to `block_ms` when there is none (None: not at all)."""
        reply = self._client.xreadgroup(
            self._group, consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        return [
            StreamEntry(_text(entry_id), fields)
            for _stream, rows in reply or []
            for entry_id, fields in rows
            if fields is not None
        ]

    def idle_pending(self, *, min_idle_ms: int, count: int) -> list[PendingEntry]:
        """Up to `count` pending entries of any consumer idle for at least `min_idle_ms`,
        oldest id first, with their delivery counts."""
        rows = self._client.xpending_range(
            self._stream, self._group, min="-", max="+", count=count, idle=min_idle_ms
        )
        return [
            PendingEntry(
                _text(row["message_id"]),
                _text(row["consumer"]),
                int(row["time_since_delivered"]),
                int(row["times_delivered"]),
            )
            for row in rows
        ]

    def claim(
        self, consumer: str, entry_ids: Sequence[str], *, min_idle_ms: int
    ) -> list[StreamEntry]:
        """Take `entry_ids` over for `consumer` (each counts one more delivery) when still idle
        for `min_idle_ms` (another consumer claiming first wins); the entries taken, in order.

        An entry deleted from the stream while pending (XDEL by someone else) cannot be
        processed: it is acknowledged here and left out (Redis 7 drops it itself, 6.2 keeps
        it pending for ever)."""
        if not entry_ids:
            return []
        reply = self._client.xclaim(  # type: ignore[no-untyped-call]
            self._stream, self._group, consumer, min_idle_ms, list(entry_ids)
        )
        entries = [StreamEntry(_text(i), f) for i, f in reply if i is not None and f is not None]
        if len(entries) < len(reply):  # Redis 6.2 answers nil for a deleted entry
            taken = {e.entry_id for e in entries}
            self._ack_vanished([i for i in entry_ids if i not in taken])
        return entries

    def _ack_vanished(self, entry_ids: list[str]) -> None:
        """Acknowledge those of `entry_ids` no longer in the stream: nobody can handle them."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xrange(self._stream, min=entry_id, max=entry_id, count=1)
        gone = [i for i, rows in zip(entry_ids, pipe.execute(), strict=True) if not rows]
        if gone:
            self._client.xack(self._stream, self._group, *gone)  # type: ignore[no-untyped-call]

    def touch(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Reset the idle time of `entry_ids` and keep them `consumer`'s, without counting a
        delivery: a consumer retrying a batch after an outage keeps it from being reclaimed."""
        if entry_ids:
            self._client.xclaim(  # type: ignore[no-untyped-call]
                self._stream, self._group, consumer, 0, list(entry_ids), justid=True
            )

    def settle(
        self,
        entry_ids: Sequence[str],
        rejects: Sequence[RejectedEntry],
        *,
        rejects_max: int,
        now: float,
    ) -> None:
        """In one transaction: append `rejects` to the rejects stream (trimmed to about
        `rejects_max` entries), then acknowledge `entry_ids` (rejected ones included).
        Call it only once the ledger holds every accepted entry among them."""
        pipe = self._client.pipeline(transaction=True)
        for reject in rejects:
            fields: dict[bytes, bytes | str] = {
                REJECT_ENTRY_FIELD: reject.entry.entry_id,
                REJECT_REASON_FIELD: reject.reason,
                REJECT_AT_FIELD: repr(now),
            }
            if reject.order_key is not None:
                fields[REJECT_ORDER_KEY_FIELD] = reject.order_key
            for name in (ORDER_FIELD, SOURCE_FIELD, ID_PREFIX_FIELD):
                if name in reject.entry.fields:
                    fields[name] = reject.entry.fields[name]
            pipe.xadd(self._rejects, fields, maxlen=rejects_max, approximate=True)
        if entry_ids:
            pipe.xack(self._stream, self._group, *entry_ids)
        pipe.execute()

    def forget_idle_consumers(self, *, min_idle_ms: int, keep: str) -> int:
        """Remove the group's consumers idle for at least `min_idle_ms` that hold no pending
        entry (processes that stopped: each joins under a new HOST-PID name), never `keep`;
        the number removed. A live consumer reads every second or so, and one removed while
        idle is added again by its next read."""
        if not self._client.exists(self._stream):
            return 0
        consumers = self._client.xinfo_consumers(self._stream, self._group)  # type: ignore[no-untyped-call]
        removed = 0
        for consumer in consumers:
            name = _text(consumer["name"])
            if name == keep or int(consumer["pending"]) or int(consumer["idle"]) < min_idle_ms:
                continue
            removed += int(self._forget_script([self._stream], [self._group, name]))
        return removed

    def cursors(self) -> list[GroupCursor]:
        """Where every consumer group of the stream is (ours and any other), none without the
        stream."""
        if not self._client.exists(self._stream):
            return []
        groups: list[dict[str, Any]] = self._client.xinfo_groups(self._stream)  # type: ignore[no-untyped-call]
        pipe = self._client.pipeline(transaction=False)
        for group in groups:
            pipe.xpending(self._stream, group["name"])
        return [
            GroupCursor(
                _text(group["last-delivered-id"]),
                None if summary["min"] is None else _text(summary["min"]),
            )
            for group, summary in zip(groups, pipe.execute(), strict=True)
        ]

    def trim(self) -> str | None:
        """Remove the entries every group of the stream has read and acknowledged (XTRIM
        MINID ~, so Redis may keep a few more); returns the floor used, None when there is no
        group to go by (then nothing is removed)."""
        floor = trim_floor(self.cursors())
        if floor is not None:
            # LIMIT 0: with `~` Redis otherwise stops after 100 nodes (10000 entries) a call,
            # slower than the intake takes entries in; whole nodes are cheap to free.
            self._client.xtrim(self._stream, minid=floor, approximate=True, limit=0)
        return floor

    def status(self) -> IntakeStatus:
        """The stream's length, the group's lag and pending entries, the rejects (a few round
        trips, no entry body read)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.exists(self._stream)
        pipe.xlen(self._stream)
        pipe.xlen(self._rejects)
        exists, length, rejects = (int(n) for n in pipe.execute())
        group = self._own_group() if exists else None
        lag: int | None = length
        start = "-"
        pending, oldest_pending = 0, None
        if group is not None:
            lag = None if group.get("lag") is None else int(group["lag"])
            start = "(" + _text(group["last-delivered-id"])
            summary = self._client.xpending(self._stream, self._group)  # type: ignore[no-untyped-call]
            pending = int(summary["pending"])
            if summary["min"] is not None:
                oldest_pending = stream_id_seconds(summary["min"])
        first_unread, newest_reject, counted = self._status_script(
            [self._stream, self._rejects], [start, LAG_COUNT_CAP if lag is None else 0]
        )
        return IntakeStatus(
            length=length,
            has_group=group is not None,
            lag=int(counted) if lag is None else lag,
            pending=pending,
            oldest_pending_at=oldest_pending,
            oldest_unread_at=None if first_unread is None else stream_id_seconds(first_unread),
            rejects=rejects,
            newest_reject_at=None if newest_reject is None else stream_id_seconds(newest_reject),
        )

    def _own_group(self) -> dict[str, Any] | None:
        for group in self._client.xinfo_groups(self._stream):  # type: ignore[no-untyped-call]
            if _text(group["name"]) == self._group:
                return dict(group)
        return None
