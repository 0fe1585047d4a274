"""A realistic store for the console's benchmark, screenshots and tests: orders in every state
and dead letters, written through the ledger's own scripts (record, claim, finish) and the
dead-letter store, as the pipeline writes them, in batches (100,000 orders take seconds).

Order keys are `shop-<a..e>:<n>` (five producers' id prefixes). Of `orders`, the first `dead`
are DEAD with a dead letter (reasons in rotation, the raw order kept, a rejecting attempt), then
2% RETRY_WAIT (due in five minutes), 1% SUBMITTING (claimed, never finished), 2% PENDING, and
the rest SUBMITTED.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from ops.bench.enqueue import make_order
from worker.core.keys import Keys
from worker.core.records import Attempt, Dead, Finish, NewVersion, Retry, Submitted, Version
from worker.core.states import DeadReason, OrderState
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger

# Orders written per script call group: a few milliseconds of Redis work each.
BATCH = 500
PREFIXES = ("shop-a:", "shop-b:", "shop-c:", "shop-d:", "shop-e:")
# Dead-letter reasons the seeded entries rotate through (those a bulk replay would pick).
DEAD_REASONS = (
    DeadReason.REJECTED,
    DeadReason.RETRIES_EXHAUSTED,
    DeadReason.TRANSFORM_ERROR,
    DeadReason.REJECTED_BY_JETTI,
)
_STAMP = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    """What `seed` wrote: orders by state and the dead-letter keys."""

    states: dict[OrderState, int]
    dead_keys: list[str]
    seconds: float


def order_key(n: int) -> str:
    """The key of seeded order `n`."""
    return f"{PREFIXES[n % len(PREFIXES)]}{n}"


def _state_of(i: int, orders: int, dead: int) -> OrderState:
    rest = i - dead
    if i < dead:
        return OrderState.DEAD
    span = max(1, orders - dead)
    if rest < span * 2 // 100:
        return OrderState.RETRY_WAIT
    if rest < span * 3 // 100:
        return OrderState.SUBMITTING
    if rest < span * 5 // 100:
        return OrderState.PENDING
    return OrderState.SUBMITTED


def seed(
    client: redis.Redis[bytes],
    keys: Keys,
    *,
    orders: int,
    dead: int,
    lines: int = 3,
    now: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Seeded:
    """Write `orders` orders (`dead` of them dead-lettered) into the ledger of `keys`."""
    if dead > orders:
        raise ValueError(f"dead letters ({dead}) cannot exceed orders ({orders})")
    started = time.monotonic()
    at = time.time() if now is None else now
    ledger = Ledger(client, keys)
    letters = DeadLetters(client, keys)
    lock = keys.parts(keys.lock)
    states: Counter[OrderState] = Counter()
    dead_keys: list[str] = []
    for start in range(0, orders, BATCH):
        numbers = range(start, min(orders, start + BATCH))
        bodies = {n: make_order(n, lines) for n in numbers}
        versions = ledger.record_many(
            [
                NewVersion(order_key=order_key(n), raw=bodies[n], updated_at=_STAMP, source="seed")
                for n in numbers
            ],
            now=at,
        )
        wanted = {n: _state_of(n, orders, dead) for n in numbers}
        claimed = [n for n in numbers if wanted[n] is not OrderState.PENDING]
        ledger.begin_batch(
            [(order_key(n), f"seed:{n}") for n in claimed],
            lock_head_tail=lock,
            lock_ttl_s=3600.0,
            lock_busy_due_at=at + 60,
            task_id="seed",
            worker="seed",
            now=at,
            max_unfinished=10,
        )
        finishes = [
            _finish(n, wanted[n], versions[n - start].version, at)
            for n in claimed
            if wanted[n] is not OrderState.SUBMITTING
        ]
        ledger.finish_batch(finishes, lock_head_tail=lock, now=at)
        for n in claimed:
            if wanted[n] is OrderState.DEAD:
                reason = DEAD_REASONS[n % len(DEAD_REASONS)]
                letters.put(
                    order_key(n),
                    reason=reason,
                    raw=bodies[n],
                    payload=None,
                    attempts=[_attempt(at, 422)],
                    source="seed",
                    error=f"seeded: {reason}",
                    now=at,
                )
                dead_keys.append(order_key(n))
        states.update(wanted.values())
        if progress is not None:
            progress(len(numbers))
    return Seeded(states=dict(states), dead_keys=dead_keys, seconds=time.monotonic() - started)


def _attempt(at: float, status: int) -> Attempt:
    return Attempt(
        at=at,
        status=status,
        error_class="Rejected",
        excerpt="seeded rejection",
        worker="seed",
        outcome="dead",
    )


def _finish(n: int, state: OrderState, version: Version, at: float) -> Finish:
    outcome: Submitted | Retry | Dead
    if state is OrderState.DEAD:
        outcome = Dead(reason=DEAD_REASONS[n % len(DEAD_REASONS)], attempt=_attempt(at, 422))
    elif state is OrderState.RETRY_WAIT:
        outcome = Retry(due_at=at + 300, spend_attempt=True, attempt=_attempt(at, 503))
    else:
        outcome = Submitted(
            version=version, payload_hash=f"seed{n}", line_ids=(), sale_id=n, attempt=None
        )
    return Finish(order_key=order_key(n), outcome=outcome, finish=True, token=f"seed:{n}")
