"""Moving a Redis written before issue 12 to the encoded key names (`jetti-relay migrate-keys`).

Per-order key names used to hold the raw order key (`worker.core.keys.LegacyKeys`); they now hold
`encode_order_key(k)` (reliability #1). Index members were and stay raw order keys, so both
names of every per-order structure follow from the members of the indexes:

- ledger entries (in flight, settled, dead, tombstones): the state indexes, where every entry is
  exactly once; with each entry its events and attempts lists and its lock;
- dead letters and their attempts and history lists: the dead-letter index and the reason and
  status indexes (an order id such as `idx:all` may have taken one of them over: all are walked,
  and an index name found holding a hash is that order's dead letter).

Each name moves in one script (worker/store/lua/migrate_rename.lua) that checks the type first,
so a run is idempotent: a name already moved is absent at its old name. It also repairs what the
collisions left behind:

- victims: an order whose events or attempts name held another order's hash (`X` next to
  `X:events`) failed half-way in every script that touched it. A victim left PENDING or
  SUBMITTING is touched (`Ledger.mark_republished`) and re-published at once through the
  `Publisher`, as the sweeper would after its stuck delay;
- dead letters written after an index was taken over are missing from that index: every dead
  letter walked is added back to the index, reason and status indexes it is missing from;
- frozen versions: a stored version timestamp further ahead than the allowed skew is lowered to
  just below the newest plausible copy its timeline received (else to when the order was first
  seen; `Ledger.lower_version`, with an event), so the real updates that were counted stale win
  when upstream sends them again, and older copies stay stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import orjson
import redis

from worker.core.keys import Keys, LegacyKeys
from worker.core.ports import KeyPublisher
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.ledger import Ledger
from worker.store.ledger_schema import OrderField
from worker.store.migrate_report import MigrationReport
from worker.store.scripts import Script

# Index members handled per script call and pipelined round trip.
MIGRATE_BATCH = 500
# List items pushed per RPUSH when two lists are merged (Lua's unpack has a stack limit).
_MERGE_SLICE = 1000

_LEDGER_TYPES = ("hash", "list", "list", "string")
_DEAD_TYPES = ("hash", "list", "list")
_SUFFIXES = (":events", ":attempts")
_WAITING = (OrderState.PENDING.encode(), OrderState.SUBMITTING.encode())


def _type(conn: Any, name: str) -> Any:
    # TYPE, on a client (its answer) or a pipeline (queued); redis-py's stubs leave it untyped.
    return conn.type(name)


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class KeyMigration:
    """One run of the migration on one deployment (one key prefix). See the module docstring.

    `now` is epoch s; versions above `now + max_future_skew_s` are lowered to `now`. With
    `dry_run` nothing is written and nothing published. `publisher` may be None only in a dry
    run. `on_progress(n)` is called after each batch with the index members it handled.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        publisher: KeyPublisher | None,
        now: float,
        max_future_skew_s: float,
        dry_run: bool,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        if publisher is None and not dry_run:
            raise ValueError("a publisher is needed unless dry_run")
        self._client = client
        self._keys = keys
        self._legacy = LegacyKeys(keys.prefix)
        self._ledger = Ledger(client, keys)
        self._publisher = publisher
        self._now = now
        self._bound_ms = int((now + max_future_skew_s) * 1000)
        self._now_ms = int(now * 1000)
        self._dry = dry_run
        self._progress = on_progress or (lambda _n: None)
        self._rename = Script(client, "migrate_rename")
        self.report = MigrationReport(dry_run=dry_run)
        self._victims: set[str] = set()
        self._foreign: list[tuple[str, str]] = []  # (name, type it should have)

    # --- sizes ------------------------------------------------------------------------------
    def _ledger_indexes(self) -> list[str]:
        return [self._keys.state_index(str(s)) for s in OrderState]

    def _dead_indexes(self) -> list[str]:
        k = self._keys
        return [
            k.dead_index(),
            *(k.dead_reason_index(str(r)) for r in DeadReason),
            *(k.dead_status_index(str(s)) for s in DeadStatus),
        ]

    def total_members(self) -> int:
        """Index members the run will walk (for a progress bar)."""
        pipe = self._client.pipeline(transaction=False)
        names = [*self._ledger_indexes(), *self._dead_indexes()]
        for name in names:
            _type(pipe, name)
        types = pipe.execute()
        for name, kind in zip(names, types, strict=True):
            if kind == b"zset":
                pipe.zcard(name)
        return sum(int(n) for n in pipe.execute())

    # --- run --------------------------------------------------------------------------------
    def run(self) -> MigrationReport:
        """Migrate and repair (see the module docstring); returns the report."""
        for name in self._ledger_indexes():
            if _type(self._client, name) != b"zset":
                continue
            members = (m.decode() for m, _ in self._client.zscan_iter(name, count=MIGRATE_BATCH))
            for batch in _batched(members, MIGRATE_BATCH):
                self._ledger_batch(batch)
                self._progress(len(batch))
        self._dead_letters()
        self._repair_victims()
        self._check_foreign()
        return self.report

    def _move(self, pairs: list[tuple[str, str, str]]) -> list[str]:
        """Run the rename script on (old, new, type) triples; one answer per triple."""
        flat = [name for old, new, _ in pairs for name in (old, new)]
        args = ["1" if self._dry else "0", *(kind for _, _, kind in pairs), _MERGE_SLICE]
        answers = self._rename(flat, args)
        out: list[str] = []
        for (old, new, kind), raw in zip(pairs, answers, strict=True):
            answer = raw.decode()
            if answer == "renamed":
                self.report.renamed.append((old, new))
            elif answer == "merged":
                self.report.merged.append((old, new))
            elif answer == "conflict":
                self.report.conflicts.append(old)
            elif answer == "foreign":
                self.report.foreign.append(old)
                self._foreign.append((old, kind))
            out.append(answer)
        return out

    def _ledger_batch(self, order_keys: list[str]) -> None:
        old, new = self._legacy, self._keys
        pairs = [
            (build_old(k), build_new(k), kind)
            for k in order_keys
            for build_old, build_new, kind in zip(
                (old.order, old.order_events, old.order_attempts, old.lock),
                (new.order, new.order_events, new.order_attempts, new.lock),
                _LEDGER_TYPES,
                strict=True,
            )
        ]
        answers = self._move(pairs)
        self.report.orders += len(order_keys)
        where: list[str] = []
        timelines: list[str] = []
        for i, k in enumerate(order_keys):
            entry, events, attempts, _lock = answers[4 * i : 4 * i + 4]
            if "foreign" in (events, attempts):
                self._victims.add(k)
            if entry in ("renamed", "conflict"):
                # `X:events`'s hash sat where X's events list belongs: X could never write it.
                for suffix in _SUFFIXES:
                    if k.endswith(suffix):
                        self._victims.add(k[: -len(suffix)])
            # In a dry run a hash reported `renamed` is still at its old name.
            where.append(old.order(k) if self._dry and entry == "renamed" else new.order(k))
            timelines.append(
                old.order_events(k) if self._dry and events == "renamed" else new.order_events(k)
            )
        self._lower_versions(order_keys, where, timelines)
        self._mark_cancellations(order_keys, where)

    def _lower_versions(
        self, order_keys: list[str], where: list[str], timelines: list[str]
    ) -> None:
        pipe = self._client.pipeline(transaction=False)
        for name in where:
            pipe.hmget(name, OrderField.V_TS, OrderField.FIRST_SEEN_AT)
        frozen = [
            (k, int(float(reply[0])), reply[1], timeline)
            for k, reply, timeline in zip(
                order_keys, pipe.execute(raise_on_error=False), timelines, strict=True
            )
            if isinstance(reply, list)
            and reply[0] is not None
            and int(float(reply[0])) > self._bound_ms
        ]
        for k, stored_ms, first_seen, timeline in frozen:
            target = self._unfrozen_ts_ms(timeline, first_seen)
            if self._dry:
                self.report.lowered.append((k, stored_ms, target))
                continue
            before = self._ledger.lower_version(
                k, above_ts_ms=self._bound_ms, to_ts_ms=target, now=self._now
            )
            if before is not None:
                self.report.lowered.append((k, before, target))

    def _unfrozen_ts_ms(self, timeline: str, first_seen: bytes | None) -> int:
        """Where a frozen version goes: just below the newest plausible copy the timeline
        received (so that copy, counted stale behind the far-future one and never stored, wins
        when upstream sends it again, and anything older stays stale); with none, the time the
        order was first seen; never above the migration's clock."""
        plausible: list[int] = []
        for raw in self._client.lrange(timeline, 0, -1):
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(event, dict) or event.get("type") != "received":
                continue
            ts = event.get("ts_ms")
            if isinstance(ts, int | float) and 0 < ts <= self._bound_ms:
                plausible.append(int(ts))
        if plausible:
            return min(max(plausible) - 1, self._now_ms)
        if first_seen is not None:
            return min(int(float(first_seen) * 1000), self._now_ms)
        return self._now_ms

    def _mark_cancellations(self, order_keys: list[str], where: list[str]) -> None:
        # Entries recorded before the `cancel` flag existed: a stored raw order with
        # `cancelled_at` makes the order terminal (issue 12 point 3), so a later copy without it
        # is `after_cancel` instead of replacing the cancellation.
        pipe = self._client.pipeline(transaction=False)
        for name in where:
            pipe.hmget(name, OrderField.CANCEL, OrderField.RAW)
        for k, name, reply in zip(
            order_keys, where, pipe.execute(raise_on_error=False), strict=True
        ):
            if not isinstance(reply, list) or reply[0] is not None or not reply[1]:
                continue
            try:
                doc = orjson.loads(reply[1])
            except orjson.JSONDecodeError:
                continue
            if not isinstance(doc, dict) or doc.get("cancelled_at") is None:
                continue
            self.report.cancels_marked.append(k)
            if not self._dry:
                self._client.hset(name, OrderField.CANCEL, 1)

    def _dead_letters(self) -> None:
        owners: list[str] = []
        members: dict[str, None] = {}  # insertion-ordered set
        for name in self._dead_indexes():
            kind = _type(self._client, name)
            if kind == b"hash":
                # An order id such as `idx:all` took the index name over with its dead letter.
                owner = self._legacy.dead_owner_of(name)
                if owner is not None:
                    owners.append(owner)
            elif kind == b"zset":
                for member, _ in self._client.zscan_iter(name, count=MIGRATE_BATCH):
                    members[member.decode()] = None
        # Owners move first, so the indexes they free are indexes again before any re-indexing.
        taken = set(owners)
        found = [*owners, *(k for k in members if k not in taken)]
        old, new = self._legacy, self._keys
        for batch in _batched(found, MIGRATE_BATCH):
            answers = self._move(
                [
                    (build_old(k), build_new(k), kind)
                    for k in batch
                    for build_old, build_new, kind in zip(
                        (old.dead, old.dead_attempts, old.dead_history),
                        (new.dead, new.dead_attempts, new.dead_history),
                        _DEAD_TYPES,
                        strict=True,
                    )
                ]
            )
            where = [
                old.dead(k) if self._dry and answers[3 * i] == "renamed" else new.dead(k)
                for i, k in enumerate(batch)
            ]
            self._reindex(batch, where)
            self.report.dead_letters += len(batch)
            self._progress(len(batch))

    def _reindex(self, order_keys: list[str], where: list[str]) -> None:
        """Add each dead letter back to the index, reason and status indexes it is missing from
        (every `put` after an index was taken over failed on that index's ZADD)."""
        k = self._keys
        pipe = self._client.pipeline(transaction=False)
        for name in where:
            pipe.hmget(name, ["reason", "status", "last_dead_at"])
        fields = pipe.execute(raise_on_error=False)
        wanted: list[tuple[str, str, float]] = []
        for key, row in zip(order_keys, fields, strict=True):
            if not isinstance(row, list) or None in row:
                continue
            reason, status, at = (v.decode() for v in row)
            for index in (k.dead_index(), k.dead_reason_index(reason), k.dead_status_index(status)):
                wanted.append((key, index, float(at)))
        for key, index, _ in wanted:
            pipe.zscore(index, key)
        scores = pipe.execute(raise_on_error=False)
        for (key, index, at), score in zip(wanted, scores, strict=True):
            # In a dry run an index an order took over still holds that order's hash (an error
            # here): the real run frees it first, then adds the entry.
            if score is not None and not (self._dry and isinstance(score, Exception)):
                continue  # present, or the index is still taken over (reported as foreign)
            self.report.reindexed.append((key, index))
            if not self._dry:
                pipe.zadd(index, {key: at})
        if not self._dry:
            pipe.execute()

    def _repair_victims(self) -> None:
        victims = sorted(self._victims)
        if not victims:
            return
        pipe = self._client.pipeline(transaction=False)
        for k in victims:
            pipe.hget(self._keys.order(k), OrderField.STATE)
            pipe.hget(self._legacy.order(k), OrderField.STATE)
        states = pipe.execute(raise_on_error=False)
        due = [
            k
            for i, k in enumerate(victims)
            if (states[2 * i] if isinstance(states[2 * i], bytes) else states[2 * i + 1])
            in _WAITING
        ]
        self.report.republished = due
        if due and not self._dry:
            assert self._publisher is not None
            self._ledger.mark_republished(due, now=self._now)
            self._publisher.publish(due)

    def _check_foreign(self) -> None:
        """A name that held another type is left to its owner's move; one still holding it
        after the run (an owner no index names) is reported for an engineer."""
        if self._dry or not self._foreign:
            return
        pipe = self._client.pipeline(transaction=False)
        for name, _ in self._foreign:
            _type(pipe, name)
        for (name, kind), now_type in zip(self._foreign, pipe.execute(), strict=True):
            if now_type not in (b"none", kind.encode()):
                self.report.foreign_left.append(name)
