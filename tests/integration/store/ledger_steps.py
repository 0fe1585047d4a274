"""Steps of an order's life for the ledger's tests: those of tests/fixtures/ledger.py (the
ledger's batch scripts driven as the worker drives them) bound to the store tests' key prefix,
order key and clock."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from tests.fixtures import ledger as steps
from worker.core.keys import Keys
from worker.core.records import Attempt, Delivery, NewVersion, Version
from worker.core.states import DeadReason, FinishReply, OrderState
from worker.store.ledger import Dead, Ledger, Retry, Submitted

T0 = 1_800_000_000.0
STAMP = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY = "shop-1001"
# The key prefix of the store tests (the `keys` fixture).
KEYS = Keys("t")


def version(body: str, *, at: datetime | None = STAMP, key: str = KEY) -> NewVersion:
    """A raw order as a producer records it."""
    return NewVersion(order_key=key, raw=body.encode(), updated_at=at, source="test")


def index_members(client: redis.Redis[bytes], keys: Keys) -> dict[str, set[str]]:
    """Every state index as state -> set of order keys."""
    return {
        str(s): {m.decode() for m in client.zrange(keys.state_index(s), 0, -1)} for s in OrderState
    }


def lock_parts() -> tuple[str, str]:
    """The per-order lock key around the order key, as the worker passes it."""
    return steps.lock_parts(KEYS)


def deliver(
    ledger: Ledger, key: str = KEY, *, now: float = T0, max_unfinished: int = 3
) -> Delivery:
    """A worker claims the order, its lock dropped at once (`tests.fixtures.ledger.deliver`)."""
    return steps.deliver(ledger, KEYS, key, now=now, max_unfinished=max_unfinished)


def finish(
    ledger: Ledger,
    key: str,
    outcome: Submitted | Retry | Dead | None,
    *,
    now: float,
    finish_marker: bool = True,
) -> FinishReply:
    """The worker's end of one order (`finish_batch`): outcome, finish marker, lock release."""
    return steps.finish(ledger, KEYS, key, outcome, now=now, finish_marker=finish_marker)


def submit(
    ledger: Ledger,
    key: str = KEY,
    *,
    now: float = T0 + 1,
    sent: Version | None = None,
    sale_id: int | None = 7,
) -> FinishReply:
    """Jetti accepted `sent` (default: the version stored) with payload hash "ph", line "l1"."""
    return steps.submit(ledger, KEYS, key, now=now, sent=sent, sale_id=sale_id)


def retry(
    ledger: Ledger,
    key: str = KEY,
    *,
    due_at: float,
    now: float,
    spend: bool = True,
    attempt: Attempt | None = None,
) -> FinishReply:
    """The worker schedules a retry."""
    return steps.retry(ledger, KEYS, key, due_at=due_at, now=now, spend=spend, attempt=attempt)


def dead(
    ledger: Ledger,
    key: str = KEY,
    *,
    now: float,
    reason: DeadReason = DeadReason.REJECTED,
    sent: Version | None = None,
) -> FinishReply:
    """The worker gives up on `sent` (None: no version compare)."""
    return steps.dead(ledger, KEYS, key, now=now, reason=reason, sent=sent)
