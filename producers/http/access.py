"""The request id and the access log: a plain ASGI wrapper around the Starlette app.

Every HTTP request gets an id (the sender's `X-Request-Id` when it is usable, else a new one),
bound in the log context for the whole request, echoed in the `X-Request-Id` response header
(the endpoints put it in the body too), and one `http_request` event once the response is sent:
method, the route's path template (never the raw order key), status, duration_ms, request_id,
source and the number of orders. No body, header or query value is ever logged.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("jetti_relay.intake.http")

REQUEST_ID_HEADER = b"x-request-id"
# A sender's request id is kept up to this many characters of these: enough for a UUID or a
# trace id, nothing that could break a log line or a header.
REQUEST_ID_MAX_CHARS = 64
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._:\-]")
# The per-request record the endpoints fill in, under this ASGI scope key.
SCOPE_KEY = "jetti_relay.request"
UNMATCHED = "unmatched"


@dataclass(slots=True)
class RequestInfo:
    """What the access log reports beyond the status: set by the endpoints as they learn it."""

    request_id: str
    source: str | None = None
    orders: int | None = None


def request_id_from(value: bytes | None) -> str:
    """The sender's id with every character outside `[A-Za-z0-9._:-]` dropped, cut to
    REQUEST_ID_MAX_CHARS; a new random id when nothing usable remains."""
    if value:
        kept = _NOT_ID_CHARS.sub("", value.decode("latin-1"))[:REQUEST_ID_MAX_CHARS]
        if kept:
            return kept
    return uuid.uuid4().hex


def request_info(scope: Scope) -> RequestInfo:
    """The request's record (`RequestIdAndAccessLog` puts it in every HTTP scope)."""
    info = scope.get(SCOPE_KEY)
    if not isinstance(info, RequestInfo):
        info = RequestInfo(request_id_from(None))
        scope[SCOPE_KEY] = info
    return info


class RequestIdAndAccessLog:
    """ASGI middleware: request id in, request id out, one access-log event per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                sent = value
        info = RequestInfo(request_id_from(sent))
        scope[SCOPE_KEY] = info
        echo = (REQUEST_ID_HEADER, info.request_id.encode("ascii"))
        status = 500  # what the sender sees when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), echo]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=info.request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=_template(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    source=info.source,
                    orders=info.orders,
                )


def _template(scope: Scope) -> str:
    # Starlette's router leaves the matched route in the scope; `path_format` is its template
    # without the converters (`/v1/orders/{key}`).
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED
