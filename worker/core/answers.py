"""Jetti's answers, parsed: sales, import-log rows and `Retry-After`.

Pure parsing of what the Jetti client receives (no httpx, no IO); `worker.jetti.client` re-exports
every name. Much of it is undocumented (facts §1, §2.6, §4, §5), so each parser keeps only what
it can read and says what it could not (`Sale.has_lines`, `RetryAfter.note`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from worker.core.limits import DEFAULT_RETRY_AFTER_MAX_S


def _parse_ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One row of Jetti's import log (`sale-imports`): what happened to one import.

    `payload` is the body Jetti logged for the import when its answer carries one (the
    reconciler compares it with what it last sent), else None.
    """

    id: int
    created_at: float
    status: str
    external_id: str | None
    sale_id: int | None
    problem: str | None
    payload: Any

    @classmethod
    def parse(cls, item: Any) -> ImportRow | None:
        """A row from one JSON object of the answer; None when it lacks an id or a time."""
        if not isinstance(item, dict):
            return None
        row_id = _int_or_none(item.get("id"))
        created = _parse_ts(item.get("createdAt"))
        if row_id is None or created is None:
            return None
        external = item.get("externalId")
        problem = item.get("problem")
        return cls(
            id=row_id,
            created_at=created,
            status=str(item.get("status") or ""),
            external_id=None if external is None else str(external),
            sale_id=_int_or_none(item.get("saleId")),
            problem=problem if isinstance(problem, str) else None,
            payload=item.get("payload"),
        )


# `cancellationStatus` values that mean a cancel already took effect (facts §5: none ->
# partial/full after cancel.json). Whether cancel.json also sets `cancelled` is undocumented.
CANCELLED_STATUSES = frozenset({"partial", "full"})


@dataclass(frozen=True, slots=True)
class Sale:
    """The parts of a Jetti sale the relay reads: id, externalId, channel, cancellation and
    lines. `has_lines` is False when the answer carried no `lineItems` array at all (embedding
    them is undocumented, facts §2.6): nothing to compare, not "no lines"."""

    id: int
    external_id: str | None
    cancelled_flag: bool
    line_items: tuple[dict[str, Any], ...]
    channel_id: int | None = None
    cancellation_status: str | None = None
    has_lines: bool = True

    @property
    def cancelled(self) -> bool:
        """True when a cancel took effect: the `cancelled` flag, or `cancellationStatus`
        partial or full (reliability #4c: the status is the documented signal)."""
        return self.cancelled_flag or self.cancellation_status in CANCELLED_STATUSES

    @classmethod
    def parse(cls, item: Any) -> Sale | None:
        """A sale from one JSON object; None without an integer id."""
        if not isinstance(item, dict):
            return None
        sale_id = _int_or_none(item.get("id"))
        if sale_id is None:
            return None
        external = item.get("externalId")
        lines = item.get("lineItems")
        status = item.get("cancellationStatus")
        return cls(
            id=sale_id,
            external_id=None if external is None else str(external),
            cancelled_flag=item.get("cancelled") is True,
            line_items=tuple(x for x in lines if isinstance(x, dict))
            if isinstance(lines, list)
            else (),
            channel_id=_int_or_none(item.get("channelId")),
            cancellation_status=status if isinstance(status, str) else None,
            has_lines=isinstance(lines, list),
        )


@dataclass(frozen=True, slots=True)
class SaleLookup:
    """A sale lookup's answer: our channel's sale (or None), how many rows of other channels
    with the same externalId were skipped, and how many rows naming no channel at all (which
    cannot be proven ours, so are skipped too)."""

    sale: Sale | None
    others: int = 0
    unverified: int = 0


RetryAfterNote = Literal["clamped", "ignored"]


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """A parsed `Retry-After`: the seconds to obey (None: use the default pause) and, when the
    header was not taken as sent, why (`clamped` to the bound, or `ignored` as unusable)."""

    seconds: float | None
    note: RetryAfterNote | None = None


def parse_retry_after(
    value: str | None, *, max_s: float = DEFAULT_RETRY_AFTER_MAX_S, now: datetime | None = None
) -> RetryAfter:
    """The wait a `Retry-After` header asks for (delta-seconds or HTTP-date), bounded.

    Jetti documents no Retry-After (facts §1); a CDN or proxy in front of it may send anything,
    and the value pauses the whole fleet (reliability #8). So: a date in the past gives 0; a wait
    above `max_s` (a huge number, a date years ahead) is clamped to `max_s`; `inf`, `nan`, a
    negative number and garbage are ignored (seconds None: the caller's default pause).
    """
    if value is None:
        return RetryAfter(None)
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _http_date_wait_s(value, now)
    if seconds is None:
        return RetryAfter(None, "ignored")
    if not math.isfinite(seconds) or seconds < 0:
        return RetryAfter(None, "ignored")
    if seconds > max_s:
        return RetryAfter(max_s, "clamped")
    return RetryAfter(seconds)


def _http_date_wait_s(value: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retry_after_s(
    value: str | None, *, max_s: float = DEFAULT_RETRY_AFTER_MAX_S, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header (`parse_retry_after`), else None."""
    return parse_retry_after(value, max_s=max_s, now=now).seconds
