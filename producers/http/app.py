"""The HTTP intake's routes, on Starlette: POST /v1/orders, GET /v1/orders/{key}, /health and
/openapi.json.

Every answer is JSON with the request id. POST answers only after the ledger holds the orders:
its candidates go to the group-commit writer (`producers.http.writer`) and the request awaits
the writer's future on the event loop. The Redis reads of GET and /health run on Starlette's
thread pool, so no endpoint blocks the loop. The objects the app uses are built from Settings in
`producers.http.server`; this module receives them ready (`IntakeServices`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from producers.http.access import RequestIdAndAccessLog, request_info
from producers.http.auth import SIGNATURE_HEADER, Authenticator, Credential
from producers.http.body import (
    BodyTooLarge,
    Unframed,
    body_kind,
    cut_orders,
    declared_too_large,
    read_capped,
)
from producers.http.writer import (
    OUTCOMES,
    REJECTED,
    UNREACHABLE_RETRY_AFTER_S,
    GroupCommitWriter,
    IntakeUnavailable,
    OrderResult,
)

ORDER_PATH = "/v1/orders/{key:path}"
# Query parameters only the deployment's own credential may use.
SOURCE_PARAMS = ("source", "id_prefix")
WWW_AUTHENTICATE = 'Bearer realm="jetti-relay"'


@dataclass(frozen=True)
class IntakeServices:
    """What the routes use. `read_order(key)` is `lookup.order_status` on the deployment's
    stores, `ping()` raises a redis error when Redis does not answer, `close()` releases the
    Redis and broker connections after the writer stopped."""

    authenticator: Authenticator
    writer: GroupCommitWriter
    read_order: Callable[[str], dict[str, Any] | None]
    ping: Callable[[], object]
    max_body_bytes: int
    openapi: Mapping[str, Any]
    close: Callable[[], None]


def _json(
    request: Request, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    payload = {"request_id": request_info(request.scope).request_id, **body}
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


def _error(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return _json(request, status, {"error": message}, headers)


def _unauthorized(request: Request, message: str) -> Response:
    return _error(request, 401, message, {"WWW-Authenticate": WWW_AUTHENTICATE})


def _unavailable(request: Request, exc: IntakeUnavailable) -> Response:
    headers = {"Retry-After": str(exc.retry_after_s)}
    if exc.error is not None:
        return _json(request, 503, {"error": exc.error, "detail": exc.reason}, headers)
    return _error(request, 503, exc.reason, headers)


def _outcomes(results: list[OrderResult]) -> dict[str, Any]:
    counts = dict.fromkeys(OUTCOMES, 0)
    orders: list[dict[str, Any]] = []
    for result in results:
        counts[result.outcome] += 1
        order: dict[str, Any] = {
            "position": result.position,
            "key": result.key,
            "outcome": result.outcome,
        }
        if result.outcome == REJECTED:
            order["problems"] = [{"path": p.path, "message": p.message} for p in result.problems]
        orders.append(order)
    return {"counts": counts, "orders": orders}


class IntakeRoutes:
    """The endpoints over `IntakeServices`."""

    def __init__(self, services: IntakeServices) -> None:
        self.services = services
        self._openapi = orjson.dumps(services.openapi)

    async def post_orders(self, request: Request) -> Response:
        """POST /v1/orders: see the module docstring and docs/intake.md."""
        services = self.services
        info = request_info(request.scope)
        authorization = request.headers.get("authorization")
        signature = request.headers.get(SIGNATURE_HEADER)
        credential: Credential | None = None
        if authorization is not None:
            credential = services.authenticator.by_token(authorization)
            if credential is None:
                return _unauthorized(request, "the bearer token is not valid")
        elif signature is None:
            return _unauthorized(
                request,
                "no credential: send Authorization: Bearer <token> or "
                "X-Jetti-Relay-Signature: sha256=<HMAC-SHA256 of the body>",
            )
        kind = body_kind(request.headers.get("content-type"))
        if kind is None:
            return _error(request, 415, "send application/json (one order) or application/x-ndjson")
        limit = services.max_body_bytes
        if declared_too_large(request.headers.get("content-length"), limit):
            return _error(request, 413, f"the body is larger than {limit} bytes")
        try:
            body = await read_capped(request.stream(), limit)
        except BodyTooLarge as exc:
            return _error(request, 413, str(exc))
        if credential is None and signature is not None:
            credential = services.authenticator.by_signature(signature, body)
        if credential is None:
            return _unauthorized(request, "the signature does not match the body")
        params = request.query_params
        # A signature covers the body only: a query naming the source or id prefix could be
        # changed on a replayed request, writing the same orders under another upstream's keys.
        signed_only = authorization is None and credential.id_prefix is None
        if signed_only and any(name in params for name in SOURCE_PARAMS):
            return _error(
                request,
                403,
                "a signature covers the body only, so `source` and `id_prefix` cannot be "
                "sent with it: use a per-source credential, which sets both",
            )
        if credential.id_prefix is not None:
            if any(name in params for name in SOURCE_PARAMS):
                return _error(
                    request,
                    403,
                    f"this credential sets the source ({credential.name}) and the id prefix "
                    "itself: do not send `source` or `id_prefix`",
                )
            id_prefix: str = credential.id_prefix
            source: str | None = credential.name
        else:
            id_prefix, source = params.get("id_prefix") or "", params.get("source") or None
        info.source = source
        try:
            candidates = cut_orders(body, kind, id_prefix=id_prefix, source=source)
        except Unframed as exc:
            return _json(request, 400, {"error": str(exc), **_outcomes([])})
        info.orders = len(candidates)
        try:
            results = await asyncio.wrap_future(services.writer.submit(candidates))
        except IntakeUnavailable as exc:
            return _unavailable(request, exc)
        answer = _outcomes(results)
        if answer["counts"][REJECTED] == len(results):
            return _json(request, 400, {"error": "no valid order in the request", **answer})
        return _json(request, 202, answer)

    async def get_order(self, request: Request) -> Response:
        """GET /v1/orders/{key}: the order's status (`lookup.order_status`), 404 when unknown
        or outside the credential's id prefix."""
        info = request_info(request.scope)
        credential = self._credential_of_get(request)
        if credential is None:
            return _unauthorized(request, "no valid credential")
        info.source = credential.name if credential.id_prefix is not None else None
        key = request.path_params["key"]
        not_found = f"no order under {key!r}"
        if not key or not credential.may_read(key):
            return _error(request, 404, not_found)
        try:
            status = await run_in_threadpool(self.services.read_order, key)
        except redis.RedisError:
            return _unavailable(
                request,
                IntakeUnavailable("Redis is unreachable", retry_after_s=UNREACHABLE_RETRY_AFTER_S),
            )
        if status is None:
            return _error(request, 404, not_found)
        return _json(request, 200, status)

    def _credential_of_get(self, request: Request) -> Credential | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return self.services.authenticator.by_token(authorization)
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return None
        # A GET has no body: its signature covers the request target as the sender wrote it.
        scope = request.scope
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        return self.services.authenticator.by_signature(signature, target)

    async def health(self, request: Request) -> Response:
        """GET /health: 200 when Redis answers a PING and the writer runs, else 503."""
        try:
            await run_in_threadpool(self.services.ping)
            redis_ok = True
        except redis.RedisError:
            redis_ok = False
        writer_ok = self.services.writer.alive
        ok = redis_ok and writer_ok
        return _json(
            request,
            200 if ok else 503,
            {
                "status": "ok" if ok else "unavailable",
                "redis": "ok" if redis_ok else "unreachable",
                "writer": "running" if writer_ok else "stopped",
            },
        )

    async def openapi(self, _request: Request) -> Response:
        """GET /openapi.json: the document of `producers.http.openapi`."""
        return Response(self._openapi, media_type="application/json")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405 as JSON with the request id, like every other answer."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return _error(request, status, detail, headers)


def build_app(services: IntakeServices) -> ASGIApp:
    """The ASGI app: the routes under the request-id and access-log middleware. Its lifespan
    starts the writer thread and, at shutdown (after uvicorn let the requests in flight
    finish), drains and stops it and closes the connections."""
    routes = IntakeRoutes(services)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        services.writer.start()
        try:
            yield
        finally:
            await asyncio.to_thread(services.writer.close)
            services.close()

    app = Starlette(
        routes=[
            Route("/v1/orders", routes.post_orders, methods=["POST"]),
            Route(ORDER_PATH, routes.get_order, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/openapi.json", routes.openapi, methods=["GET"]),
        ],
        exception_handlers={HTTPException: routes.http_error, Exception: routes.http_error},
        lifespan=lifespan,
    )
    return RequestIdAndAccessLog(app)
