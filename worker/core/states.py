"""Closed enums for order states, dead-letter reasons and statuses, and the ledger's named replies.

Every state and reason the product knows is defined here and nowhere else; Redis indexes,
metrics labels and CLI filters all take their values from these enums.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import TypeAlias


class OrderState(StrEnum):
    """Where an order is in the pipeline (the ledger's `state` field)."""

    PENDING = "pending"  # stored, a message is (or should be) on the queue
    SUBMITTING = "submitting"  # a worker holds the order and is talking to Jetti
    RETRY_WAIT = "retry_wait"  # waiting in the retry schedule for its due time
    SUBMITTED = "submitted"  # Jetti answered 2xx for the latest version
    CONFIRMED = "confirmed"  # the reconciler found no import error after the grace period
    CANCELLED = "cancelled"  # cancelled in Jetti
    DEAD = "dead"  # in the dead-letter store; waits for an engineer

    @property
    def is_final(self) -> bool:
        """Final states need no further work from the pipeline (the sweeper ignores them)."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {OrderState.SUBMITTED, OrderState.CONFIRMED, OrderState.CANCELLED, OrderState.DEAD}
)


class DeadReason(StrEnum):
    """Why an order was dead-lettered."""

    INVALID_INPUT = "invalid_input"  # the raw order or the message broke the contract
    TRANSFORM_ERROR = "transform_error"  # the raw order is valid but cannot become a payload
    REJECTED = "rejected"  # Jetti answered a permanent 4xx
    REJECTED_BY_JETTI = "rejected_by_jetti"  # Jetti's import log reported an error (reconciler)
    LINES_CHANGED = "lines_changed"  # an update drops or renames a line id already sent
    RETRIES_EXHAUSTED = "retries_exhausted"  # the attempt budget is spent
    DEADLINE = "deadline"  # the total retry deadline passed
    WORKER_LOST = "worker_lost"  # deliveries started and never finished too many times
    DISCARDED = "discarded"  # an operator discarded it (`order discard`, the console)


class DeadStatus(StrEnum):
    """Life of a dead-letter entry: dead -> replayed -> resolved (or dead again)."""

    DEAD = "dead"
    REPLAYED = "replayed"
    RESOLVED = "resolved"


# --- named replies of the ledger's scripts ------------------------------------------------------
# IntEnums whose values are the integers the scripts answer; callers compare with members, never
# with the bare integers. One enum per operation: the same integer means
# different things for different operations (1 re-publishes after a submit, is DEAD after a
# dead letter), so compare a reply only with members of its own operation's enum.


class SubmitReply(IntEnum):
    """Recording what Jetti accepted (finish_batch `Submitted`)."""

    UNKNOWN = -1  # no entry for the order key: nothing written
    SUBMITTED = 0  # the version sent is the latest: SUBMITTED
    REPUBLISH = 1  # a newer version arrived meanwhile: PENDING again, re-publish it


class RetryReply(IntEnum):
    """Scheduling a retry (finish_batch `Retry`, `Ledger.schedule_retry`)."""

    UNKNOWN = 0  # no entry for the order key: nothing written
    SCHEDULED = 1  # RETRY_WAIT in the retry schedule


class DeadReply(IntEnum):
    """Giving up on an order (finish_batch `Dead`, `Ledger.mark_dead`)."""

    UNKNOWN = 0  # no entry for the order key: nothing written
    DEAD = 1  # DEAD; the dead letter is the caller's
    SUPERSEDED = 2  # a newer version is stored: PENDING on a fresh budget instead; re-publish
    # it and resolve the dead letter


class NoReply(IntEnum):
    """A finish_batch item without an outcome (only its finish marker and lock release)."""

    NOTHING = 0


# One answer per `Ledger.finish_batch` item, from the enum of that item's outcome.
FinishReply: TypeAlias = SubmitReply | RetryReply | DeadReply | NoReply


class RepairReply(IntEnum):
    """Re-arming an order whose sale differs from what was sent (`Ledger.repair`)."""

    GAVE_UP = -1  # repaired `max_repairs` times since its last confirmation: leave it
    MOVED_ON = 0  # no longer SUBMITTED/CONFIRMED with that payload: nothing written
    REARMED = 1  # PENDING again, payload hash forgotten: the caller publishes it


class RetryNowReply(IntEnum):
    """An operator's "retry now" (`Ledger.retry_now`, worker/store/lua/retry_now.lua)."""

    MISSING = 0  # no entry for the order key: nothing written
    DUE = 1  # RETRY_WAIT, now due: the retry pump publishes it on its next pass
    REPUBLISH = 2  # PENDING (its message queued or lost): the caller publishes the key
    IN_FLIGHT = 3  # SUBMITTING: a worker holds it; refused
    SETTLED = 4  # SUBMITTED, CONFIRMED or CANCELLED: nothing to retry; refused
    DEAD = 5  # DEAD: refused, the dead letter is replayed with `dlq replay`

    @property
    def done(self) -> bool:
        """True when the order was moved (DUE) or is to be published (REPUBLISH)."""
        return self in (RetryNowReply.DUE, RetryNowReply.REPUBLISH)

    @property
    def refusal(self) -> str | None:
        """Why the order was refused, as the words after "order KEY" (None unless refused)."""
        return _RETRY_REFUSALS.get(self)


class DiscardReply(IntEnum):
    """An operator's "discard" (`Ledger.discard`, worker/store/lua/discard.lua)."""

    MISSING = 0  # no entry for the order key: nothing written
    DISCARDED = 1  # was PENDING or RETRY_WAIT: DEAD (discarded), dead letter written
    ALREADY = 2  # DEAD (discarded) already: its dead letter is written again if missing
    IN_FLIGHT = 3  # SUBMITTING: a worker holds it; refused
    SETTLED = 4  # SUBMITTED, CONFIRMED or CANCELLED: refused
    DEAD = 5  # DEAD for another reason: refused (it has its dead letter)

    @property
    def done(self) -> bool:
        """True when the order is (now) discarded with its dead letter."""
        return self in (DiscardReply.DISCARDED, DiscardReply.ALREADY)

    @property
    def refusal(self) -> str | None:
        """Why the order was refused, as the words after "order KEY" (None unless refused)."""
        return _DISCARD_REFUSALS.get(self)


# Why each refusal of an operator's action, said the same way by the CLI and the console.
_RETRY_REFUSALS = {
    RetryNowReply.IN_FLIGHT: "is in flight (a worker holds it): nothing to retry now",
    RetryNowReply.SETTLED: "is settled (Jetti accepted it): nothing to retry",
    RetryNowReply.DEAD: "is dead: replay its dead letter (`jetti-relay dlq replay KEY`)",
}
_DISCARD_REFUSALS = {
    DiscardReply.IN_FLIGHT: "is in flight (a worker holds it): try again once it settles",
    DiscardReply.SETTLED: "is settled (Jetti accepted it): nothing to discard",
    DiscardReply.DEAD: "is dead already (for another reason): it has its dead letter",
}
