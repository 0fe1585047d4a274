"""Redis Stream entry ids (`<ms>-<seq>`) as values: parse, order, step, and the trim floor.

The intake trims its stream below the oldest entry any consumer group still needs
(`trim_floor`); getting that bound wrong deletes orders nobody has read, so it is computed here,
pure, and tested on its own (tests/unit/core/test_stream_ids.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# The largest sequence number Redis allows in one millisecond (an unsigned 64-bit integer).
MAX_SEQUENCE = 2**64 - 1

StreamId = tuple[int, int]


def parse_stream_id(text: str | bytes) -> StreamId:
    """`"1700000000000-3"` -> `(1700000000000, 3)`; a bare `"<ms>"` means sequence 0.
    Raises ValueError for anything else."""
    raw = text.decode("ascii") if isinstance(text, bytes) else text
    ms, _, seq = raw.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()):
        raise ValueError(f"not a stream entry id: {raw!r}")
    return int(ms), int(seq or 0)


def format_stream_id(entry_id: StreamId) -> str:
    """`(ms, seq)` -> `"ms-seq"`, as Redis spells it."""
    return f"{entry_id[0]}-{entry_id[1]}"


def next_stream_id(text: str | bytes) -> str:
    """The smallest id greater than `text` (the next sequence, or the next millisecond's 0)."""
    ms, seq = parse_stream_id(text)
    return format_stream_id((ms + 1, 0) if seq >= MAX_SEQUENCE else (ms, seq + 1))


def stream_id_seconds(text: str | bytes) -> float:
    """When the entry was added (epoch seconds), from the milliseconds of its id.

    Only true for ids Redis generated (`XADD key * ...`), which is what the intake documents."""
    return parse_stream_id(text)[0] / 1000.0


@dataclass(frozen=True, slots=True)
class GroupCursor:
    """Where one consumer group of a stream is: the last entry delivered to any of its
    consumers (`0-0` before the first) and the smallest entry delivered but not acknowledged
    (None when nothing is pending)."""

    last_delivered: str
    first_pending: str | None = None

    def oldest_needed(self) -> StreamId:
        """The smallest id this group may still read: its first pending entry, else the entry
        after the last one delivered (everything from there on is still to come)."""
        after = parse_stream_id(next_stream_id(self.last_delivered))
        if self.first_pending is None:
            return after
        return min(parse_stream_id(self.first_pending), after)


def trim_floor(groups: Iterable[GroupCursor]) -> str | None:
    """The id below which every group of a stream is done with every entry (each one was
    delivered to it and acknowledged): `XTRIM key MINID <floor>` removes only such entries.

    None when there is no group: with no reader recorded, every entry may still be wanted.
    """
    needed = [group.oldest_needed() for group in groups]
    return format_stream_id(min(needed)) if needed else None
