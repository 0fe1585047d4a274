"""What a POST /v1/orders body holds (producers.http.body): its media type and its orders."""

from __future__ import annotations

import pytest

from producers.http.body import BodyKind, Unframed, body_kind, cut_orders, declared_too_large


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/json", BodyKind.JSON),
        ("Application/JSON; charset=utf-8", BodyKind.JSON),
        ("application/x-ndjson", BodyKind.NDJSON),
        ("application/x-ndjson;charset=UTF-8", BodyKind.NDJSON),
        ("text/plain", None),
        ("application/jsonx", None),
        ("", None),
        (None, None),
    ],
)
def test_the_media_type_decides_the_kind(header: str | None, kind: BodyKind | None) -> None:
    assert body_kind(header) is kind


def test_ndjson_orders_are_numbered_by_line() -> None:
    """Blank lines are skipped but counted; CRLF line ends and a leading BOM are dropped; each
    candidate carries the request's prefix and source."""
    body = b'\xef\xbb\xbf{"id": 1}\r\n\n  \n{"id": 2}\nnot json\n'

    candidates = cut_orders(body, BodyKind.NDJSON, id_prefix="p-", source="s")

    assert [(c.position, c.raw) for c in candidates] == [
        (1, b'{"id": 1}'),
        (4, b'{"id": 2}'),
        (5, b"not json"),
    ]
    assert {(c.id_prefix, c.source) for c in candidates} == {("p-", "s")}


def test_a_json_body_is_one_order() -> None:
    body = b'{\n  "id": 1\n}\n'

    (candidate,) = cut_orders(body, BodyKind.JSON, id_prefix="", source=None)

    assert candidate.position == 1 and candidate.raw == body


@pytest.mark.parametrize("kind", list(BodyKind))
@pytest.mark.parametrize("body", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_a_body_without_any_order_is_unframed(kind: BodyKind, body: bytes) -> None:
    with pytest.raises(Unframed):
        cut_orders(body, kind, id_prefix="", source=None)


@pytest.mark.parametrize(
    ("header", "too_large"), [("100", False), ("101", True), (None, False), ("x", False)]
)
def test_content_length_is_checked_before_reading(header: str | None, too_large: bool) -> None:
    assert declared_too_large(header, 100) is too_large
