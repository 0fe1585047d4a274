"""The Jetti client: the one seam where httpx exceptions and HTTP statuses become our errors.

Each failure is classified once (STYLE.md 3), always chained with `raise ... from exc`:

    not sent (ConnectError, ConnectTimeout, PoolTimeout)        -> JettiUnavailable(None)
    sent, no answer (Read/WriteTimeout, ReadError, protocol)    -> OutcomeUnknown
    408, 409, 5xx                                               -> JettiUnavailable(status)
    429                                                         -> RateLimited(Retry-After)
    401, 403 (and 404 in sync mode: unknown channel;            -> ConfigurationError
              404, 405, 410 in async mode: wrong URL)
    any other 4xx                                               -> Rejected(status, excerpt)

Secrets never enter error text: details name the exception class only, and response excerpts
have the webhook hash and API token masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
import structlog

from worker.core.answers import CANCELLED_STATUSES as CANCELLED_STATUSES
from worker.core.answers import ImportRow as ImportRow
from worker.core.answers import RetryAfter as RetryAfter
from worker.core.answers import Sale as Sale
from worker.core.answers import SaleLookup as SaleLookup
from worker.core.answers import parse_retry_after as parse_retry_after
from worker.core.answers import retry_after_s as retry_after_s
from worker.core.errors import (
    ConfigurationError,
    JettiUnavailable,
    OutcomeUnknown,
    RateLimited,
    Rejected,
)
from worker.core.limits import DEFAULT_RETRY_AFTER_MAX_S

log = structlog.get_logger("jetti_relay.jetti")

# Longest response excerpt kept in a Rejected error (and so in a dead letter).
MAX_EXCERPT_CHARS = 500
# Replaces a secret wherever one would show.
MASK = "***"
# Largest page of the import log Jetti's API returns (and the sandbox's documented maximum).
IMPORT_PAGE_LIMIT = 1000

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_SENT_NO_ANSWER = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
)
# 408 and 409 are Jetti's "try again" answers, not verdicts on the payload.
_RETRY_STATUSES = frozenset({408, 409})
# On the async endpoint these name the route, not the order: a configuration fault (breaker).
_ASYNC_ROUTE_FAULTS = frozenset({404, 405, 410})


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """A 2xx answer: its status, the sale id (sync mode only) and a masked body excerpt."""

    status: int
    sale_id: int | None
    excerpt: str


def _exchange(send: Callable[[], httpx.Response]) -> httpx.Response:
    """Run one request; a transport fault becomes JettiUnavailable (never sent) or
    OutcomeUnknown (it may have reached Jetti), chained to the httpx cause."""
    try:
        return send()
    except _NOT_SENT as exc:
        raise JettiUnavailable(None, f"request not sent: {type(exc).__name__}") from exc
    except _SENT_NO_ANSWER as exc:
        raise OutcomeUnknown(f"request sent, no answer: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        # Any other transport fault (proxy, unsupported protocol): the request may have left.
        raise OutcomeUnknown(f"transport error: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        # Anything else httpx raises while sending or reading, e.g. a DecodingError for a body
        # a proxy mangled: the request may have been applied. Mapped here so no httpx frame
        # (whose locals hold the Authorization header) escapes into a traceback (reliability #6).
        raise OutcomeUnknown(f"HTTP error: {type(exc).__name__}") from exc


class JettiClient:
    """Submits one manual-sale body to Jetti over an injected `httpx.Client`."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        mode: Literal["async", "sync"],
        async_url: str,
        api_url: str,
        channel_id: int | None,
        webhook_hash: str,
        api_token: str,
        retry_after_max_s: float = DEFAULT_RETRY_AFTER_MAX_S,
    ) -> None:
        self._http = http
        self._mode = mode
        self._channel_id = channel_id
        self._retry_after_max_s = retry_after_max_s
        self._secrets = tuple(s for s in (webhook_hash, api_token) if s)
        self._api_root = f"{api_url.rstrip('/')}/api"
        self._has_token = bool(api_token)
        self._api_headers = {
            "Authorization": f"Bearer {api_token}",
            "Content-Type": "application/json",
        }
        if mode == "sync":
            self._url = f"{self._api_root}/channels/{channel_id}/manual-sale.json"
            self._headers = self._api_headers
        else:
            self._url = async_url
            self._headers = {"jetti-webhook-hash": webhook_hash, "Content-Type": "application/json"}

    def submit(self, body: bytes) -> SubmitResult:
        """POST `body` (JSON bytes) to Jetti; the 2xx result, or one of the errors above.

        Raises JettiUnavailable, OutcomeUnknown, RateLimited (retryable), Rejected (permanent)
        or ConfigurationError (pause the fleet), each chained to the httpx cause.
        """
        response = _exchange(
            lambda: self._http.post(self._url, content=body, headers=self._headers)
        )
        status = response.status_code
        excerpt = self._excerpt(response)
        if response.is_success:
            return SubmitResult(status=status, sale_id=self._sale_id(response), excerpt=excerpt)
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self._classify(status, response, excerpt) from exc
        # 1xx/3xx (redirects are not followed): Jetti never sends them; treat as unavailable.
        raise JettiUnavailable(status, f"unexpected status {status}")

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._http.close()

    # --- synchronous API (Bearer token): the reconciler and cancellations ----------------
    @property
    def has_api_token(self) -> bool:
        """True when a Bearer token is configured (the sync API is usable)."""
        return self._has_token

    def list_imports(
        self,
        *,
        status: str,
        created_from: float,
        created_before: float,
        offset: int = 0,
        limit: int = IMPORT_PAGE_LIMIT,
    ) -> list[ImportRow]:
        """One page of Jetti's import log (`GET /api/sale-imports.json`), oldest first.

        Filters by `status` and the creation window [created_from, created_before) (epoch s).
        Raises the same errors as `submit` (RateLimited on 429, ConfigurationError on 401/403).
        """
        params: dict[str, str | int] = {
            "where[status]": status,
            "where[createdAt][gte]": _iso(created_from),
            "where[createdAt][lt]": _iso(created_before),
            "offset": offset,
            "limit": limit,
        }
        doc = self._api("GET", "/sale-imports.json", params=params)
        if not isinstance(doc, list):
            raise JettiUnavailable(None, "import log answer is not a JSON array")
        return [row for row in (ImportRow.parse(item) for item in doc) if row is not None]

    @property
    def channel_id(self) -> int | None:
        """The configured Jetti channel id (JETTI_RELAY_CHANNEL_ID), None when unset."""
        return self._channel_id

    def find_sale(self, external_id: str) -> SaleLookup:
        """Our channel's sale with this `externalId` (`GET /api/sales.json?where[externalId]=
        ...&where[channelId]=...`).

        Upsert is per (channel, externalId) and the lookup is account-wide (facts §5), so with
        a channel configured both the query and each row's `channelId` must name it: a row of
        another channel (the filter ignored) is skipped and counted in `others`, never taken
        (reliability #4a); a row naming no channel is skipped and counted in `unverified`.
        Without a channel id any matching row is taken (async mode without CHANNEL_ID: the
        reconciler only; cancellations refuse to run without one).
        """
        params: dict[str, str | int] = {"where[externalId]": external_id}
        if self._channel_id is not None:
            params["where[channelId]"] = self._channel_id
        doc = self._api("GET", "/sales.json", params=params)
        if not isinstance(doc, list):
            raise JettiUnavailable(None, "sales answer is not a JSON array")
        others = unverified = 0
        for item in doc:
            sale = Sale.parse(item)
            if sale is None or sale.external_id != external_id:
                continue
            if self._channel_id is not None and sale.channel_id is None:
                # Whether sales.json rows carry channelId is undocumented: a row without one
                # cannot be proven ours, and cancelling another channel's sale is the worst
                # outcome; the order waits and ends as a dead letter saying why.
                unverified += 1
                continue
            if self._channel_id is not None and sale.channel_id != self._channel_id:
                others += 1
                continue
            return SaleLookup(sale, others, unverified)
        return SaleLookup(None, others, unverified)

    def imports_of(self, external_id: str) -> list[ImportRow]:
        """Import-log rows of one order (`GET /api/sale-imports.json?where[externalId]=...`,
        our channel's when configured), as Jetti returns them (up to IMPORT_PAGE_LIMIT).

        Only documented equality filters (`where[...]`); the page limit is a request Jetti
        may cap, so the caller must not conclude "no row" from a full page.
        """
        params: dict[str, str | int] = {
            "where[externalId]": external_id,
            "limit": IMPORT_PAGE_LIMIT,
        }
        if self._channel_id is not None:
            params["where[channelId]"] = self._channel_id
        doc = self._api("GET", "/sale-imports.json", params=params)
        if not isinstance(doc, list):
            raise JettiUnavailable(None, "import log answer is not a JSON array")
        rows = [row for row in (ImportRow.parse(item) for item in doc) if row is not None]
        return [r for r in rows if r.external_id == external_id]

    def cancel_sale(self, sale_id: int) -> Sale | None:
        """Cancel every item of a sale (`POST /api/sales/{id}/cancel.json`).

        Returns the sale as Jetti answers it (None when the answer has no readable sale).
        A 404 (no such sale) is `Rejected`; other errors as for `submit`.
        """
        doc = self._api("POST", f"/sales/{sale_id}/cancel.json", body=b"{}")
        return Sale.parse(doc)

    def _api(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: bytes | None = None,
    ) -> Any:
        response = _exchange(
            lambda: self._http.request(
                method,
                self._api_root + path,
                params=params,
                content=body,
                headers=self._api_headers,
            )
        )
        status = response.status_code
        if not response.is_success:
            excerpt = self._excerpt(response)
            if status == 404:
                # On the API routes a 404 names the resource (a sale), not our configuration.
                raise Rejected(status, excerpt)
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                raise self._classify(status, response, excerpt) from exc
            raise JettiUnavailable(status, f"unexpected status {status}")
        try:
            # Decimal, as the transform writes money: a logged payload re-hashes exactly.
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise JettiUnavailable(status, "answer is not JSON") from exc

    def _classify(
        self, status: int, response: httpx.Response, excerpt: str
    ) -> ConfigurationError | JettiUnavailable | RateLimited | Rejected:
        if status == 429:
            return self._rate_limited(response.headers.get("Retry-After"))
        if status in _RETRY_STATUSES or status >= 500:
            return JettiUnavailable(status, f"Jetti answered {status}")
        if status in (401, 403):
            return ConfigurationError(status, f"Jetti refused our credentials ({status})")
        if status == 404 and self._mode == "sync":
            return ConfigurationError(status, "Jetti does not know the configured channel (404)")
        if status in _ASYNC_ROUTE_FAULTS and self._mode == "async":
            # The async endpoint has no per-order resource: "no such route/method" is our URL
            # (or, undocumented, an unknown hash), never a verdict on one order (reliability #10).
            return ConfigurationError(
                status,
                f"the async import URL is wrong or refused ({status}): check "
                "JETTI_RELAY_JETTI_ASYNC_URL and the webhook hash",
            )
        return Rejected(status, excerpt)

    def _rate_limited(self, header: str | None) -> RateLimited:
        parsed = parse_retry_after(header, max_s=self._retry_after_max_s)
        if parsed.note is not None:
            # Logged here, counted by the caller (the note travels on the error): a proxy's
            # absurd header must be visible, never obeyed as sent (reliability #8).
            log.warning(
                "retry_after_adjusted",
                note=parsed.note,
                header=(header or "")[:40],
                used_s=parsed.seconds,
                max_s=self._retry_after_max_s,
            )
        return RateLimited(parsed.seconds, status=429, retry_after_note=parsed.note)

    def _excerpt(self, response: httpx.Response) -> str:
        text = response.text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text[:MAX_EXCERPT_CHARS]

    def _sale_id(self, response: httpx.Response) -> int | None:
        if self._mode != "sync":
            return None
        try:
            doc = json.loads(response.content)
        except ValueError:
            return None
        if isinstance(doc, dict):
            sale = doc.get("id")
            # bool is an int subclass; a boolean id is not an id.
            if isinstance(sale, int) and not isinstance(sale, bool):
                return sale
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
