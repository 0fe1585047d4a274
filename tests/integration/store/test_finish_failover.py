"""The worker's ledger scripts across a Redis failover, against real redis-servers: the batch's
claim (`begin_batch`) and its last write (`finish_batch`) are repeat-safe (a call whose reply
was lost answers the same the second time and counts nothing twice), and with `retry_for_s` the
last write rides out NOREPLICAS and a restart instead of leaving the orders SUBMITTING for the
sweeper."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry

from tests.fixtures.redis_server import RedisServer
from tests.integration.store.ledger_steps import (
    KEY,
    KEYS,
    STAMP,
    T0,
    deliver,
    lock_parts,
    version,
)
from worker.core.records import Attempt, Claim, Dead, DeliveryAction, Finish, Retry, Submitted
from worker.core.states import DeadReason, DeadReply, OrderState, RetryReply, SubmitReply
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

ATTEMPT = Attempt(at=T0 + 1, status=200, error_class=None, excerpt=None, worker="w1", outcome="x")


def outcomes(ledger: Ledger) -> dict[str, Submitted | Retry | Dead]:
    sent = ledger.get(KEY)
    assert sent is not None
    return {
        "submitted": Submitted(sent.version, "ph", ("l1",), 7, ATTEMPT),
        "retry": Retry(T0 + 60, True, ATTEMPT),
        "dead": Dead(DeadReason.REJECTED, ATTEMPT, sent.version),
    }


def finish_once(ledger: Ledger, outcome: Submitted | Retry | Dead, token: str) -> object:
    (reply,) = ledger.finish_batch(
        [Finish(KEY, outcome, True, token)], lock_head_tail=lock_parts(), now=T0 + 1
    )
    return reply


def footprint(ledger: Ledger) -> tuple[object, ...]:
    """What a finish writes: state, attempts spent, deliveries finished, the attempt history and
    the timeline."""
    entry = ledger.get(KEY)
    assert entry is not None
    return (
        entry.state,
        entry.attempts,
        entry.deliveries_finished,
        len(ledger.attempts(KEY)),
        [event["type"] for event in ledger.events(KEY)],
    )


@pytest.mark.parametrize("op", ["submitted", "retry", "dead"])
def test_a_repeated_finish_answers_as_the_first_and_writes_nothing(ledger: Ledger, op: str) -> None:
    """The same delivery's finish sent twice (redis-py's retry or the ledger's after a lost
    reply): the second call answers like the first and changes nothing."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    outcome = outcomes(ledger)[op]

    first = finish_once(ledger, outcome, "delivery-1")
    after_first = footprint(ledger)
    second = finish_once(ledger, outcome, "delivery-1")

    assert second == first
    assert footprint(ledger) == after_first
    assert after_first[2] == 1  # one finish marker


def test_a_repeat_keeps_the_first_answer_after_a_newer_version_arrived(ledger: Ledger) -> None:
    """A submit that found a newer version answered REPUBLISH; its repeat answers REPUBLISH
    too (so the worker re-publishes), though the order is PENDING and nothing is sent again."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    submitted = outcomes(ledger)["submitted"]
    ledger.record(version('{"a":2}', at=STAMP + timedelta(seconds=5)), now=T0 + 0.5)

    assert finish_once(ledger, submitted, "delivery-1") is SubmitReply.REPUBLISH
    assert finish_once(ledger, submitted, "delivery-1") is SubmitReply.REPUBLISH
    entry = ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.PENDING
    assert len(ledger.attempts(KEY)) == 1


def test_the_next_delivery_with_its_own_token_is_written(ledger: Ledger) -> None:
    """The guard is per delivery: a later delivery's outcome (another claim token) is written."""
    ledger.record(version('{"a":1}'), now=T0)
    deliver(ledger)
    assert finish_once(ledger, outcomes(ledger)["retry"], "delivery-1") is RetryReply.SCHEDULED
    deliver(ledger, now=T0 + 61)
    assert finish_once(ledger, outcomes(ledger)["dead"], "delivery-2") is DeadReply.DEAD

    entry = ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.DEAD
    assert entry.deliveries_finished == 2
    assert len(ledger.attempts(KEY)) == 2


# --- riding out a failover --------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF, so a graceful restart keeps what it held)."""
    own = RedisServer(tmp_path, appendonly=True)
    own.start()
    yield own
    own.stop(kill=True)


@pytest.fixture
def bare_ledger(server: RedisServer) -> Iterator[Ledger]:
    """A ledger whose client never retries on its own (redis-py's default retries for ~4 s), so
    only `finish_batch`'s own retry is under test."""
    client = redis.Redis(port=server.port, retry=RedisRetry(NoBackoff(), 0))
    yield Ledger(client, KEYS)
    client.close()


def submitted_in_a_thread(
    ledger: Ledger, retry_for_s: float, before: Callable[[], None] = lambda: None
) -> tuple[threading.Thread, list[object]]:
    """The delivery's SUBMITTED outcome written in a thread (after `before()`); the list gets
    its reply or the Redis error it raised."""
    outcome = outcomes(ledger)["submitted"]  # read while Redis answers
    before()
    answers: list[object] = []

    def run() -> None:
        try:
            (reply,) = ledger.finish_batch(
                [Finish(KEY, outcome, True, "delivery-1")],
                lock_head_tail=lock_parts(),
                now=T0 + 1,
                retry_for_s=retry_for_s,
            )
            answers.append(reply)
        except redis.RedisError as exc:
            answers.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answers


def test_finish_waits_out_noreplicas(bare_ledger: Ledger, server: RedisServer) -> None:
    """A primary under `min-replicas-to-write` with its replicas gone refuses with NOREPLICAS:
    without `retry_for_s` the outcome is lost to the sweeper; with it, it is written once the
    primary takes writes again."""
    bare_ledger.record(version('{"a":1}'), now=T0)
    deliver(bare_ledger)
    admin = redis.Redis(port=server.port)
    admin.config_set("min-replicas-to-write", 1)

    with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
        bare_ledger.finish_batch(
            [Finish(KEY, outcomes(bare_ledger)["submitted"], True, "delivery-0")],
            lock_head_tail=lock_parts(),
            now=T0 + 1,
        )
    thread, answers = submitted_in_a_thread(bare_ledger, retry_for_s=10.0)
    threading.Event().wait(1.0)
    assert thread.is_alive(), "finish_batch gave up while the primary refused writes"
    admin.config_set("min-replicas-to-write", 0)
    thread.join(timeout=10)
    admin.close()

    assert answers == [SubmitReply.SUBMITTED]
    entry = bare_ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.SUBMITTED


def test_finish_rides_out_a_restart(bare_ledger: Ledger, server: RedisServer) -> None:
    """Redis down for 1.5 s while the outcome is written: the write goes through afterwards."""
    bare_ledger.record(version('{"a":1}'), now=T0)
    deliver(bare_ledger)
    thread, answers = submitted_in_a_thread(bare_ledger, retry_for_s=10.0, before=server.stop)
    threading.Event().wait(1.5)
    server.start()
    thread.join(timeout=15)

    assert answers == [SubmitReply.SUBMITTED]
    entry = bare_ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.SUBMITTED
    assert entry.deliveries_finished == 1


def test_finish_gives_up_after_retry_for_s(bare_ledger: Ledger, server: RedisServer) -> None:
    """Redis stays down: the call raises the connection error once `retry_for_s` has passed."""
    bare_ledger.record(version('{"a":1}'), now=T0)
    deliver(bare_ledger)
    thread, answers = submitted_in_a_thread(bare_ledger, retry_for_s=1.0, before=server.stop)
    thread.join(timeout=10)

    assert len(answers) == 1 and isinstance(answers[0], redis.ConnectionError)


# --- the claim's repeat -----------------------------------------------------------------------


def begin(ledger: Ledger, claims: list[tuple[str, str]], **more: Any) -> list[Claim]:
    """One message's claim, as the worker sends it; `more`: begin_batch's other keywords
    (`now`, `fill`, `fill_token`, `retry_for_s`)."""
    return ledger.begin_batch(
        claims,
        lock_head_tail=lock_parts(),
        lock_ttl_s=30.0,
        lock_busy_due_at=T0 + 60,
        task_id="t1",
        worker="w1",
        max_unfinished=3,
        **{"now": T0, **more},
    )


@pytest.mark.parametrize("keys_in_message", [1, 3])
def test_a_repeated_claim_answers_as_the_first_and_counts_one_delivery(
    ledger: Ledger, keys_in_message: int
) -> None:
    """The same message's claim sent twice (its reply lost in a failover): each order is
    answered PROCEED with the same token again, neither `locked` nor isolated as a suspect, and
    one delivery is counted, not two."""
    message = [(f"{KEY}-{n}", f"token-{n}") for n in range(keys_in_message)]
    for key, _ in message:
        ledger.record(version('{"a":1}', key=key), now=T0)

    first = begin(ledger, message)
    second = begin(ledger, message)

    assert [c.delivery.action for c in second if c.delivery] == [DeliveryAction.PROCEED] * len(
        message
    )
    assert [(c.token, c.locked, c.isolate) for c in second] == [
        (token, False, False) for _, token in message
    ]
    assert [c.token for c in first] == [c.token for c in second]
    for key, _ in message:
        entry = ledger.get(key)
        assert entry is not None
        assert (entry.state, entry.deliveries_started) == (OrderState.SUBMITTING, 1)


def test_another_token_still_finds_the_order_locked(ledger: Ledger) -> None:
    """The repeat is recognised by its own token only: another message's claim of the order is
    `locked`, as before."""
    ledger.record(version('{"a":1}'), now=T0)
    begin(ledger, [(KEY, "token-1")])
    (other,) = begin(ledger, [(KEY, "token-2")])
    assert other.locked and other.delivery is None


def test_a_repeated_claim_answers_its_fillers_again(ledger: Ledger) -> None:
    """A claim that topped its message up with waiting orders, sent twice: the repeat answers
    the same fillers with the same tokens (not others, not none), each begun once."""
    for n in range(4):
        ledger.record(version('{"a":1}', key=f"{KEY}-{n}"), now=T0 + n)

    def claim() -> list[tuple[str, str | None]]:
        claims = begin(ledger, [(f"{KEY}-0", "token-0")], now=T0 + 10, fill=2, fill_token="fill")
        return [(c.order_key, c.token) for c in claims]

    first = claim()
    assert first == [(f"{KEY}-0", "token-0"), (f"{KEY}-1", "fill:1"), (f"{KEY}-2", "fill:2")]
    assert claim() == first
    started = [ledger.get(f"{KEY}-{n}") for n in range(4)]
    assert [e.deliveries_started for e in started if e] == [1, 1, 1, 0]


def test_a_claim_waits_out_noreplicas(bare_ledger: Ledger, server: RedisServer) -> None:
    """The claim rides out NOREPLICAS like the last write: it goes through once the primary
    takes writes again, instead of failing the message back to the broker."""
    bare_ledger.record(version('{"a":1}'), now=T0)
    admin = redis.Redis(port=server.port)
    admin.config_set("min-replicas-to-write", 1)
    answers: list[object] = []

    def run() -> None:
        answers.extend(begin(bare_ledger, [(KEY, "token-1")], retry_for_s=10.0))

    thread = threading.Thread(target=run)
    thread.start()
    threading.Event().wait(1.0)
    assert thread.is_alive(), "begin_batch gave up while the primary refused writes"
    admin.config_set("min-replicas-to-write", 0)
    thread.join(timeout=10)
    admin.close()

    assert [(c.order_key, c.token) for c in answers if isinstance(c, Claim)] == [(KEY, "token-1")]
    entry = bare_ledger.get(KEY)
    assert entry is not None and entry.state is OrderState.SUBMITTING
