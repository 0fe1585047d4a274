"""The console's diff between two versions of a raw order, and the payload preview built from a
stored one (worker/core/order_diff.py)."""

from __future__ import annotations

import orjson

from tests.factories import minimal_order, order_entry
from worker.core.build import build_payload
from worker.core.order_diff import Change, diff_raw, payload_preview
from worker.core.rules import Rules


def test_a_changed_line_quantity_is_one_change_with_its_path() -> None:
    """Nested objects and lists give paths like `lines[0].quantity`."""
    before = orjson.dumps(minimal_order("1", quantity=1))
    after = orjson.dumps(minimal_order("1", quantity=3))
    assert diff_raw(before, after) == [Change("lines[0].quantity", 1, 3)]


def test_added_and_removed_keys_and_list_items_are_marked() -> None:
    """A key only in `after` is added, one only in `before` removed; a list compares by
    position, so an extra line is an added item at its index."""
    before = b'{"a": 1, "gone": "x", "lines": [{"id": "l1"}]}'
    after = b'{"a": 1, "lines": [{"id": "l1"}, {"id": "l2"}], "new": true}'
    assert diff_raw(before, after) == [
        Change("gone", "x", None, removed=True),
        Change("lines[1]", None, {"id": "l2"}, added=True),
        Change("new", None, True, added=True),
    ]


def test_numbers_compare_by_value_and_type_and_come_out_as_exact_text() -> None:
    """12.10 equals 12.1 (the same amount); a changed price is given as its exact text; an
    integer becoming a fraction is a change."""
    assert diff_raw(b'{"p": 12.10}', b'{"p": 12.1}') == []
    assert diff_raw(b'{"p": 12.10}', b'{"p": 12.15}') == [Change("p", "12.10", "12.15")]
    assert diff_raw(b'{"q": 1}', b'{"q": 1.0}') == [Change("q", 1, "1.0")]


def test_without_a_previous_version_every_field_is_added() -> None:
    """No earlier version kept: each top-level field is added; the same bytes: no change."""
    assert diff_raw(None, b'{"a": 1, "b": [2]}') == [
        Change("a", None, 1, added=True),
        Change("b", None, [2], added=True),
    ]
    assert diff_raw(b'{"a": 1}', b'{"a": 1}') == []


def test_a_body_that_is_not_json_is_compared_as_text() -> None:
    """A body stored past the producer's checks still diffs, as a whole."""
    assert diff_raw(b"not json", b'{"a": 1}') == [Change("$", "not json", {"a": 1})]


def test_payload_preview_is_what_the_worker_builds_and_says_why_when_it_cannot() -> None:
    """The preview equals build_payload's payload and hash; an invalid raw order gives its
    problems with their paths; a shed body has nothing to build from."""
    raw = orjson.dumps(minimal_order("1"))
    preview = payload_preview(order_entry(raw), Rules.empty())
    expected = build_payload(raw, "o-1", Rules.empty())
    assert preview.error is None and preview.payload_hash == expected.payload_hash
    assert preview.payload is not None and preview.payload["externalId"] == "o-1"
    assert orjson.dumps(preview.payload)  # JSON-able: Decimals as exact text

    invalid = payload_preview(
        order_entry(orjson.dumps(minimal_order("1", quantity=0))), Rules.empty()
    )
    assert invalid.payload is None and invalid.error is not None and "quantity" in invalid.error
    shed = payload_preview(order_entry(None), Rules.empty())
    assert shed.payload is None and shed.error is not None and "shed" in shed.error
