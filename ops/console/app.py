"""The console's routes: every page (HTML) with its JSON twin under `/api/`, the actions (POST
under `/api/`), login and logout, `/healthz` and `/api/pages` (for `bench console`).

Who is asking: `Authorization: Bearer <token>` on any request, else the session cookie the
login form sets. A request that rides the cookie and changes something must carry the session's
CSRF value (header `X-CSRF-Token`, or a `csrf` form field): the browser sends the cookie by
itself, the CSRF value only a page of ours can read. A Bearer request needs none (nothing
ambient authorises it). Without a user: 401 (a page redirects to the login form); a read-only
user's action: 403.

Handlers are plain functions: Starlette runs them on its thread pool, where the synchronous
Redis client belongs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import click
import redis
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ops.console import actions, pages
from ops.console.auth import Authenticator, Session, User
from ops.console.svg import sparkline
from ops.dlq.common import WHEN, age, iso
from ops.monitoring.sources import Sources
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.dead_query import DeadFilter
from worker.store.order_query import BACKLOG_STATES, BadCursor

log = structlog.get_logger("jetti_relay.console")

HERE = Path(__file__).parent
COOKIE = "jetti_relay_console"
CSRF_HEADER = "x-csrf-token"
# How often the overview reloads its content (the other pages: on demand).
OVERVIEW_REFRESH_S = 5


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user, and the session when it came with the cookie."""

    user: User
    session: Session | None


class ConsoleState:
    """What the handlers share: the sources the pages read, the authenticator, the publisher
    of the actions (built on first use)."""

    def __init__(self, sources: Sources, auth: Authenticator) -> None:
        self.sources = sources
        self.stores = sources.stores
        self.auth = auth
        self.ctx = pages.PageContext(sources)
        self.publisher = actions.LazyPublisher(sources.stores)


def _caller(state: ConsoleState, request: Request) -> Caller | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        user = state.auth.by_token(token.strip())
        return None if user is None else Caller(user, None)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        session = state.auth.session(cookie, now=time.time())
        if session is not None:
            return Caller(session.user, session)
    return None


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def safe_next(target: str) -> str:
    """`target` when it is a path on this console, else "/": never an open redirect. Browsers
    read a backslash as a slash (`/\\evil.com` goes to evil.com), and control characters are
    dropped before parsing, so only a plain absolute path without either passes."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _unauthorised(request: Request) -> Response:
    # A request that presented a token is answered 401 wherever it went: a script with a wrong
    # token must see the refusal, not a login form.
    if _is_api(request) or "authorization" in request.headers:
        return JSONResponse(
            {"error": "unauthorised: send Authorization: Bearer <token> or log in"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _time_param(values: Mapping[str, Any], name: str) -> float | None:
    value = str(values.get(name) or "").strip()
    if not value:
        return None
    try:
        return WHEN.convert(value, None, None)
    except click.BadParameter as exc:
        raise HTTPException(400, f"{name}: {exc.message}") from exc


def _int_param(values: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = str(values.get(name) or "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name}: {value!r} is not a whole number") from exc


def _choice(values: Mapping[str, Any], name: str, choices: list[str]) -> str | None:
    value = str(values.get(name) or "").strip()
    if value and value not in choices:
        raise HTTPException(400, f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value or None


def _dead_filter(q: Mapping[str, Any], *, with_status: bool = True) -> DeadFilter:
    """The dead-letter filters of a query string or an action's body (`dlq list`'s options)."""
    reason = _choice(q, "reason", [r.value for r in DeadReason])
    status = _choice(q, "status", [s.value for s in DeadStatus]) if with_status else None
    return DeadFilter(
        reason=DeadReason(reason) if reason else None,
        status=DeadStatus(status) if status else None,
        http_status=_int_param(q, "http_status", None),
        source=str(q.get("source") or "").strip() or None,
        key_glob=str(q.get("key") or "").strip() or None,
        since=_time_param(q, "since"),
        until=_time_param(q, "until"),
        error_contains=str(q.get("error") or "").strip() or None,
    )


def _key(request: Request) -> str:
    key = request.query_params.get("key", "")
    if not key:
        raise HTTPException(400, "key: give the order key (?key=...)")
    return key


# --- the page data, per route ---------------------------------------------------------------
def _overview(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    return pages.overview(state.ctx)


def _dead_letters(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    return pages.dead_letters(
        state.ctx,
        _dead_filter(request.query_params),
        offset=_int_param(request.query_params, "offset", 0) or 0,
        limit=_int_param(request.query_params, "limit", pages.PAGE_ROWS) or pages.PAGE_ROWS,
    )


def _dead_letter(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    key = _key(request)
    view = pages.dead_letter(state.ctx, key, editable=caller.user.may_act)
    if view is None:
        raise HTTPException(404, f"no dead letter under {key!r}")
    return view


def _orders(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    choices = [s.value for s in OrderState]
    wanted = [v for v in request.query_params.getlist("state") if v]
    for value in wanted:
        if value not in choices:
            raise HTTPException(400, f"state: {value!r} is not one of {', '.join(choices)}")
    try:
        return pages.orders(
            state.ctx,
            prefix=request.query_params.get("prefix", "").strip() or None,
            states=[OrderState(v) for v in wanted],
            since=_time_param(request.query_params, "since"),
            until=_time_param(request.query_params, "until"),
            cursor=request.query_params.get("cursor") or None,
            limit=_int_param(request.query_params, "limit", pages.PAGE_ROWS) or pages.PAGE_ROWS,
        )
    except (BadCursor, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc


def _order(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    key = _key(request)
    view = pages.order(state.ctx, key)
    if view is None:
        raise HTTPException(404, f"no order and no dead letter under {key!r}")
    return view


def _backlog(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    chosen = _choice(request.query_params, "state", [s.value for s in BACKLOG_STATES])
    try:
        return pages.backlog(
            state.ctx,
            OrderState(chosen or OrderState.RETRY_WAIT.value),
            cursor=request.query_params.get("cursor") or None,
            limit=_int_param(request.query_params, "limit", pages.PAGE_ROWS) or pages.PAGE_ROWS,
        )
    except (BadCursor, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc


def _jobs(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    q = request.query_params
    flt = _dead_filter(q, with_status=False) if q.get("estimate") else None
    return pages.jobs(state.ctx, flt)


def _alerts(state: ConsoleState, request: Request, caller: Caller) -> dict[str, Any]:
    return pages.alerts(state.ctx)


PageFn = Callable[[ConsoleState, Request, Caller], dict[str, Any]]
# (page path, JSON twin path, template, the page's data, nav name)
PAGES: list[tuple[str, str, str, PageFn, str]] = [
    ("/", "/api/overview", "overview.html", _overview, "overview"),
    ("/dead-letters", "/api/dead-letters", "dead_letters.html", _dead_letters, "dead"),
    ("/dead-letters/entry", "/api/dead-letters/entry", "dead_letter.html", _dead_letter, "dead"),
    ("/orders", "/api/orders", "orders.html", _orders, "orders"),
    ("/orders/entry", "/api/orders/entry", "order.html", _order, "orders"),
    ("/backlog", "/api/backlog", "backlog.html", _backlog, "backlog"),
    ("/jobs", "/api/jobs", "jobs.html", _jobs, "jobs"),
    ("/alerts", "/api/alerts", "alerts.html", _alerts, "alerts"),
]


def build_app(sources: Sources, auth: Authenticator) -> Starlette:
    """The console app over `sources` (the deployment's stores), admitting `auth`'s users."""
    state = ConsoleState(sources, auth)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(
        iso=iso,
        age=age,
        sparkline=sparkline,
        quote=quote,
        order_states=[s.value for s in OrderState],
        dead_reasons=[r.value for r in DeadReason],
        dead_statuses=[s.value for s in DeadStatus],
        backlog_states=[s.value for s in BACKLOG_STATES],
        refresh_s=OVERVIEW_REFRESH_S,
    )

    def page_endpoint(template: str, fn: PageFn, nav: str) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            caller = _caller(state, request)
            if caller is None:
                return _unauthorised(request)
            data = fn(state, request, caller)
            if _is_api(request):
                return JSONResponse(data)
            context = {
                "data": data,
                "user": caller.user,
                "csrf": caller.session.csrf if caller.session else "",
                "nav": nav,
                "query": request.query_params,
                "now": time.time(),
            }
            return templates.TemplateResponse(request, template, context)

        return endpoint

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    def bench_pages(request: Request) -> Response:
        if _caller(state, request) is None:
            return _unauthorised(request)
        return JSONResponse({"bench": pages.bench_paths(state.ctx)})

    def login_form(request: Request) -> Response:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": None, "next": safe_next(request.query_params.get("next", "/"))},
        )

    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        target = safe_next(str(form.get("next", "/")))
        user = auth.by_token(token) if token else None
        if user is None:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"error": "unknown token", "next": target},
                status_code=401,
            )
        cookie, _ = auth.issue(user, now=time.time())
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(auth.session_ttl_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        caller = _caller(state, request)
        if caller is not None and caller.session is not None:
            body = await _body(request)
            presented = request.headers.get(CSRF_HEADER) or str(body.get("csrf", ""))
            if not auth.csrf_matches(caller.session, presented):
                return JSONResponse({"error": "CSRF value missing or wrong"}, status_code=403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return response

    def action(fn: Callable[[Caller, dict[str, Any], Request], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            caller = _caller(state, request)
            if caller is None:
                return _unauthorised(request)
            body = await _body(request)
            if caller.session is not None:
                presented = request.headers.get(CSRF_HEADER) or str(body.get("csrf", ""))
                if not auth.csrf_matches(caller.session, presented):
                    return JSONResponse(
                        {"error": "CSRF value missing or wrong: reload the page"},
                        status_code=403,
                    )
            if not caller.user.may_act:
                return JSONResponse(
                    {"error": f"user {caller.user.name!r} is read-only"}, status_code=403
                )
            try:
                result = await run_in_threadpool(fn, caller, body, request)
            except actions.Refused as exc:
                return JSONResponse(
                    {"error": exc.message, "problems": exc.problems}, status_code=exc.status
                )
            return JSONResponse({"ok": True, "by": caller.user.name, **result})

        return endpoint

    stores = state.stores

    def do_pause(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.pause(stores, actor=caller.user.name, reason=str(body.get("reason", "")))

    def do_resume(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.resume(stores, actor=caller.user.name)

    def do_retry(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.retry(
            stores, _body_key(body, request), actor=caller.user.name, publisher=state.publisher
        )

    def do_discard(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.discard(
            stores,
            _body_key(body, request),
            reason=str(body.get("reason", "")),
            actor=caller.user.name,
        )

    def do_replay(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        raw = body.get("raw")
        return actions.replay_one(
            stores,
            _body_key(body, request),
            actor=caller.user.name,
            publisher=state.publisher,
            raw=None if raw is None or raw == "" else str(raw),
        )

    def do_ack(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.alert_ack(stores, str(body.get("name", "")), actor=caller.user.name)

    def do_silence(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        try:
            for_s = float(body.get("for_s") or 0)
        except (TypeError, ValueError) as exc:
            raise actions.Refused(422, "bad duration", ["for_s: a number of seconds"]) from exc
        return actions.alert_silence(
            stores, str(body.get("name", "")), actor=caller.user.name, for_s=for_s
        )

    def do_create_job(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        try:
            flt = _dead_filter(body, with_status=False)
        except HTTPException as exc:
            raise actions.Refused(422, "bad filter", [str(exc.detail)]) from exc
        return actions.create_job(stores, flt, actor=caller.user.name)

    def do_cancel_job(caller: Caller, body: dict[str, Any], request: Request) -> dict[str, Any]:
        return actions.cancel_job(stores, str(body.get("id", "")), actor=caller.user.name)

    routes: list[Route | Mount] = [
        Route("/api/jobs/create", action(do_create_job), methods=["POST"]),
        Route("/api/jobs/cancel", action(do_cancel_job), methods=["POST"]),
        Route("/healthz", healthz),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/pages", bench_pages),
        Route("/api/fleet/pause", action(do_pause), methods=["POST"]),
        Route("/api/fleet/resume", action(do_resume), methods=["POST"]),
        Route("/api/orders/retry", action(do_retry), methods=["POST"]),
        Route("/api/orders/discard", action(do_discard), methods=["POST"]),
        Route("/api/dead-letters/replay", action(do_replay), methods=["POST"]),
        Route("/api/alerts/ack", action(do_ack), methods=["POST"]),
        Route("/api/alerts/silence", action(do_silence), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    for path, twin, template, fn, nav in PAGES:
        endpoint = page_endpoint(template, fn, nav)
        routes.append(Route(path, endpoint, methods=["GET"]))
        routes.append(Route(twin, endpoint, methods=["GET"]))

    def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if _is_api(request):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}", status_code=exc.status_code)

    def on_redis_error(request: Request, exc: Exception) -> Response:
        # The URL may carry a password: the error's class only.
        detail = f"Redis unreachable ({type(exc).__name__}); the page answers when it is back"
        log.warning("console_redis_unreachable", path=request.url.path, error=type(exc).__name__)
        if _is_api(request):
            return JSONResponse({"error": detail}, status_code=503)
        return PlainTextResponse(detail, status_code=503)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: on_http_error, redis.RedisError: on_redis_error},
    )


async def _body(request: Request) -> dict[str, Any]:
    """A POST's fields: its JSON object, or its form fields; {} when it has none."""
    if request.method != "POST":
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = await request.json()
        except ValueError as exc:
            raise HTTPException(400, "the body is not JSON") from exc
        if not isinstance(doc, dict):
            raise HTTPException(400, "the body must be a JSON object")
        return doc
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _body_key(body: dict[str, Any], request: Request) -> str:
    key = str(body.get("key") or request.query_params.get("key") or "")
    if not key:
        raise actions.Refused(422, "say which order", ["key: required"])
    return key
