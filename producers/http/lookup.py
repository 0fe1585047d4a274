"""GET /v1/orders/{key}: where an order is, for an upstream that has no `jetti-relay` CLI.

The same reads as `jetti-relay order show` (the ledger entry, else the dead letter), reduced to
what an upstream needs to act on: state, attempts, the Jetti sale id, the dead-letter reason,
times. Never the raw body, an error text or an attempt excerpt: those may hold personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.core.states import OrderState
from worker.store.dead_reads import DeadLetterReads
from worker.store.ledger import Ledger


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (`2025-01-31T12:00:00.000Z`), or None."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_status(ledger: Ledger, dead: DeadLetterReads, order_key: str) -> dict[str, Any] | None:
    """The order's status as a JSON-ready dict, or None when neither the ledger nor the
    dead-letter store knows `order_key`. Raises redis errors as the stores do.

    Fields: key, state (an OrderState value), state_since, attempts (attempts spent on the
    current version), sale_id, dead_reason (when dead), source, updated_at (the `updated_at` of
    the version the ledger holds; None when it had none), first_seen_at, enqueued_at,
    submitted_at, next_attempt_at. Times are ISO 8601 UTC.
    """
    entry = ledger.get(order_key)
    if entry is not None:
        return {
            "key": order_key,
            "state": entry.state.value,
            "state_since": iso(entry.state_since),
            "attempts": entry.attempts,
            "sale_id": entry.sale_id,
            "dead_reason": None if entry.dead_reason is None else entry.dead_reason.value,
            "source": entry.source,
            "updated_at": iso(entry.version.ts_ms / 1000) if entry.version.ts_ms else None,
            "first_seen_at": iso(entry.first_seen_at),
            "enqueued_at": iso(entry.enqueued_at),
            "submitted_at": iso(entry.submitted_at),
            "next_attempt_at": iso(entry.next_attempt_at),
        }
    letter = dead.get(order_key)
    if letter is None:
        return None
    # Known only as a dead letter (the ledger entry expired, or the key never had one).
    return {
        "key": order_key,
        "state": OrderState.DEAD.value,
        "state_since": iso(letter.last_dead_at),
        "attempts": len(letter.attempts),
        "sale_id": None,
        "dead_reason": letter.reason.value,
        "source": letter.source,
        "updated_at": None,
        "first_seen_at": iso(letter.first_dead_at),
        "enqueued_at": None,
        "submitted_at": None,
        "next_attempt_at": None,
    }
