"""Selecting dead-letter entries by filters, for listing, export, purge and replay.

`DeadFilter` carries every filter the operator commands offer; `iter_entries` walks all matching
entries newest first in pages, so a bulk command over a hundred thousand entries never holds them
all in memory. Paging moves a score cursor (`last_dead_at`) down rather than an offset, so entries
changing status while a command runs (dead -> replayed) do not shift the pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from worker.core.dead_entry import DeadEntry
from worker.core.states import DeadReason, DeadStatus
from worker.store.dead_letters import DeadLetters
from worker.store.dead_reads import DeadSearch

# Entries read per round of `iter_entries`: few enough to keep memory flat, enough to amortise.
PAGE_SIZE = 200


@dataclass(frozen=True)
class DeadFilter:
    """Every filter of the dead-letter commands; None means "any". `since`/`until` bound
    `last_dead_at` (epoch s, inclusive); `key_glob` is an fnmatch pattern (an exact key too)."""

    reason: DeadReason | None = None
    status: DeadStatus | None = None
    http_status: int | None = None
    source: str | None = None
    key_glob: str | None = None
    since: float | None = None
    until: float | None = None
    error_contains: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when no filter is set (the command would match every entry)."""
        return self == DeadFilter()

    def bounded(self, until: float) -> DeadFilter:
        """The same filter, never matching an entry dead-lettered after `until`."""
        upper = until if self.until is None else min(self.until, until)
        return replace(self, until=upper)


def list_entries(
    dead: DeadLetters, flt: DeadFilter, *, offset: int = 0, limit: int = 100
) -> list[DeadEntry]:
    """One page of entries matching `flt`, newest first."""
    return search_entries(dead, flt, offset=offset, limit=limit).entries


def search_entries(
    dead: DeadLetters,
    flt: DeadFilter,
    *,
    offset: int = 0,
    limit: int = 100,
    max_examined: int | None = None,
) -> DeadSearch:
    """`list_entries` examining at most `max_examined` index members (`DeadLetters.search`)."""
    return dead.search(
        reason=flt.reason,
        status=flt.status,
        since=flt.since,
        until=flt.until,
        order_key_glob=flt.key_glob,
        error_contains=flt.error_contains,
        http_status=flt.http_status,
        source=flt.source,
        offset=offset,
        limit=limit,
        max_examined=max_examined,
    )


def iter_entries(
    dead: DeadLetters, flt: DeadFilter, *, page_size: int = PAGE_SIZE
) -> Iterator[DeadEntry]:
    """Every entry matching `flt`, newest first, each at most once, read `page_size` at a time.

    An entry written again while this runs (dead-lettered anew) moves above the cursor and is
    not seen again; callers that must not see such entries also bound the filter with
    `DeadFilter.bounded(start time)`.
    """
    seen: set[str] = set()
    upper, offset = flt.until, 0
    while True:
        rows = list_entries(dead, replace(flt, until=upper), offset=offset, limit=page_size)
        for entry in rows:
            if entry.order_key not in seen:
                seen.add(entry.order_key)
                yield entry
        if len(rows) < page_size:
            return
        last = rows[-1].last_dead_at
        at_last = sum(1 for e in rows if e.last_dead_at == last)
        if last == upper:
            offset += len(rows)  # a whole page with one score: step over it within that score
        else:
            upper, offset = last, at_last
