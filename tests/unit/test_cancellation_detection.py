"""`worker.pipeline.canceller.cancellation`: which stored raw orders are cancellations.

Producers store the original bytes, so the check must read JSON, not match text.
"""

from __future__ import annotations

import pytest

from tests.factories import order_entry
from worker.pipeline.canceller import cancellation

LINES = b'"lines": [{"sku": "A", "name": "Mug", "quantity": 1, "unit_price": "1"}]'


@pytest.mark.parametrize(
    "spelling",
    [
        b'"cancelled_at":"2026-11-27T10:00:00Z"',
        b'"cancelled_at" : "2026-11-27T10:00:00Z"',
        b'"cancelled_at"\n  :\t"2026-11-27T10:00:00Z"',
    ],
)
def test_a_cancellation_is_seen_whatever_the_spacing(spelling: bytes) -> None:
    """Producers store the original bytes: a pretty-printed `cancelled_at` is still a cancel."""
    order = cancellation(order_entry(b'{"id": "o-1", ' + spelling + b", " + LINES + b"}"))
    assert order is not None and order.cancelled_at is not None


def test_a_cancelled_at_in_text_or_null_is_not_a_cancellation() -> None:
    """The marker inside a string value, or `cancelled_at: null`, is no cancellation."""
    in_text = order_entry(b'{"id": "o-1", "notes": "cancelled_at: no", ' + LINES + b"}")
    null = order_entry(b'{"id": "o-1", "cancelled_at" : null, ' + LINES + b"}")
    assert cancellation(in_text) is None
    assert cancellation(null) is None


def test_a_tombstone_is_not_a_cancellation() -> None:
    """A settled entry that shed its body has nothing to cancel."""
    assert cancellation(order_entry(None)) is None
