"""Intake stream entries as the producer library's candidates, and its rejections as rejects.

An entry is a candidate like a line of a file: its `order` field is the raw JSON (the bytes the
ledger stores), `source` and `id_prefix` replace the intake's own for this one order. An entry
the library cannot even look at (no `order`, a `source` or `id_prefix` that is not UTF-8 or too
long) becomes a candidate that carries its error, so `enqueue_candidates` counts and reports it
with every other rejection: one path for everything refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from producers.enqueue import Candidate, EnqueueSummary
from worker.core.errors import InvalidOrder, Problem
from worker.store.intake import (
    ID_PREFIX_FIELD,
    ORDER_FIELD,
    SOURCE_FIELD,
    RejectedEntry,
    StreamEntry,
)


def _text_field(entry: StreamEntry, name: bytes, problems: list[Problem]) -> str | None:
    raw = entry.fields.get(name)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(name.decode(), "is not valid UTF-8"))
        return None
    return text


def to_candidate(position: int, entry: StreamEntry) -> Candidate:
    """The candidate at `position` for `entry` (one carrying its error when the entry's own
    fields are unusable; the order itself is validated by the library)."""
    problems: list[Problem] = []
    # The source's and id prefix's lengths are checked with the order (producers.validation).
    source = _text_field(entry, SOURCE_FIELD, problems)
    id_prefix = _text_field(entry, ID_PREFIX_FIELD, problems)
    raw = entry.fields.get(ORDER_FIELD)
    if raw is None:
        problems.insert(0, Problem(ORDER_FIELD.decode(), "is missing (the raw order JSON)"))
    if problems:
        return Candidate(position, error=InvalidOrder(problems))
    return Candidate(position, raw=raw, id_prefix=id_prefix, source=source)


def rejected_entries(
    entries: Sequence[StreamEntry], summary: EnqueueSummary
) -> list[RejectedEntry]:
    """The entries `summary` rejected (positions index `entries`), each with every problem."""
    return [
        RejectedEntry(entries[r.position], r.describe(), r.order_key) for r in summary.rejections
    ]


def gave_up(entry: StreamEntry, deliveries: int) -> RejectedEntry:
    """The reject of an entry that kept failing: read `deliveries` times, never acknowledged."""
    return RejectedEntry(entry, f"read {deliveries} times without being acknowledged")
