"""Closed enums for order states, dead-letter reasons and dead-letter statuses.

Every state and reason the product knows is defined here and nowhere else; Redis indexes,
metrics labels and CLI filters all take their values from these enums.
"""

from __future__ import annotations

from enum import StrEnum


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


class DeadStatus(StrEnum):
    """Life of a dead-letter entry: dead -> replayed -> resolved (or dead again)."""

    DEAD = "dead"
    REPLAYED = "replayed"
    RESOLVED = "resolved"
