"""Reading the dead-letter store: one entry, filtered listings, and the counts metrics need.

`DeadLetterReads` is the read half of `worker.store.dead_letters.DeadLetters` (the layout is in
that module's docstring): every read is served by the indexes first, entries are read in
pipelined pages, and `stats` answers in one round trip without reading any entry.
"""

from __future__ import annotations

import builtins
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from worker.core.dead_entry import DeadEntry, DeadStats, parse_entry
from worker.core.keys import Keys
from worker.core.states import DeadReason, DeadStatus
from worker.store.scripts import Script

# Rows read from an index per round trip while filtering a listing.
LIST_PAGE_SIZE = 500


@dataclass(frozen=True)
class DeadSearch:
    """One bounded page of a dead-letter search (`DeadLetterReads.search`)."""

    entries: builtins.list[DeadEntry]
    examined: int
    older_until: float | None


class DeadLetterReads:
    """The reads of the dead-letter store."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys
        # Still-dead entries per reason, ZINTERCARD without Redis 7 (lua/dead_by_reason.lua).
        self._dead_by_reason = Script(client, "dead_by_reason")

    def get(self, order_key: str) -> DeadEntry | None:
        """The entry with all its attempts and history, or None."""
        return self._read(self._client, order_key)

    def list(
        self,
        *,
        reason: DeadReason | None = None,
        status: DeadStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        order_key_glob: str | None = None,
        error_contains: str | None = None,
        http_status: int | None = None,
        source: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[DeadEntry]:
        """Entries newest first (by `last_dead_at`) matching every filter given.

        `since`/`until` bound `last_dead_at` inclusively and, with `reason` and `status`, are
        served by the indexes (the smaller of the reason and status index is ranged, the other
        checked by ZMSCORE); the key glob (fnmatch, case-sensitive) is applied to keys before any
        entry is read, then `error_contains` (case-insensitive), `http_status` and `source` on
        the entries. `offset` and `limit` apply after filtering. Entries written while a listing
        runs may be missed or seen twice; run it again for a settled view.
        """
        return self.search(
            reason=reason,
            status=status,
            since=since,
            until=until,
            order_key_glob=order_key_glob,
            error_contains=error_contains,
            http_status=http_status,
            source=source,
            offset=offset,
            limit=limit,
        ).entries

    def search(
        self,
        *,
        reason: DeadReason | None = None,
        status: DeadStatus | None = None,
        since: float | None = None,
        until: float | None = None,
        order_key_glob: str | None = None,
        error_contains: str | None = None,
        http_status: int | None = None,
        source: str | None = None,
        offset: int = 0,
        limit: int = 100,
        max_examined: int | None = None,
    ) -> DeadSearch:
        """`list`, stopping once `max_examined` index members were looked at (None: no bound).

        A filter the indexes cannot serve (error text, HTTP status, source, a key glob) reads
        entries until the page is full; over ten thousand entries that match little, a page
        must not read them all. When the bound stops the walk, `older_until` is the
        `last_dead_at` below which nothing was examined: the same search with `until` set to it
        continues with older entries (the entries at exactly that time are examined again).
        """
        k = self._keys
        base, check = k.dead_index(), None
        if reason is not None and status is not None:
            base, check = k.dead_reason_index(reason), k.dead_status_index(status)
            if self._client.zcard(check) < self._client.zcard(base):
                base, check = check, base
        elif reason is not None:
            base = k.dead_reason_index(reason)
        elif status is not None:
            base = k.dead_status_index(status)
        hi = "+inf" if until is None else until
        lo = "-inf" if since is None else since
        needle = None if error_contains is None else error_contains.lower()
        # Without a filter on the entries themselves, keys are matched and only the page's
        # entries are read (a deep page must not read every entry above it).
        keys_only = needle is None and http_status is None and source is None
        matched_keys: list[str] = []
        matched: list[DeadEntry] = []
        start = examined = 0
        older_until: float | None = None
        while len(matched_keys if keys_only else matched) < offset + limit:
            step = LIST_PAGE_SIZE
            if max_examined is not None:
                step = min(step, max_examined - examined)
                if step <= 0:
                    break
            rows = self._client.zrevrangebyscore(
                base, hi, lo, start=start, num=step, withscores=True
            )
            page = [m.decode() for m, _score in rows]
            start += step
            examined += len(page)
            if max_examined is not None and examined >= max_examined and len(page) == step:
                older_until = float(rows[-1][1])
            candidates = page
            if check is not None and page:
                scores = self._client.execute_command("ZMSCORE", check, *page)
                candidates = [key for key, s in zip(page, scores, strict=True) if s is not None]
            if order_key_glob is not None:
                candidates = [key for key in candidates if fnmatch.fnmatchcase(key, order_key_glob)]
            if keys_only:
                matched_keys += candidates
                if len(page) < step:
                    older_until = None
                    break
                continue
            for entry in self._read_many(candidates):
                if needle is not None and needle not in entry.error.lower():
                    continue
                if http_status is not None and entry.http_status != http_status:
                    continue
                if source is not None and entry.source != source:
                    continue
                matched.append(entry)
            if len(page) < step:
                older_until = None
                break
        if len(matched_keys if keys_only else matched) >= offset + limit:
            older_until = None  # the page is full: the caller pages on by offset
        if keys_only:
            matched = self._read_many(matched_keys[offset : offset + limit])
        else:
            matched = matched[offset : offset + limit]
        return DeadSearch(entries=matched, examined=examined, older_until=older_until)

    def counts_by_reason(self) -> dict[DeadReason, int]:
        """Entries per reason, whatever their status (ZCARD of each reason index)."""
        return self.stats().by_reason

    def oldest(self) -> float | None:
        """`last_dead_at` of the oldest entry still in status dead, or None."""
        return self.stats().oldest_dead_at

    def stats(self) -> DeadStats:
        """Counts by reason and status, still-dead counts by reason (one script, Redis 6.2) and
        the oldest still-dead entry, in one round trip and without reading any entry."""
        k = self._keys
        dead_index = k.dead_status_index(DeadStatus.DEAD)
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(k.dead_index())
        for r in DeadReason:
            pipe.zcard(k.dead_reason_index(r))
        for s in DeadStatus:
            pipe.zcard(k.dead_status_index(s))
        self._dead_by_reason(
            [dead_index, *(k.dead_reason_index(r) for r in DeadReason)], [], client=pipe
        )
        pipe.zrange(dead_index, 0, 0, withscores=True)
        out = pipe.execute()
        n, m = len(DeadReason), len(DeadStatus)
        counts = [int(c) for c in [*out[:-2], *out[-2]]]
        oldest = out[-1]
        return DeadStats(
            total=counts[0],
            by_reason=dict(zip(DeadReason, counts[1 : 1 + n], strict=True)),
            by_status=dict(zip(DeadStatus, counts[1 + n : 1 + n + m], strict=True)),
            dead_by_reason=dict(zip(DeadReason, counts[1 + n + m :], strict=True)),
            oldest_dead_at=float(oldest[0][1]) if oldest else None,
        )

    def _read(self, conn: redis.Redis[bytes], order_key: str) -> DeadEntry | None:
        fields = conn.hgetall(self._keys.dead(order_key))
        if not fields:
            return None
        attempts = conn.lrange(self._keys.dead_attempts(order_key), 0, -1)
        history = conn.lrange(self._keys.dead_history(order_key), 0, -1)
        return parse_entry(order_key, fields, attempts, history)

    def _read_many(self, order_keys: Sequence[str]) -> builtins.list[DeadEntry]:
        if not order_keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in order_keys:
            pipe.hgetall(self._keys.dead(key))
            pipe.lrange(self._keys.dead_attempts(key), 0, -1)
            pipe.lrange(self._keys.dead_history(key), 0, -1)
        out = pipe.execute()
        # An entry purged between the index read and this one has no fields: skip it.
        return [
            parse_entry(key, out[3 * i], out[3 * i + 1], out[3 * i + 2])
            for i, key in enumerate(order_keys)
            if out[3 * i]
        ]
