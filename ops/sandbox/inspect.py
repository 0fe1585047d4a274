"""Test-only routes under `/_sandbox/`: never throttled, never faulted, no auth (loopback only).

Every route first waits (up to INSPECT_WAIT_S) until every async import received so far is
applied, so a test reads a settled state without sleeping; `?wait=0` skips the wait.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ops.sandbox.app import Receive, SandboxApp, Scope, Send


async def handle(
    app: SandboxApp, route: str, method: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve `/_sandbox/<route>`; 404 for anything else."""
    from ops.sandbox.app import INSPECT_WAIT_S, _query, _read_body

    q = _query(scope)
    # `?wait=0` reads at once (a benchmark polling stats under load must not stall).
    if q.get("wait") != "0":
        try:
            await asyncio.wait_for(app.queue.join(), INSPECT_WAIT_S)
        except TimeoutError:
            await app._json(send, "_sandbox", 503, {"message": "applier is still busy"})
            return
    if route == "stats" and method == "GET":
        await app._json(send, "_sandbox", 200, stats(app))
    elif route == "reset" and method == "POST":
        app._reset_state()
        await app._json(send, "_sandbox", 200, {"reset": True})
    elif route == "faults" and method in ("GET", "POST"):
        if method == "POST":
            try:
                changes = orjson.loads(await _read_body(receive) or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object of fault knobs")
                app.faults = app.faults.updated(changes)
            except (ValueError, TypeError) as exc:
                await app._json(send, "_sandbox", 400, {"message": str(exc)})
                return
        await app._json(send, "_sandbox", 200, app.faults.public())
    elif route == "sales" and method == "GET":
        sale = app.store.sales.get(q.get("externalId", ""))
        await app._json(send, "_sandbox", 200, [sale] if sale else [])
    elif route == "foreign-sales" and method in ("GET", "POST"):
        # Another channel's sales with the same externalId (the account-wide lookup's trap).
        if method == "POST":
            doc = orjson.loads(await _read_body(receive) or b"{}")
            app.store.add_foreign_sale(
                str(doc["externalId"]), int(doc["channelId"]), now=time.time()
            )
        rows = app.store.foreign.get(q.get("externalId", ""), [])
        await app._json(send, "_sandbox", 200, rows)
    elif route == "history" and method == "GET":
        receipts = app.store.history.get(q.get("externalId", ""), [])
        await app._json(send, "_sandbox", 200, [r.public() for r in receipts])
    elif route == "cancellations" and method == "GET":
        await app._json(send, "_sandbox", 200, app.store.cancellations())
    elif route == "requests" and method == "GET":
        # The sync-API request log: [{at, method, path, query}], oldest first; `?path=` filters.
        wanted = q.get("path")
        rows = [
            {"at": at, "method": m, "path": p, "query": qs}
            for at, m, p, qs in app.request_log
            if wanted is None or p == wanted
        ]
        await app._json(send, "_sandbox", 200, rows)
    elif route == "imports" and method == "GET":
        await app._imports(scope, send, "_sandbox")
    else:
        await app._json(send, "_sandbox", 404, {"message": "not found"})


def stats(app: SandboxApp) -> dict[str, Any]:
    """Requests by endpoint and status plus the store's counters (all O(1) to read)."""
    by_endpoint: dict[str, dict[str, int]] = {}
    for (endpoint, status), count in app.requests.items():
        by_endpoint.setdefault(endpoint, {})[status] = count
    return {"requests": by_endpoint, "queued": app.queue.qsize(), **app.store.summary()}
