"""The reconciler's verdicts: pure decisions over an import-log row, a sale and a ledger entry.

`worker.pipeline.reconciler` reads Jetti's import log and the ledger, then asks these functions
what a row means: is the error about the payload last sent (`refers_to_last_sent`), does a sale
carry our last payload (`sale_matches`), did an earlier pass die between its ledger write and its
dead letter (`lacks_letter`), and is a confirmation candidate one whose sale must be checked
first (`ConfirmCandidate`). `ReconcileStatus` is the stored figures' meaning for `metrics`,
`health` and `order show`. No Redis, no clock, no HTTP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from worker.core.answers import ImportRow, Sale
from worker.core.dead_entry import DeadEntry
from worker.core.importlog import SaleVerdict, compare_sale
from worker.core.jsonio import dumps_canonical
from worker.core.records import OrderEntry
from worker.core.states import DeadReason, OrderState

# A row's `createdAt` may precede our `submitted_at` by the request's duration and clock skew.
# Used only for rows that carry no payload to compare.
DEFAULT_TOLERANCE_S = 60.0

# The counters of the reconciler's stats hash (`Keys.reconcile_stats`), in display order.
COUNT_FIELDS = (
    "runs",
    "requests",
    "rows_read",
    "rejected",
    "stale_errors",
    "confirmed",
    "repaired",
    "sale_checks",
    "failed_runs",
    "trailing_reads",
)


@dataclass(frozen=True)
class ReconcileStatus:
    """The reconciler's figures as stored in Redis (for metrics, health, order show)."""

    checkpoint: float | None
    last_run_at: float | None
    last_ok_at: float | None
    last_error: str | None
    holder: str | None
    interval_s: float | None
    grace_s: float | None
    counts: dict[str, int]

    def lag_s(self, now: float) -> float | None:
        """How far the import log read lags behind `now` (None before the first run)."""
        return None if self.checkpoint is None else max(0.0, now - self.checkpoint)

    def behind(self, now: float) -> bool:
        """True when no run succeeded for three intervals (or the grace, if longer)."""
        if self.interval_s is None:
            return False
        limit = max(3 * self.interval_s, self.grace_s or 0.0)
        last = self.last_ok_at
        return last is None or now - last > limit


@dataclass(frozen=True)
class ConfirmCandidate:
    """A member of the SUBMITTED index with the ledger fields confirmation looks at (None: the
    field is absent, as on an entry gone since the index was read)."""

    order_key: str
    state: str | None
    payload_hash: str | None
    enqueued_at: float
    first_seen_at: float

    @property
    def confirmable(self) -> bool:
        """Still SUBMITTED, with the hash of what was sent to compare-and-set on."""
        return self.state == str(OrderState.SUBMITTED) and bool(self.payload_hash)

    @property
    def had_versions(self) -> bool:
        """More than one version was enqueued: Jetti may have applied them out of order, so its
        sale is checked before the order is confirmed."""
        return self.enqueued_at > self.first_seen_at


def canonical_hash(payload: Any) -> str | None:
    """The payload hash of a logged payload (as the worker hashes what it sends), or None."""
    try:
        body = payload.encode() if isinstance(payload, str) else dumps_canonical(payload)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(body).hexdigest()


def sale_matches(sale: Sale, payload: dict[str, Any]) -> bool:
    """False only on a positive difference: a line of `payload` missing from the sale, or its
    quantity different (`worker.core.importlog.compare_sale`); names, prices and missing lines
    arrays are not differences (reliability #5a)."""
    return compare_sale(sale, payload) is not SaleVerdict.DIFFERS


def refers_to_last_sent(row: ImportRow, entry: OrderEntry, *, tolerance_s: float) -> bool | None:
    """True: the error is about the payload last sent. False: about an older payload.
    None: nothing to decide (the order is not waiting on Jetti's verdict).

    A row with a payload is compared by its canonical hash; one without must have been created
    no earlier than `tolerance_s` before our last submission."""
    if entry.state not in (OrderState.SUBMITTED, OrderState.CONFIRMED):
        return None
    if not entry.payload_hash:
        return None
    if row.payload is not None:
        return canonical_hash(row.payload) == entry.payload_hash
    submitted = entry.submitted_at
    return submitted is not None and row.created_at >= submitted - tolerance_s


def lacks_letter(entry: OrderEntry, row: ImportRow, letter: DeadEntry | None) -> bool:
    """The order is DEAD by an import-log rejection no later than `row`, and no dead letter
    (`letter`, the one stored under its key) was written since it went DEAD: a pass crashed
    after the ledger write."""
    if entry.state is not OrderState.DEAD:
        return False
    if entry.dead_reason is not DeadReason.REJECTED_BY_JETTI:
        return False
    if row.created_at > entry.state_since:
        return False
    return letter is None or letter.last_dead_at < entry.state_since


def rejection_error(row: ImportRow) -> tuple[str, str]:
    """Jetti's problem text for `row` and the dead letter's error line naming the row."""
    problem = row.problem or "(Jetti gave no problem text)"
    return problem, f"Jetti import log #{row.id}: {problem}"


def logged_payload(row: ImportRow) -> bytes | None:
    """The payload Jetti logged with `row`, as canonical bytes (None if absent or unencodable)."""
    if row.payload is None:
        return None
    try:
        return dumps_canonical(row.payload)
    except (TypeError, ValueError):
        return None
