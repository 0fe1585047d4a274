"""Plain records the ledger, the worker and the dead-letter store share.

They live here (not in the ledger) so the dead-letter store and the pure core can import them
without importing the ledger's Redis code. `worker.store.ledger` re-exports them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from worker.core.states import DeadReason, OrderState


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission attempt of one order.

    `at` is epoch seconds; `status` the HTTP status when Jetti answered, else None;
    `error_class` the name of the jetti-relay error raised (None on success); `excerpt` a short
    piece of the response with secrets already masked by the caller; `worker` the worker's
    hostname or id; `outcome` a short word such as "submitted", "retry", "dead".
    """

    at: float
    status: int | None
    error_class: str | None
    excerpt: str | None
    worker: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with exactly the dataclass fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        """Inverse of `to_dict`. Unknown keys are ignored so older readers survive new fields.

        Raises KeyError when `at`, `worker` or `outcome` is missing.
        """
        status = data.get("status")
        return cls(
            at=float(data["at"]),
            status=int(status) if status is not None else None,
            error_class=data.get("error_class"),
            excerpt=data.get("excerpt"),
            worker=str(data["worker"]),
            outcome=str(data["outcome"]),
        )


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """The version of an order: `updated_at` in epoch milliseconds (0 when absent or naive),
    then the arrival sequence. Compared as a tuple; a later arrival with the same timestamp wins."""

    ts_ms: int
    seq: int


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A raw order as a producer hands it to the ledger.

    `raw` is the order's bytes as stored (canonical JSON); `updated_at` its timestamp, which
    only counts when timezone-aware (without one the copy is ordered after every earlier copy,
    by arrival); `cancelled` is True when the raw order carries `cancelled_at` (a cancellation
    is terminal: see `Ledger.record_many`).
    """

    order_key: str
    raw: bytes
    updated_at: datetime | None
    source: str | None
    cancelled: bool = False
    trace: str | None = None  # the W3C traceparent of the producer's span (tracing on), or None


class RecordOutcome(StrEnum):
    """What `Ledger.record` did with a raw order."""

    ACCEPTED = "accepted"  # first time this order key was seen
    UPDATED = "updated"  # a newer version replaced the stored one
    UNCHANGED = "unchanged"  # byte-identical to the stored version; nothing to do
    STALE = "stale"  # older than the stored version; recorded and ignored
    AFTER_CANCEL = "after_cancel"  # a copy without cancelled_at after a cancellation; not sent


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Outcome of recording one raw order. `publish` says whether the producer must send a
    message for it; `version` is the version now stored (the caller's when it won)."""

    order_key: str
    outcome: RecordOutcome
    publish: bool
    version: Version


class DeliveryAction(StrEnum):
    """What a worker must do with a delivered order key (see `Ledger.begin_batch`)."""

    PROCEED = "proceed"  # submit it; the order is now SUBMITTING
    NOTHING_TO_DO = "nothing_to_do"  # final state, the latest version was already handled
    NOT_DUE = "not_due"  # waiting for a retry that is not due yet
    CRASH_LOOP = "crash_loop"  # deliveries started and never finished too often: dead-letter
    UNKNOWN = "unknown"  # no ledger entry under this key


@dataclass(frozen=True, slots=True)
class OrderEntry:
    """A snapshot of one order's ledger entry. Times are epoch seconds.

    `raw` is None once a settled entry has shed its body (a tombstone). `sent_version` is the
    version last submitted successfully, None before the first success. `replayed` is True when
    the order left DEAD (a replay or a newer version) and has not been submitted since.
    `resend_payload` is a stored payload a replay asked the worker to send as is instead of
    re-transforming (`dlq replay --resend-stored`); cleared once submitted or superseded.
    `prev_raw` is the raw order the latest version replaced (kept with the body, shed with it);
    `trace` the W3C traceparent the producer recorded with the latest version (tracing on).
    """

    order_key: str
    raw: bytes | None
    raw_hash: str
    version: Version
    state: OrderState
    state_since: float
    first_seen_at: float
    enqueued_at: float
    submitted_at: float | None
    source: str | None
    payload_hash: str | None
    sent_version: Version | None
    line_ids: tuple[str, ...]
    sale_id: int | None
    attempts: int
    first_failure_at: float | None
    next_attempt_at: float | None
    deliveries_started: int
    deliveries_finished: int
    dead_reason: DeadReason | None
    last_error: str | None
    stale_arrivals: int
    replayed: bool = False
    resend_payload: bytes | None = None
    prev_raw: bytes | None = None
    trace: str | None = None

    @property
    def is_tombstone(self) -> bool:
        """True when the body was shed and only the tombstone fields remain."""
        return self.raw is None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One order's answer of `Ledger.begin_batch`: the action and the entry as it stands after
    it (for NOTHING_TO_DO and NOT_DUE, only its state)."""

    action: DeliveryAction
    entry: OrderEntry | None


# --- the ledger's batch API: what `begin_batch` answers and `finish_batch` writes ---
@dataclass(frozen=True, slots=True)
class Claim:
    """One order of `Ledger.begin_batch`: `token` is the lock the caller now holds (PROCEED and
    CRASH_LOOP only); `locked` means another worker holds it and the order was rescheduled
    (`delivery` None); otherwise `delivery` is what the worker must do with the order."""

    order_key: str
    token: str | None
    delivery: Delivery | None
    locked: bool = False
    # A suspect (a delivery of it ended without an outcome) named with other orders: left
    # untouched, for the caller to publish alone (reliability #11).
    isolate: bool = False


@dataclass(frozen=True, slots=True)
class Submitted:
    """Outcome for `finish_batch`: Jetti accepted `version` (SUBMITTED, or PENDING again when
    a newer version arrived meanwhile: `SubmitReply.REPUBLISH`)."""

    version: Version
    payload_hash: str
    line_ids: tuple[str, ...]
    sale_id: int | None
    attempt: Attempt | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Outcome for `finish_batch`: RETRY_WAIT until `due_at`; `spend_attempt` counts it
    against the budget (False for a 429 or a taken lock)."""

    due_at: float
    spend_attempt: bool
    attempt: Attempt | None = None


@dataclass(frozen=True, slots=True)
class Dead:
    """Outcome for `finish_batch`: DEAD with `reason` (the dead letter is the caller's).

    `version` is the version the worker gave up on: when a newer one is stored, the order is
    not DEAD but PENDING with a fresh budget (`DeadReply.SUPERSEDED`: re-publish it, resolve
    the dead letter)."""

    reason: DeadReason
    attempt: Attempt | None = None
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """One order's end of a batch: its outcome (None: nothing to write), whether a delivery
    began and needs its finish marker, and the lock token to release (None: not held)."""

    order_key: str
    outcome: Submitted | Retry | Dead | None
    finish: bool
    token: str | None
