"""Stream entry ids and the trim floor: the bound below which the intake may delete entries.

Trimming one entry too many deletes an order no group has acknowledged; one too few only keeps
an entry a little longer. These tests pin the bound for every shape a group can be in.
"""

from __future__ import annotations

import pytest

from worker.core.stream_ids import (
    MAX_SEQUENCE,
    GroupCursor,
    next_stream_id,
    parse_stream_id,
    stream_id_seconds,
    trim_floor,
)


def test_ids_parse_as_numbers_not_text() -> None:
    """`10-0` comes after `9-5`: ids compare by milliseconds, then sequence, never as text."""
    assert parse_stream_id("10-0") > parse_stream_id("9-5")
    assert parse_stream_id(b"1700000000000-12") == (1700000000000, 12)
    assert parse_stream_id("42") == (42, 0)


@pytest.mark.parametrize("bad", ["", "-1", "a-1", "1-b", "1-2-3", "*"])
def test_anything_else_is_not_an_id(bad: str) -> None:
    """A malformed id is an error, not a guess."""
    with pytest.raises(ValueError):
        parse_stream_id(bad)


def test_the_next_id_steps_the_sequence_then_the_millisecond() -> None:
    """The smallest id after `ms-seq` is `ms-(seq+1)`, or `(ms+1)-0` after the last sequence."""
    assert next_stream_id("5-0") == "5-1"
    assert next_stream_id("0-0") == "0-1"
    assert next_stream_id(f"5-{MAX_SEQUENCE}") == "6-0"


def test_an_id_carries_the_time_it_was_added() -> None:
    """Redis-generated ids start with the epoch milliseconds of the XADD."""
    assert stream_id_seconds("1700000000123-4") == 1700000000.123


def test_without_a_group_nothing_may_be_trimmed() -> None:
    """No group recorded: nobody said what it read, so every entry may still be wanted."""
    assert trim_floor([]) is None


def test_a_group_with_nothing_pending_needs_what_comes_after_its_last_delivery() -> None:
    """Everything up to the last delivered entry was acknowledged: the floor is the next id."""
    assert trim_floor([GroupCursor("100-3")]) == "100-4"
    assert trim_floor([GroupCursor("0-0")]) == "0-1"  # a group that has read nothing yet


def test_a_pending_entry_holds_the_floor_down() -> None:
    """The first entry delivered and not acknowledged is still needed (reclaim reads it)."""
    assert trim_floor([GroupCursor("100-3", first_pending="90-0")]) == "90-0"


def test_the_slowest_group_decides() -> None:
    """Another team's group that is behind keeps what it has not acknowledged or not read."""
    ours = GroupCursor("500-0", first_pending="480-2")
    theirs_unread = GroupCursor("200-7")
    theirs_pending = GroupCursor("600-0", first_pending="300-0")
    assert trim_floor([ours, theirs_unread, theirs_pending]) == "200-8"
    assert trim_floor([ours, theirs_pending]) == "300-0"
    # Millisecond 1000 is after millisecond 999 even though "1000" < "999" as text.
    assert trim_floor([GroupCursor("1000-0"), GroupCursor("999-0")]) == "999-1"
