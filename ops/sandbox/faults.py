"""Fault injection: what the sandbox does wrong on purpose, settable at start and at run time.

`Faults` is plain data (JSON in `POST /_sandbox/faults`, flags on the CLI); `pick()` decides the
fate of one request. Randomness is a `random.Random` the caller owns, so a seeded run repeats.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS = ("async", "sync", "read", "cancel")
DEFAULT_SLOW_S = 30.0  # longer than any sane client timeout: the client gives up first
DEFAULT_RETRY_AFTER_S = 1.0  # sent with an injected 429 (real Jetti documents no Retry-After)
DEFAULT_OUT_OF_ORDER_HOLD_S = 0.05  # how long the applier gathers async imports to reverse them
DEFAULT_REJECT_PROBLEM = "lineItems[0].variant: rejected by the channel (injected fault)"


@dataclass
class Faults:
    """Every fault knob. Rates are probabilities in [0, 1] per request."""

    latency_ms: float = 0.0  # added to every response
    latency_jitter_ms: float = 0.0  # plus uniform(0, jitter)
    rate_429: float = 0.0
    retry_after_s: float | None = DEFAULT_RETRY_AFTER_S  # on injected 429s; None sends no header
    # Sent verbatim as Retry-After on injected 429s instead of retry_after_s: extremes such as
    # "inf", "nan", "1e9" or an HTTP date in 2100, as a proxy in front of Jetti might send.
    retry_after_header: str | None = None
    error_rate: float = 0.0  # probability of a 5xx, drawn from error_statuses
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    drop_rate: float = 0.0  # connection closed mid-response
    slow_rate: float = 0.0  # answered only after slow_s (async imports are applied anyway)
    slow_s: float = DEFAULT_SLOW_S
    out_of_order: bool = False  # async imports applied newest-first within each batch
    out_of_order_hold_s: float = DEFAULT_OUT_OF_ORDER_HOLD_S
    fail_next: int = 0  # scripted: the next N requests fail with fail_next_status
    # Async imports whose body contains any of these strings are logged as `error` with
    # `reject_problem` (and not applied), the way Jetti reports a rejection after its 200.
    reject_matching: list[str] = field(default_factory=list)
    reject_problem: str = DEFAULT_REJECT_PROBLEM
    fail_next_status: int = 503
    # --- undocumented Jetti behaviour, simulated (docs/reconciler.md: "Assumptions about
    # undocumented Jetti behaviour"); each is off by default, where the sandbox behaves as the
    # relay assumes.
    imports_page_cap: int = 0  # >0: sale-imports.json returns at most this many rows a page
    imports_ignore_offset: bool = False  # sale-imports.json ignores `offset` (always page 1)
    sales_without_lines: bool = False  # sales.json answers without `lineItems`
    sales_catalogue_fields: bool = False  # sale lines show the catalogue name, price to 2 dp
    ignore_channel_filter: bool = False  # sales.json ignores `where[channelId]`
    cancel_status_only: bool = False  # cancel.json sets cancellationStatus, not `cancelled`
    cancel_then_timeout: int = 0  # the next N cancel POSTs apply, then answer after slow_s
    # Async import-log rows are stamped this many seconds before they were applied (a backlog
    # when createdAt is the receipt time): they appear late inside an old window.
    imports_backdate_s: float = 0.0
    endpoints: list[str] = field(default_factory=lambda: list(ENDPOINTS))  # which ones misbehave
    seed: int | None = None

    @property
    def active(self) -> bool:
        """False when no per-request fault can fire (the hot path then skips `pick`)."""
        return bool(
            self.latency_ms
            or self.latency_jitter_ms
            or self.rate_429
            or self.error_rate
            or self.drop_rate
            or self.slow_rate
            or self.fail_next
        )

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with `changes` applied; raises ValueError naming an unknown or bad knob."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        new = dataclasses.replace(self, **changes)
        for name in ("rate_429", "error_rate", "drop_rate", "slow_rate"):
            value = getattr(new, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        bad = set(new.endpoints) - set(ENDPOINTS)
        if bad:
            raise ValueError(f"endpoints: unknown {sorted(bad)}; use {list(ENDPOINTS)}")
        for name in ("fail_next", "imports_page_cap", "cancel_then_timeout"):
            value = getattr(new, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0")
        if not isinstance(new.reject_matching, list) or not all(
            isinstance(x, str) and x for x in new.reject_matching
        ):
            raise ValueError("reject_matching must be a list of non-empty strings")
        if new.retry_after_header is not None and (
            not isinstance(new.retry_after_header, str) or not new.retry_after_header.isprintable()
        ):
            raise ValueError("retry_after_header must be a printable string or null")
        if not isinstance(new.reject_problem, str) or not new.reject_problem:
            raise ValueError("reject_problem must be a non-empty string")
        return new

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Fate:
    """What to do with one request: wait `delay_s`, then answer normally or misbehave."""

    delay_s: float = 0.0
    status: int | None = None  # an injected error status
    retry_after_s: float | None = None
    drop: bool = False
    slow_s: float = 0.0


NORMAL = Fate()


def pick(faults: Faults, endpoint: str, rng: random.Random) -> Fate:
    """The fate of one request to `endpoint`; consumes one scripted failure if any is pending."""
    if endpoint not in faults.endpoints:
        return NORMAL
    delay_s = faults.latency_ms / 1000 + rng.uniform(0, faults.latency_jitter_ms) / 1000
    if faults.fail_next > 0:
        faults.fail_next -= 1
        return Fate(delay_s=delay_s, status=faults.fail_next_status)
    roll = rng.random()
    for rate, fate in (
        (faults.drop_rate, Fate(delay_s=delay_s, drop=True)),
        (faults.slow_rate, Fate(delay_s=delay_s, slow_s=faults.slow_s)),
        (faults.rate_429, Fate(delay_s=delay_s, status=429, retry_after_s=faults.retry_after_s)),
        (faults.error_rate, Fate(delay_s=delay_s, status=rng.choice(faults.error_statuses))),
    ):
        if roll < rate:
            return fate
        roll -= rate
    return Fate(delay_s=delay_s)
