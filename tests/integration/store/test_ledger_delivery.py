"""The worker's claim and finish against a real Redis: outcomes, named replies, state indexes,
locks taken elsewhere and crash loops."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import redis

from tests.integration.store.ledger_steps import (
    KEY,
    STAMP,
    T0,
    dead,
    deliver,
    finish,
    index_members,
    retry,
    submit,
    version,
)
from worker.core.keys import Keys
from worker.core.records import DeliveryAction
from worker.core.states import DeadReason, DeadReply, NoReply, OrderState, RetryReply, SubmitReply
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration


def test_a_submit_requeues_when_a_newer_version_arrived(ledger: Ledger) -> None:
    """If a newer version arrived while the old one was being sent, the order goes PENDING."""
    ledger.record(version('{"a":1}'), now=T0)
    started = deliver(ledger).entry
    assert started is not None
    sent = started.version
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 1)
    again = submit(ledger, sent=sent, sale_id=None, now=T0 + 2)
    entry = ledger.get(KEY)
    assert again is SubmitReply.REPUBLISH
    assert entry is not None and entry.state is OrderState.PENDING
    assert entry.sent_version == sent


def test_a_submit_settles_the_latest_version(ledger: Ledger) -> None:
    """Submitting the latest version settles the order and keeps payload hash, lines, sale id."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    assert submit(ledger) is SubmitReply.SUBMITTED
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is OrderState.SUBMITTED
    assert (entry.payload_hash, entry.line_ids, entry.sale_id) == ("ph", ("l1",), 7)
    assert deliver(ledger).action is DeliveryAction.NOTHING_TO_DO


# --- indexes ----------------------------------------------------------------------------------


def test_state_indexes_follow_every_transition(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """After each operation the order sits in exactly the index of its state, and no other."""
    steps: list[Callable[[], object]] = [
        lambda: ledger.record(version('{"a":1}'), now=T0),
        lambda: deliver(ledger),
        lambda: ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0),
        lambda: ledger.pop_due_retries(now=T0 + 5, limit=10),
        lambda: deliver(ledger, now=T0 + 6),
        lambda: ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 7),
        lambda: ledger.replay(KEY, now=T0 + 8),
        lambda: deliver(ledger, now=T0 + 9),
        lambda: submit(ledger, now=T0 + 10),
    ]
    for step in steps:
        step()
        entry = ledger.get(KEY)
        assert entry is not None
        members = index_members(redis_client, keys)
        assert {s for s, m in members.items() if KEY in m} == {str(entry.state)}
    assert ledger.state_counts()[OrderState.SUBMITTED] == 1
    # Settled: no longer waiting, so out of the enqueued index (oldest-waiting age).
    assert ledger.oldest_enqueued() is None


def test_stuck_lists_orders_in_a_state_since_before_a_time(ledger: Ledger) -> None:
    """stuck() reads the state index by score: orders older than the threshold, oldest first."""
    ledger.record(version("{}", key="old"), now=T0)
    ledger.record(version("{}", key="new"), now=T0 + 100)
    assert ledger.stuck(OrderState.PENDING, older_than=T0 + 50, limit=10) == ["old"]
    ledger.mark_republished(["old"], now=T0 + 60)
    assert ledger.stuck(OrderState.PENDING, older_than=T0 + 50, limit=10) == []


# --- crash loops ------------------------------------------------------------------------------


def test_deliveries_that_never_finish_become_a_crash_loop(ledger: Ledger) -> None:
    """N started-but-unfinished deliveries make the next one CRASH_LOOP; finished ones don't."""
    ledger.record(version("{}"), now=T0)
    assert deliver(ledger).action is DeliveryAction.PROCEED
    finish(ledger, KEY, None, now=T0)  # a delivery that ended normally
    for _ in range(2):
        assert deliver(ledger, max_unfinished=2).action is DeliveryAction.PROCEED
    delivery = deliver(ledger, max_unfinished=2)
    assert delivery.action is DeliveryAction.CRASH_LOOP
    assert delivery.entry is not None
    assert (delivery.entry.deliveries_started, delivery.entry.deliveries_finished) == (3, 1)


def test_unknown_key_delivery(ledger: Ledger) -> None:
    """A message for a key the ledger never saw is UNKNOWN with no entry."""
    delivery = deliver(ledger, "ghost")
    assert delivery.action is DeliveryAction.UNKNOWN and delivery.entry is None


def test_giving_up_on_an_older_version_leaves_the_newer_one_pending(ledger: Ledger) -> None:
    """mark_dead for the version the worker claimed, while a newer one was coalesced in: no DEAD
    (that would bury the newer version), but PENDING on a fresh budget, answered True so the
    caller re-publishes; giving up on the version stored is DEAD as before."""
    ledger.record(version('{"a":1}'), now=T0)
    ledger.schedule_retry(KEY, due_at=T0, spend_attempt=True, now=T0)
    claimed = deliver(ledger, now=T0 + 1).entry
    assert claimed is not None
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 2)
    newer = ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 3, version=claimed.version)
    entry = ledger.get(KEY)
    assert newer and entry is not None
    assert entry.state is OrderState.PENDING and entry.raw == b'{"a":2}'
    assert (entry.attempts, entry.dead_reason, entry.first_failure_at) == (0, None, None)
    current = deliver(ledger, now=T0 + 4).entry
    assert current is not None
    assert not ledger.mark_dead(
        KEY, reason=DeadReason.REJECTED, now=T0 + 5, version=current.version
    )
    assert ledger.get(KEY).state is OrderState.DEAD  # type: ignore[union-attr]


# --- a lock held elsewhere ---------------------------------------------------------------------


def claim_locked_elsewhere(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys, *, due_at: float, now: float
) -> bool:
    """A claim of the order while another worker holds its lock; True when answered `locked`."""
    redis_client.set(keys.lock(KEY), "another-worker")
    (claim,) = ledger.begin_batch(
        [(KEY, "mine")],
        lock_head_tail=keys.parts(keys.lock),
        lock_ttl_s=30.0,
        lock_busy_due_at=due_at,
        task_id="t2",
        worker="w2",
        now=now,
        max_unfinished=3,
    )
    assert redis_client.get(keys.lock(KEY)) == b"another-worker"
    return claim.locked and claim.token is None and claim.delivery is None


@pytest.mark.parametrize(
    ("prepare", "scheduled", "state"),
    [
        pytest.param(lambda lg: None, True, OrderState.PENDING, id="pending"),
        pytest.param(lambda lg: deliver(lg), False, OrderState.SUBMITTING, id="submitting"),
        pytest.param(lambda lg: (deliver(lg), submit(lg)), False, OrderState.SUBMITTED, id="final"),
    ],
)
def test_a_claim_of_a_locked_order_reschedules_it(
    ledger: Ledger,
    redis_client: redis.Redis[bytes],
    keys: Keys,
    prepare: Callable[[Ledger], object],
    scheduled: bool,
    state: OrderState,
) -> None:
    """A PENDING order whose lock is taken waits in the schedule (no attempt spent); an order
    a worker is submitting, or a settled one, is left alone."""
    ledger.record(version("{}"), now=T0)
    prepare(ledger)
    assert claim_locked_elsewhere(ledger, redis_client, keys, due_at=T0 + 5, now=T0 + 1)
    entry = ledger.get(KEY)
    assert entry is not None
    assert entry.state is (OrderState.RETRY_WAIT if scheduled else state)
    assert entry.attempts == 0
    assert (redis_client.zscore(keys.retry_schedule(), KEY) is not None) is scheduled


def test_a_locked_order_keeps_the_earlier_due_time(
    ledger: Ledger, redis_client: redis.Redis[bytes], keys: Keys
) -> None:
    """Rescheduling an order already waiting for its retry never pushes the retry later."""
    ledger.record(version("{}"), now=T0)
    retry(ledger, due_at=T0 + 5, now=T0)
    claim_locked_elsewhere(ledger, redis_client, keys, due_at=T0 + 50, now=T0 + 1)
    assert ledger.pop_due_retries(now=T0 + 5, limit=10) == [KEY]


# --- named replies -----------------------------------------------------------------------------


def test_finish_batch_names_each_reply_by_its_outcome(ledger: Ledger) -> None:
    """One reply per item, from the enum of its outcome: the same integer means different
    things for a submit and a dead letter, the names do not; an unknown key is UNKNOWN."""
    for key in ("sub", "newer", "wait", "gone"):
        ledger.record(version("{}", key=key), now=T0)
        deliver(ledger, key)
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5), key="newer"), now=T0 + 1)
    assert submit(ledger, "sub") is SubmitReply.SUBMITTED
    sent = ledger.get("sub")
    assert sent is not None
    assert submit(ledger, "newer", sent=sent.version) is SubmitReply.REPUBLISH
    assert retry(ledger, "wait", due_at=T0 + 9, now=T0 + 2) is RetryReply.SCHEDULED
    assert dead(ledger, "gone", now=T0 + 2) is DeadReply.DEAD
    assert submit(ledger, "ghost", sent=sent.version) is SubmitReply.UNKNOWN
    assert retry(ledger, "ghost", due_at=T0, now=T0) is RetryReply.UNKNOWN
    assert dead(ledger, "ghost", now=T0) is DeadReply.UNKNOWN
    assert finish(ledger, "ghost", None, now=T0) is NoReply.NOTHING


def test_the_single_order_writes_are_the_batch_outcomes(ledger: Ledger) -> None:
    """`schedule_retry` and `mark_dead` (the cancel path's single-order writes) write what the
    same `finish_batch` outcome writes."""
    ledger.record(version("{}"), now=T0)
    deliver(ledger)
    finish(ledger, KEY, None, now=T0)
    ledger.schedule_retry(KEY, due_at=T0 + 5, spend_attempt=True, now=T0)
    entry = ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.RETRY_WAIT and entry.attempts == 1
    assert entry.deliveries_finished == entry.deliveries_started == 1
    delivery = deliver(ledger, now=T0 + 5)
    assert delivery.action is DeliveryAction.PROCEED and delivery.entry is not None
    assert submit(ledger, now=T0, sent=delivery.entry.version) is SubmitReply.SUBMITTED
    assert ledger.get(KEY).state is OrderState.SUBMITTED  # type: ignore[union-attr]
    assert ledger.mark_dead(KEY, reason=DeadReason.REJECTED, now=T0 + 6) is False
    assert ledger.get(KEY).state is OrderState.DEAD  # type: ignore[union-attr]
