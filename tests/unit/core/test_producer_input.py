"""`read_document`: how the enqueue command cuts its input into raw orders (review L4)."""

from __future__ import annotations

import json

import pytest

from ops.commands.enqueue import read_document


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_json_lines_split_on_newline_only(separator: str) -> None:
    """U+2028, U+2029 and U+0085 are valid unescaped inside JSON strings: a line holding one in
    its notes stays one order (str.splitlines() cut it into two broken lines)."""
    first = json.dumps({"id": "a", "notes": f"gift{separator}wrap"}, ensure_ascii=False)
    second = json.dumps({"id": "b"})

    document = read_document(f"{first}\n{second}\n".encode())

    assert document.unit == "line"
    assert [c.position for c in document.candidates] == [1, 2]
    assert document.candidates[0].raw == first.encode()


def test_crlf_line_ends_still_give_one_order_per_line() -> None:
    """Windows line ends: the \\r left at the end of a line is JSON whitespace."""
    document = read_document(b'{"id": "a"}\r\n\r\n{"id": "b"}\r\n')

    assert [c.position for c in document.candidates] == [1, 3]
