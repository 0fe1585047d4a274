"""The sandbox's HTTP surface: a thin raw-ASGI app (no framework on the hot path, for speed).

Jetti's routes: the async webhook, the sync manual-sale, sales and import-log reads, cancel.
Test routes under `/_sandbox/`: stats, reset, faults, and unthrottled reads that first wait until
every async import received so far has been applied (so tests never sleep).
The async endpoint only checks the hash, queues the body and answers 200; one background task
validates and applies queued imports in arrival order (newest-first batches when `out_of_order`).
Secrets never appear in a response or a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from ops.sandbox.faults import NORMAL, Fate, Faults, pick
from ops.sandbox.state import STATUSES, Store

Scope = dict[str, Any]
Receive = Any
Send = Any

ASYNC_PATH = "/webhooks/custom-channels/manual-sale.json"
SYNC_PATH = re.compile(r"^/api/channels/([^/]+)/manual-sale\.json$")
CANCEL_PATH = re.compile(r"^/api/sales/(\d+)/cancel\.json$")
MAX_BODY_BYTES = 10 * 1024 * 1024  # far above any order; protects the sandbox from runaway clients
INSPECT_WAIT_S = 10.0  # the longest an inspection read waits for the applier to catch up
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
JSON_HEADERS = [(b"content-type", b"application/json")]
REQUEST_LOG_KEPT = 20000  # API requests (not async imports) kept for `/_sandbox/requests`


@dataclass
class Config:
    """How the sandbox was started (immutable while it runs; faults are separate)."""

    webhook_hash: str
    api_token: str
    channel_id: int
    throttle: bool = True  # Jetti's documented sync limits: 1 write/s, 2 reads/s per token
    async_rate_per_s: int | None = None  # the async endpoint's limit; Jetti documents none
    throttle_retry_after_s: float | None = None  # Jetti documents no Retry-After: off by default
    validation_status: int = 422  # the real code is undocumented (facts §9.3)
    variants: frozenset[str] | None = None  # None: every variant is known (open catalogue)
    faults: Faults = field(default_factory=Faults)


class Throttle:
    """Fixed one-second windows per (token, kind), as Jetti's docs describe its limits."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    def allow(self, key: tuple[str, str], limit: int, now: float) -> bool:
        window = int(now)
        start, used = self._windows.get(key, (window, 0))
        if start != window:
            used = 0
        if used >= limit:
            return False
        self._windows[key] = (window, used + 1)
        return True


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SandboxApp:
    """The ASGI callable. One instance per process; state lives on the event loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rng = random.Random(config.faults.seed)
        self.queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self._applier: asyncio.Task[None] | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        variants = set(self.config.variants) if self.config.variants is not None else None
        self.store = Store(channel_id=self.config.channel_id, known_variants=variants)
        self.faults = self.config.faults.updated({})
        self.requests: Counter[tuple[str, str]] = Counter()
        # Every sync-API request as it arrived (time, method, path, query); not the async hot path.
        self.request_log: deque[tuple[float, str, str, str]] = deque(maxlen=REQUEST_LOG_KEPT)
        self.throttle = Throttle()
        if self.faults.seed is not None:
            self.rng.seed(self.faults.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._applier is None:
            self._applier = asyncio.get_running_loop().create_task(self._apply_forever())
        path: str = scope["path"]
        method: str = scope["method"]
        if path == ASYNC_PATH and method == "POST":
            await self._async_import(scope, receive, send)
        elif path.startswith("/_sandbox/"):
            await self._inspect(path[10:], method, scope, receive, send)
        else:
            await self._jetti_api(path, method, scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._applier = asyncio.get_running_loop().create_task(self._apply_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._applier is not None:
                    self._applier.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- Jetti's surface ------------------------------------------------------------------------

    async def _async_import(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = _header(scope, b"jetti-webhook-hash")
        if given is None or not hmac.compare_digest(given, self.config.webhook_hash.encode()):
            await self._json(send, "async", 401, {"message": "invalid jetti-webhook-hash"})
            return
        fate = pick(self.faults, "async", self.rng) if self.faults.active else NORMAL
        if await self._misbehave(send, "async", fate):
            return
        limit = self.config.async_rate_per_s
        if limit is not None and not self.throttle.allow(("webhook", "async"), limit, time.time()):
            await self._throttled(send, "async")
            return
        body = await _read_body(receive)
        if body is None:
            await self._json(send, "async", 413, {"message": "body too large"})
            return
        self.queue.put_nowait((body, time.time()))
        if fate.slow_s:
            await asyncio.sleep(fate.slow_s)
        # Jetti answers 200 for every authenticated request; problems go to the import log only.
        await self._json(send, "async", 200, {})

    async def _jetti_api(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.request_log.append(
            (time.time(), method, path, scope["query_string"].decode("latin-1"))
        )
        sync = SYNC_PATH.match(path) if method == "POST" else None
        cancel = CANCEL_PATH.match(path) if method == "POST" else None
        reads = {"/api/sales.json": "sales", "/api/sale-imports.json": "imports"}
        if sync:
            endpoint = "sync"
        elif cancel:
            endpoint = "cancel"
        elif method == "GET" and path in reads:
            endpoint = "read"
        else:
            await self._json(send, "other", 404, {"message": "not found"})
            return
        token = self.config.api_token.encode()
        auth = _header(scope, b"authorization") or b""
        if not (auth.startswith(b"Bearer ") and hmac.compare_digest(auth[7:], token)):
            await self._json(send, endpoint, 401, {"message": "missing or invalid bearer token"})
            return
        fate = pick(self.faults, endpoint, self.rng) if self.faults.active else NORMAL
        if await self._misbehave(send, endpoint, fate):
            return
        kind, limit = ("read", 2) if endpoint == "read" else ("write", 1)
        if self.config.throttle and not self.throttle.allow(("token", kind), limit, time.time()):
            await self._throttled(send, endpoint)
            return
        if sync:
            await self._sync_import(sync.group(1), receive, send, fate)
        elif cancel:
            sale = self.store.cancel(
                int(cancel.group(1)), now=time.time(), set_flag=not self.faults.cancel_status_only
            )
            if sale is not None and self.faults.cancel_then_timeout > 0:
                # Applied, then answered too late: the client cannot tell it took effect.
                self.faults.cancel_then_timeout -= 1
                await asyncio.sleep(self.faults.slow_s)
            status = 200 if sale else 404
            await self._json(send, endpoint, status, sale or {"message": "sale not found"})
        elif reads[path] == "sales":
            await self._json(send, endpoint, 200, self._sales(_query(scope)))
        else:
            await self._imports(scope, send, endpoint)

    async def _sync_import(self, channel: str, receive: Receive, send: Send, fate: Fate) -> None:
        if channel != str(self.config.channel_id):
            await self._json(send, "sync", 404, {"message": f"channel {channel} not found"})
            return
        body = await _read_body(receive)
        if body is None:
            await self._json(send, "sync", 413, {"message": "body too large"})
            return
        now = time.time()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self.store.log_unreadable(f"$: invalid JSON ({exc})", endpoint="sync", now=now)
            await self._json(
                send,
                "sync",
                400,
                {"message": "invalid JSON", "errors": [{"path": "$", "message": str(exc)}]},
            )
            return
        row, sale, problems = self.store.receive(doc, body, endpoint="sync", now=now)
        if fate.slow_s:
            await asyncio.sleep(fate.slow_s)
        if problems:
            await self._json(
                send,
                "sync",
                self.config.validation_status,
                {
                    "message": "validation failed",
                    "errors": [{"path": p.path, "message": p.message} for p in problems],
                },
            )
        elif row.status == "skipped":
            await self._json(send, "sync", 422, {"message": row.problem, "sale": sale})
        else:
            await self._json(send, "sync", 200, sale)

    def _sales(self, q: dict[str, str]) -> list[dict[str, Any]]:
        """`GET /api/sales.json`: account-wide by externalId (other channels' sales first, as
        an unfiltered lookup may return them), narrowed by `where[channelId]` unless the
        `ignore_channel_filter` fault is on; lines shown as the sale-shape faults say."""
        external_id = q.get("where[externalId]", "")
        own = self.store.sales.get(external_id)
        rows = [*self.store.foreign.get(external_id, []), *([own] if own else [])]
        wanted = q.get("where[channelId]")
        if wanted is not None and not self.faults.ignore_channel_filter:
            rows = [r for r in rows if str(r["channelId"]) == wanted]
        return [self._shown(r) for r in rows]

    def _shown(self, sale: dict[str, Any]) -> dict[str, Any]:
        if self.faults.sales_without_lines:
            return {k: v for k, v in sale.items() if k != "lineItems"}
        if self.faults.sales_catalogue_fields:
            lines = [
                {
                    **line,
                    "name": f"Catalogue {line.get('variant', {}).get('sku', '?')}",
                    "price": round(float(line.get("price") or 0), 2),
                }
                for line in sale.get("lineItems", [])
            ]
            return {**sale, "lineItems": lines}
        return sale

    async def _imports(self, scope: Scope, send: Send, endpoint: str) -> None:
        q = _query(scope)
        try:
            status = q.get("where[status]")
            if status is not None and status not in STATUSES:
                raise ValueError(f"where[status] must be one of {', '.join(STATUSES)}")
            limit = int(q.get("limit", DEFAULT_PAGE_LIMIT))
            offset = int(q.get("offset", 0))
            if not 1 <= limit <= MAX_PAGE_LIMIT or offset < 0:
                raise ValueError(f"limit must be 1..{MAX_PAGE_LIMIT} and offset >= 0")
            gte = q.get("where[createdAt][gte]")
            lt = q.get("where[createdAt][lt]")
            if endpoint != "_sandbox":
                # Undocumented paging, simulated: a server-side page cap, an ignored offset.
                if self.faults.imports_page_cap:
                    limit = min(limit, self.faults.imports_page_cap)
                if self.faults.imports_ignore_offset:
                    offset = 0
            rows = self.store.find_imports(
                external_id=q.get("where[externalId]"),
                status=status,
                created_from=_parse_time(gte) if gte else None,
                created_before=_parse_time(lt) if lt else None,
                offset=offset,
                limit=limit,
            )
        except ValueError as exc:
            await self._json(send, endpoint, 400, {"message": str(exc)})
            return
        channel = q.get("where[channelId]")
        if channel is not None and channel != str(self.config.channel_id):
            rows = []  # the import log holds only this sandbox's channel
        await self._json(send, endpoint, 200, [row.public() for row in rows])

    # -- background apply -----------------------------------------------------------------------

    async def _apply_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if self.faults.out_of_order:
                await asyncio.sleep(self.faults.out_of_order_hold_s)
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            if self.faults.out_of_order:
                batch.reverse()
            for body, received_ts in batch:
                self._apply(body, received_ts)
                self.queue.task_done()
            # Let the event loop serve requests between large batches.
            await asyncio.sleep(0)

    def _apply(self, body: bytes, received_ts: float) -> None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self.store.log_unreadable(f"$: invalid JSON ({exc})", endpoint="async", now=received_ts)
            return
        reject = None
        if self.faults.reject_matching and any(
            marker.encode() in body for marker in self.faults.reject_matching
        ):
            reject = self.faults.reject_problem
        row, _, _ = self.store.receive(doc, body, endpoint="async", now=received_ts, reject=reject)
        if self.faults.imports_backdate_s:
            row.created_ts -= self.faults.imports_backdate_s
            self.store.backdated = True

    # -- helpers ---------------------------------------------------------------------------------

    async def _misbehave(self, send: Send, endpoint: str, fate: Fate) -> bool:
        """Apply an injected fault; True when the request has been answered (or dropped)."""
        if fate.delay_s:
            await asyncio.sleep(fate.delay_s)
        if fate.drop:
            self.requests[(endpoint, "dropped")] += 1
            # Promise a body, send part of it, return: uvicorn closes the connection mid-response.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"64")],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            return True
        if fate.status is not None:
            headers = []
            if fate.status == 429 and self.faults.retry_after_header is not None:
                headers.append((b"retry-after", self.faults.retry_after_header.encode()))
            elif fate.retry_after_s is not None:
                headers.append((b"retry-after", str(round(fate.retry_after_s)).encode()))
            await self._json(send, endpoint, fate.status, {"message": "injected fault"}, headers)
            return True
        return False

    async def _throttled(self, send: Send, endpoint: str) -> None:
        headers = []
        if self.config.throttle_retry_after_s is not None:
            # Not a Jetti header (undocumented); only sent when the operator asks for it.
            retry_after = str(round(self.config.throttle_retry_after_s)).encode()
            headers.append((b"retry-after", retry_after))
        await self._json(send, endpoint, 429, {"message": "too many requests"}, headers)

    async def _json(
        self,
        send: Send,
        endpoint: str,
        status: int,
        payload: Any,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.requests[(endpoint, str(status))] += 1
        body = orjson.dumps(payload)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _inspect(
        self, route: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        from ops.sandbox.inspect import handle  # keeps test-only routes out of the hot module

        await handle(self, route, method, scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _query(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"))
    return {key: values[-1] for key, values in parsed.items()}


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
