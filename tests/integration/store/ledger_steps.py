"""Steps of an order's life for the ledger's tests, each driving the ledger's batch scripts as
the worker does (`begin_batch` to claim, `finish_batch` to write the outcome)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from worker.core.keys import Keys
from worker.core.records import Attempt, Delivery, NewVersion, Version
from worker.core.states import DeadReason, FinishReply, OrderState
from worker.store.ledger import Dead, Finish, Ledger, Retry, Submitted

T0 = 1_800_000_000.0
STAMP = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY = "shop-1001"
TOKEN = "tok"
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
    return KEYS.parts(KEYS.lock)


def deliver(
    ledger: Ledger, key: str = KEY, *, now: float = T0, max_unfinished: int = 3
) -> Delivery:
    """A worker claims the order (`begin_batch`); the lock is dropped at once, as when that
    worker's lock expired, so the next claim in a test is never `locked`. For NOTHING_TO_DO and
    NOT_DUE the entry carries only the state, as the script answers it."""
    (claim,) = ledger.begin_batch(
        [(key, TOKEN)],
        lock_head_tail=lock_parts(),
        lock_ttl_s=30.0,
        lock_busy_due_at=now + 60,
        task_id="t1",
        worker="w1",
        now=now,
        max_unfinished=max_unfinished,
    )
    assert claim.delivery is not None, "the order's lock was held"
    finish(ledger, key, None, now=now, finish_marker=False)
    return claim.delivery


def finish(
    ledger: Ledger,
    key: str,
    outcome: Submitted | Retry | Dead | None,
    *,
    now: float,
    finish_marker: bool = True,
) -> FinishReply:
    """The worker's end of one order (`finish_batch`): outcome, finish marker, lock release."""
    item = Finish(key, outcome, finish_marker, TOKEN)
    (reply,) = ledger.finish_batch([item], lock_head_tail=lock_parts(), now=now)
    return reply


def submit(
    ledger: Ledger,
    key: str = KEY,
    *,
    now: float = T0 + 1,
    sent: Version | None = None,
    sale_id: int | None = 7,
) -> FinishReply:
    """Jetti accepted `sent` (default: the version stored) with payload hash "ph", line "l1"."""
    if sent is None:
        entry = ledger.get(key)
        assert entry is not None
        sent = entry.version
    return finish(ledger, key, Submitted(sent, "ph", ("l1",), sale_id), now=now)


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
    return finish(ledger, key, Retry(due_at, spend, attempt), now=now)


def dead(
    ledger: Ledger,
    key: str = KEY,
    *,
    now: float,
    reason: DeadReason = DeadReason.REJECTED,
    sent: Version | None = None,
) -> FinishReply:
    """The worker gives up on `sent` (None: no version compare)."""
    return finish(ledger, key, Dead(reason, None, sent), now=now)
