"""The data of every console page: one function per page, returning the JSON-ready dict that
the page's template renders and its `/api/...` twin answers unchanged.

Every read is bounded: counts from the indexes (ZCARD), the last hour from the per-minute
counters, listings a page at a time through the stores' own queries (`OrderQuery`, the
dead-letter listing) with a limit and a cursor or offset; never a key scan, never a walk of all
orders or all dead letters. Personal data and secrets are treated as the CLI treats them: emails
in errors masked (`mask_text`), the deployment's secrets replaced (`hide_secrets`), a dead
letter's raw order and payload masked as `dlq show` masks them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from ops.commands.order import order_view
from ops.dlq.views import summary_row
from ops.monitoring.checks import (
    STORE_CHECKS,
    Thresholds,
    check_reconciler,
    pump_max_age_s,
    run_checks,
    sweeper_max_age_s,
)
from ops.monitoring.sources import Sources
from worker import wiring
from worker.core.dead_entry import MASK, SECRET_MASK, masked
from worker.core.order_diff import diff_raw, payload_preview
from worker.core.privacy import (
    decode_document,
    hide_secrets,
    mask_text,
    scrub_bytes,
    scrub_personal_data,
)
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.alerts import alert_states
from worker.store.dead_query import DeadFilter, search_entries
from worker.store.minute_stats import MinuteStats
from worker.store.order_query import BACKLOG_STATES, OrderPage, OrderQuery
from worker.store.reconcile_state import read_status as read_reconcile_status

# Minutes the overview's charts cover.
OVERVIEW_MINUTES = 60
# Rows per listing page (the JSON twins accept `limit` up to MAX_PAGE_ROWS).
PAGE_ROWS = 50
MAX_PAGE_ROWS = 200
# Deepest offset the dead-letter listing pages to: beyond it, narrow the filters (or use the
# CLI's export): an offset costs reading the entries before it.
MAX_DEAD_OFFSET = 2000
# Index members one dead-letters page may examine when its filter reads entries (error text,
# HTTP status, source): reading 10,000 entries that match little took 0.5-0.9 s.
DEAD_SCAN_LIMIT = 1000
# The roles whose heartbeats the overview lists (worker/pipeline/maintenance.py writes them).
HEARTBEAT_ROLES = ("pump", "sweeper")


@dataclass(frozen=True)
class PageContext:
    """What the pages read: the deployment's sources (stores and broker queue)."""

    sources: Sources

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.sources.stores.settings.secret_values)


def _mask_row(row: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    row = dict(row)
    row["last_error"] = mask_text(row["last_error"], MASK)
    result: dict[str, Any] = hide_secrets(row, secrets, SECRET_MASK)
    return result


def _rows(page: OrderPage, secrets: tuple[str, ...]) -> list[dict[str, Any]]:
    # OrderRow.last_error may quote Jetti's answer with an email in it: masked as `orders list`.
    return [_mask_row(r.to_dict(), secrets) for r in page.rows]


# --- overview -------------------------------------------------------------------------------
def overview(ctx: PageContext, *, now: float | None = None) -> dict[str, Any]:
    """Orders by state, the last hour per minute, dead letters by reason, breaker, limiter
    block, reconciler lag, heartbeats and the cheap health checks."""
    now = time.time() if now is None else now
    src = ctx.sources
    stores = src.stores
    counts = stores.ledger.state_counts()
    minutes = MinuteStats(stores.client, stores.keys).last(OVERVIEW_MINUTES, now=now)
    hour = MinuteStats.total(minutes)
    dead = stores.dead.stats()
    breaker = stores.breaker.state()
    blocked_raw = stores.client.get(stores.keys.blocked_until())
    blocked_until = float(blocked_raw) if blocked_raw is not None else None
    recon = read_reconcile_status(stores.client, stores.keys)
    lag = recon.lag_s(now) if recon.last_run_at is not None else None
    beats: list[dict[str, Any]] = []
    pipe = stores.client.pipeline(transaction=False)
    for role in HEARTBEAT_ROLES:
        pipe.hgetall(stores.keys.heartbeat(role))
    for role, holders in zip(HEARTBEAT_ROLES, pipe.execute(), strict=True):
        for holder, at in sorted(holders.items()):
            beats.append(
                {
                    "role": role,
                    "holder": holder.decode(),
                    "at": float(at),
                    "age_s": round(max(0.0, now - float(at)), 1),
                }
            )
    settings = stores.settings
    limits = Thresholds(
        max_pump_age_s=pump_max_age_s(settings.pump_interval_s),
        max_sweeper_age_s=sweeper_max_age_s(settings.sweep_interval_s),
    )
    checks = list(STORE_CHECKS)  # the cheap ones: no broker ping, no server INFO
    if settings.reconcile_active:
        checks.append(("reconciler", check_reconciler))
    results = run_checks(src, limits, checks, now=now)

    def p(minute_q: float | None) -> float | None:
        return None if minute_q is None else round(minute_q * 1000, 1)

    return {
        "at": now,
        "orders": {str(s): counts[s] for s in OrderState},
        "orders_total": sum(counts.values()),
        "hour": {
            "received": hour.received,
            "submitted": hour.submitted,
            "dead": hour.dead,
            "retries": hour.retries,
            "latency_p50_ms": p(hour.latency_quantile_s(0.5)),
            "latency_p95_ms": p(hour.latency_quantile_s(0.95)),
        },
        "minutes": [
            {
                "start": m.start,
                "received": m.received,
                "submitted": m.submitted,
                "dead": m.dead,
                "retries": m.retries,
                "latency_p50_ms": p(m.latency_quantile_s(0.5)),
                "latency_p95_ms": p(m.latency_quantile_s(0.95)),
            }
            for m in minutes
        ],
        "dead_letters": {
            "total": dead.total,
            "still_dead": dead.by_status[DeadStatus.DEAD],
            "by_reason": {str(r): dead.by_reason[r] for r in DeadReason},
            "dead_by_reason": {str(r): dead.dead_by_reason[r] for r in DeadReason},
            "oldest_dead_at": dead.oldest_dead_at,
        },
        "breaker": {
            "state": breaker.state,
            "reason": hide_secrets(breaker.reason, ctx.secrets, SECRET_MASK),
            "status": breaker.status,
            "since": breaker.since,
        },
        "limiter": {
            "blocked_until": blocked_until,
            "blocked_for_s": None
            if blocked_until is None or blocked_until <= now
            else round(blocked_until - now, 1),
        },
        "reconciler": {
            "active": settings.reconcile_active,
            "last_run_at": recon.last_run_at,
            "lag_s": None if lag is None else round(lag, 1),
            "last_error": hide_secrets(recon.last_error, ctx.secrets, SECRET_MASK),
        },
        "heartbeats": beats,
        "checks": [asdict(c) for c in results],
    }


# --- dead letters ---------------------------------------------------------------------------
def dead_letters(
    ctx: PageContext, flt: DeadFilter, *, offset: int = 0, limit: int = PAGE_ROWS
) -> dict[str, Any]:
    """One page of dead letters matching `flt`, newest first (the rows of `dlq list --json`),
    with the counts by reason and status from the indexes."""
    stores = ctx.sources.stores
    limit = max(1, min(limit, MAX_PAGE_ROWS))
    offset = max(0, min(offset, MAX_DEAD_OFFSET))
    # One more than the page tells whether there is a next one. A filter only the entries can
    # answer (error text, HTTP status, source) examines at most DEAD_SCAN_LIMIT index members
    # per page; `older_until` then continues the search with older entries.
    reads_entries = (
        flt.error_contains is not None or flt.http_status is not None or flt.source is not None
    )
    found = search_entries(
        stores.dead,
        flt,
        offset=offset,
        limit=limit + 1,
        max_examined=DEAD_SCAN_LIMIT if reads_entries else None,
    )
    entries = found.entries
    stats = stores.dead.stats()
    return {
        "filter": {k: (None if v is None else str(v)) for k, v in asdict(flt).items()},
        "rows": [summary_row(e, ctx.secrets) for e in entries[:limit]],
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit
        if len(entries) > limit and offset + limit <= MAX_DEAD_OFFSET
        else None,
        "examined": found.examined,
        "older_until": found.older_until,
        "total": stats.total,
        "by_reason": {str(r): stats.by_reason[r] for r in DeadReason},
        "by_status": {str(s): stats.by_status[s] for s in DeadStatus},
    }


def dead_letter(
    ctx: PageContext, order_key: str, *, editable: bool = False
) -> dict[str, Any] | None:
    """What `dlq show --json` shows for one entry (personal data masked, secrets always) with
    the ledger's state, or None when there is no entry. With `editable` (an operator's view),
    `edit_raw` is the stored raw order unmasked, as `dlq replay --edit` opens it: the text an
    edit-and-replay starts from (a masked copy would send the masks)."""
    stores = ctx.sources.stores
    entry = stores.dead.get(order_key)
    if entry is None:
        return None
    view = masked(entry, include_personal_data=False, secrets=ctx.secrets)
    order = stores.ledger.get(order_key)
    view["ledger_state"] = None if order is None else str(order.state)
    if editable:
        stored = order.raw if order is not None and order.raw is not None else entry.raw
        document = decode_document(stored)
        view["edit_raw"] = (
            document
            if isinstance(document, str) or document is None
            else json.dumps(document, indent=2, ensure_ascii=False)
        )
    return view


# --- orders ---------------------------------------------------------------------------------
def orders(
    ctx: PageContext,
    *,
    prefix: str | None,
    states: list[OrderState],
    since: float | None,
    until: float | None,
    cursor: str | None,
    limit: int = PAGE_ROWS,
) -> dict[str, Any]:
    """One page of `orders list`: by key prefix, states and received time (raises BadCursor
    or ValueError for a bad cursor or limit)."""
    src = ctx.sources
    query = OrderQuery(src.client, src.keys)
    page = query.search(
        prefix=prefix or None,
        states=states,
        since=since,
        until=until,
        limit=max(1, min(limit, MAX_PAGE_ROWS)),
        cursor=cursor or None,
    )
    return {
        "filter": {
            "prefix": prefix or None,
            "states": [str(s) for s in states],
            "since": since,
            "until": until,
        },
        "rows": _rows(page, ctx.secrets),
        "next_cursor": page.next_cursor,
        "examined": page.examined,
        "counts": {str(s): n for s, n in src.ledger.state_counts().items()},
    }


def order(ctx: PageContext, order_key: str) -> dict[str, Any] | None:
    """What `order show --json` shows, the payload the worker would send from the stored raw
    order, and the changes from the version it replaced; None when nothing is known."""
    stores = ctx.sources.stores
    view = order_view(stores, order_key, personal=False)
    if view is None:
        return None
    entry = stores.ledger.get(order_key)
    preview: dict[str, Any] = {"payload": None, "payload_hash": None, "error": None}
    changes: list[dict[str, Any]] = []
    if entry is not None:
        settings = stores.settings
        built = payload_preview(entry, wiring.rules(settings), wiring.build_options(settings))
        # The payload and the diff hold the customer's name and address: masked as `dlq show`
        # masks a raw order (a changed name shows as a change of masked values).
        preview = {
            "payload": scrub_personal_data(built.payload, MASK),
            "payload_hash": built.payload_hash,
            "error": mask_text(built.error, MASK),
        }
        if entry.raw is not None and entry.prev_raw is not None:
            before = scrub_bytes(entry.prev_raw, MASK) or b""
            after = scrub_bytes(entry.raw, MASK) or b""
            changes = [asdict(c) for c in diff_raw(before, after)]
    view["payload_preview"] = preview
    view["changes"] = changes
    view["has_previous_version"] = entry is not None and entry.prev_raw is not None
    result: dict[str, Any] = hide_secrets(view, ctx.secrets, SECRET_MASK)
    return result


def backlog(
    ctx: PageContext, state: OrderState, *, cursor: str | None, limit: int = PAGE_ROWS
) -> dict[str, Any]:
    """The orders waiting in `state` (pending, retry_wait or submitting) in backlog order,
    with their next attempt and last error (raises ValueError for another state)."""
    src = ctx.sources
    query = OrderQuery(src.client, src.keys)
    page = query.backlog(state, limit=max(1, min(limit, MAX_PAGE_ROWS)), cursor=cursor or None)
    counts = src.ledger.state_counts()
    return {
        "state": str(state),
        "states": {str(s): counts[s] for s in BACKLOG_STATES},
        "rows": _rows(page, ctx.secrets),
        "next_cursor": page.next_cursor,
        "examined": page.examined,
    }


# --- replay jobs ----------------------------------------------------------------------------
# Jobs the page lists, newest first.
JOBS_LISTED = 20
# Dead letters an estimate shows.
ESTIMATE_SAMPLE = 10


def jobs(ctx: PageContext, flt: DeadFilter | None) -> dict[str, Any]:
    """The newest replay jobs with their progress; with `flt`, the dry-run count and a sample
    of what a job over it would replay (`dlq replay --job`'s estimate)."""
    from ops.dlq.jobs import estimate, list_jobs

    stores = ctx.sources.stores
    listed = [j.to_dict() for j in list_jobs(stores, JOBS_LISTED)]
    doc: dict[str, Any] = {
        "jobs": listed,
        "running": any(j["state"] in ("pending", "running") for j in listed),
        "estimate": None,
    }
    if flt is not None:
        est = estimate(stores, flt, sample=ESTIMATE_SAMPLE)
        doc["estimate"] = {
            "filter": {k: v for k, v in asdict(flt).items() if v is not None},
            "count": est.count,
            "sample": [summary_row(e, ctx.secrets) for e in est.sample],
        }
    result: dict[str, Any] = hide_secrets(doc, ctx.secrets, SECRET_MASK)
    return result


# --- alerts ---------------------------------------------------------------------------------
def alerts(ctx: PageContext, *, now: float | None = None) -> dict[str, Any]:
    """Every alert's state: firing or not, its figures, who acknowledged or silenced it."""
    now = time.time() if now is None else now
    src = ctx.sources
    states = [s.to_dict(now=now) for s in alert_states(src.client, src.keys)]
    result: dict[str, Any] = hide_secrets(
        {"alerts": states, "firing": sum(1 for s in states if s["status"] == "firing")},
        ctx.secrets,
        SECRET_MASK,
    )
    return result


# --- the benchmark's list -------------------------------------------------------------------
def bench_paths(ctx: PageContext) -> list[str]:
    """Every page and JSON twin, with a real order key, dead-letter key and prefix search
    picked from the store now (the newest received order, the newest dead letter)."""
    from urllib.parse import quote

    src = ctx.sources
    newest = src.client.zrevrange(src.keys.received_index(), 0, 0)
    dead = src.client.zrevrange(src.keys.dead_index(), 0, 0)
    paths = ["/", "/dead-letters", "/orders", "/backlog", "/jobs", "/alerts"]
    if newest:
        key = newest[0].decode()
        prefix = key.split(":", 1)[0] + ":" if ":" in key else key[:3]
        paths += [f"/orders/entry?key={quote(key)}", f"/orders?prefix={quote(prefix)}"]
        paths.append("/orders?state=retry_wait")
    if dead:
        paths.append(f"/dead-letters/entry?key={quote(dead[0].decode())}")
    paths.append("/dead-letters?reason=rejected")
    # the slow shapes of a dead-letter listing: a filter only entries answer (bounded), a deep
    # page, and a key glob
    paths.append("/dead-letters?error=no-such-text")
    paths.append(f"/dead-letters?offset={MAX_DEAD_OFFSET - PAGE_ROWS}")
    paths.append(f"/dead-letters?key={quote('shop-a:*')}")
    paths.append("/backlog?state=pending")
    paths.append("/jobs?estimate=1&reason=rejected")
    return [p for path in paths for p in (path, "/api" + ("/overview" if path == "/" else path))]
