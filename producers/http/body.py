"""What a POST /v1/orders body holds: its media type, its bytes (capped) and the orders in it.

Pure apart from `read_capped`, which reads the ASGI body stream. A body is cut into
`producers.enqueue.Candidate`s only: parsing and validating each order is the producer
library's job (`enqueue_candidates`), the one path every intake shares.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum

from producers.enqueue import Candidate

_BOM = b"\xef\xbb\xbf"


class BodyKind(StrEnum):
    """The two bodies POST /v1/orders takes."""

    JSON = "application/json"  # one order
    NDJSON = "application/x-ndjson"  # one order per non-empty line


class BodyTooLarge(Exception):
    """The body is over the intake's cap (`limit_bytes`)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the body is larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class Unframed(Exception):
    """The body holds no order at all (empty, or only blank lines)."""


def body_kind(content_type: str | None) -> BodyKind | None:
    """The kind of a Content-Type header value (parameters such as charset ignored, any case),
    or None for any other media type."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        return BodyKind(media)
    except ValueError:
        return None


def declared_too_large(content_length: str | None, limit_bytes: int) -> bool:
    """True when a Content-Length header announces more than `limit_bytes` (checked before
    reading a byte; the stream is still counted, as the header may be absent)."""
    if content_length is None:
        return False
    try:
        return int(content_length) > limit_bytes
    except ValueError:
        return False  # the server refuses a malformed Content-Length itself


async def read_capped(stream: AsyncIterator[bytes], limit_bytes: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit_bytes` arrived."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit_bytes:
            raise BodyTooLarge(limit_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def cut_orders(
    body: bytes, kind: BodyKind, *, id_prefix: str, source: str | None
) -> list[Candidate]:
    """The orders of `body`, each as a Candidate carrying `id_prefix` and `source`.

    JSON: the whole body is order 1. NDJSON: each non-empty line ("\\n"-separated; a trailing
    "\\r" is dropped) is an order whose position is its line number, from 1. A leading UTF-8 BOM
    is ignored. Raises Unframed when there is no order at all. A line that is not JSON is still
    an order: the producer library rejects it with its problem.
    """
    body = body.removeprefix(_BOM)
    if kind is BodyKind.JSON:
        if not body.strip():
            raise Unframed("the body is empty: send one order as a JSON object")
        return [Candidate(1, body, id_prefix=id_prefix, source=source)]
    candidates = [
        Candidate(number, line.removesuffix(b"\r"), id_prefix=id_prefix, source=source)
        for number, line in enumerate(body.split(b"\n"), 1)
        if line.strip()
    ]
    if not candidates:
        raise Unframed("the body holds no order: send one JSON object per line")
    return candidates
