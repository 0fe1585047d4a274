"""The retry schedule against a real Redis: the pump pops due orders, a retry not due is not
delivered, attempts are counted."""

from __future__ import annotations

import pytest
import redis

from tests.integration.store.ledger_steps import (
    KEY,
    T0,
    deliver,
    version,
)
from worker.core.keys import Keys
from worker.core.records import Attempt, DeliveryAction
from worker.core.states import OrderState
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


# --- retries and replays ----------------------------------------------------------------------


def test_pop_due_retries_moves_only_due_orders_to_pending(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Due keys leave the schedule and become PENDING; later ones stay RETRY_WAIT."""
    for key, due in (("due", T0 + 10), ("later", T0 + 100)):
        ledger.record(version("{}", key=key), now=T0)
        ledger.schedule_retry(key, due_at=due, spend_attempt=True, now=T0)
    assert ledger.pop_due_retries(now=T0 + 10, limit=10) == ["due"]
    assert ledger.pop_due_retries(now=T0 + 10, limit=10) == []
    popped, waiting = ledger.get("due"), ledger.get("later")
    assert popped is not None and popped.state is OrderState.PENDING
    assert waiting is not None and waiting.state is OrderState.RETRY_WAIT
    assert redis_client.zrange(keys.retry_schedule(), 0, -1) == [b"later"]


def test_retry_not_due_is_not_delivered(ledger: Ledger) -> None:
    """A redelivered message for an order waiting on its retry is NOT_DUE until the due time."""
    ledger.record(version("{}"), now=T0)
    ledger.schedule_retry(KEY, due_at=T0 + 30, spend_attempt=True, now=T0)
    assert deliver(ledger, now=T0 + 29).action is DeliveryAction.NOT_DUE
    assert deliver(ledger, now=T0 + 30).action is DeliveryAction.PROCEED


def test_attempts_are_counted_and_kept(ledger: Ledger) -> None:
    """A spent retry counts, a free one does not; every attempt record is kept in order."""
    ledger.record(version("{}"), now=T0)
    fail = Attempt(
        at=T0,
        status=503,
        error_class="JettiUnavailable",
        excerpt="busy",
        worker="w",
        outcome="retry",
    )
    ledger.schedule_retry(KEY, due_at=T0 + 1, spend_attempt=True, now=T0, attempt=fail)
    ledger.schedule_retry(KEY, due_at=T0 + 2, spend_attempt=False, now=T0 + 1)
    entry = ledger.get(KEY)
    assert entry is not None
    assert (entry.attempts, entry.first_failure_at) == (1, T0)
    assert entry.last_error == "JettiUnavailable: busy"
    assert ledger.attempts(KEY) == [fail]
