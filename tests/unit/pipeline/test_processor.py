"""OrderProcessor's phases over in-memory fakes (tests/fakes.py): claim, decide, gate, submit,
settle, flush. No Redis, no Jetti: what the processor decides, and what it hands the flush."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes import (
    Accepted,
    FakeBreaker,
    FakeBucket,
    FakeCanceller,
    FakeDeadLetters,
    FakeJetti,
    FakeLedger,
    FakeLock,
    FakePublisher,
    FakeStats,
    InlineExecutor,
    order_entry,
)
from worker.core.build import build_payload
from worker.core.errors import ConfigurationError, JettiUnavailable, RateLimited, Rejected
from worker.core.jsonio import dumps_canonical
from worker.core.policy import RetryPolicy
from worker.core.records import Dead, DeliveryAction, Retry, Submitted
from worker.core.rules import Rules
from worker.core.states import DeadReason, DeadReply, SubmitReply
from worker.pipeline.processor import OrderProcessor, ProcessorConfig

NOW = 1_800_000_000.0
PROBE_S = 15.0


class Stop(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded (an Exception too)."""


def raw(key: str, *line_ids: str) -> bytes:
    lines = [
        {"id": i, "sku": f"SKU-{i}", "name": "Mug", "quantity": 1, "unit_price": "9.50"}
        for i in line_ids or (f"{key}-l1",)
    ]
    doc: dict[str, Any] = {
        "id": key,
        "number": f"#{key}",
        "updated_at": "2026-11-27T10:00:00+00:00",
        "lines": lines,
        "auto_connect_by_sku": True,
    }
    return dumps_canonical(doc)


@dataclass
class World:
    """A processor wired to fakes, and the fakes to script and read."""

    ledger: FakeLedger = field(default_factory=FakeLedger)
    dead: FakeDeadLetters = field(default_factory=FakeDeadLetters)
    limiter: FakeBucket = field(default_factory=FakeBucket)
    breaker: FakeBreaker = field(default_factory=FakeBreaker)
    jetti: FakeJetti = field(default_factory=FakeJetti)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    stats: FakeStats = field(default_factory=FakeStats)
    canceller: FakeCanceller = field(default_factory=FakeCanceller)
    slept: list[float] = field(default_factory=list)
    max_attempts: int = 3

    def add(self, key: str, body: bytes | None = None, **overrides: Any) -> None:
        self.ledger.entries[key] = order_entry(key, raw(key) if body is None else body, **overrides)

    def processor(self) -> OrderProcessor:
        return OrderProcessor(
            config=ProcessorConfig(
                worker_id="w:1",
                lock_ttl_s=60.0,
                lock_busy_retry_s=2.0,
                max_unfinished_deliveries=3,
                max_token_wait_s=1.0,
                breaker_probe_s=PROBE_S,
                allow_line_changes=False,
                retry=RetryPolicy(self.max_attempts, 10.0, 100.0, 1_000.0, 30.0),
                submit_concurrency=4,
            ),
            ledger=self.ledger,
            dead_letters=self.dead,
            lock=FakeLock(),
            limiter=self.limiter,
            breaker=self.breaker,
            jetti=self.jetti,
            publisher=self.publisher,
            rules=Rules.empty(),
            stats=self.stats,
            executor=InlineExecutor(),
            clock=lambda: NOW,
            rand=lambda: 0.5,
            sleep=self.slept.append,
            canceller=self.canceller,
            stop_exceptions=(Stop,),
        )

    def run(self, *keys: str) -> None:
        self.processor().handle_batch(list(keys), task_id="task")


@pytest.fixture
def world() -> World:
    return World()


def test_an_accepted_order_is_written_submitted_and_unlocked(world: World) -> None:
    """2xx: Submitted for the version read, with the payload's hash and line ids, the finish
    marker, the lock token handed back; counted as accepted."""
    world.add("a")
    world.run("a")
    finish = world.ledger.finish_of("a")
    assert isinstance(finish.outcome, Submitted)
    built = build_payload(raw("a"), "a", Rules.empty())
    assert finish.outcome.payload_hash == built.payload_hash
    assert finish.outcome.line_ids == built.line_ids
    assert finish.outcome.attempt is not None and finish.outcome.attempt.status == 200
    assert finish.finish and finish.token == "t1"
    assert world.jetti.sent == [built.body]
    assert world.stats.counts["submissions|accepted|200"] == 1


def test_a_payload_jetti_already_has_is_not_sent_again(world: World) -> None:
    """A new raw version that builds the payload last accepted: Submitted, nothing sent."""
    built = build_payload(raw("a"), "a", Rules.empty())
    world.add("a", payload_hash=built.payload_hash)
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Submitted) and outcome.attempt is None
    assert world.jetti.sent == []


def test_a_429_blocks_the_limiter_and_waits_without_spending(world: World) -> None:
    """Jetti's Retry-After blocks the fleet limiter and schedules the order for then."""
    world.add("a")
    world.jetti.answers = [RateLimited(7.0)]
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Retry) and not outcome.spend_attempt
    assert outcome.due_at == NOW + 7.0 and world.limiter.blocked_until == NOW + 7.0
    assert outcome.attempt is not None and outcome.attempt.error_class == "RateLimited"


def test_a_configuration_error_trips_the_breaker(world: World) -> None:
    """401: the breaker trips; the order waits for the probe, spending nothing."""
    world.add("a")
    world.jetti.answers = [ConfigurationError(401, "bad token")]
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert outcome == Retry(NOW + PROBE_S, False, outcome.attempt)  # type: ignore[union-attr]
    assert world.breaker.trips == [("bad token", 401)]


def test_a_rejection_is_dead_lettered_with_its_payload(world: World) -> None:
    """A permanent 4xx: the dead letter holds the payload sent; the flush marks it DEAD."""
    world.add("a")
    world.jetti.answers = [Rejected(422, "bad sku")]
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Dead) and outcome.reason is DeadReason.REJECTED
    reason, error, payload = world.dead.letters["a"]
    assert reason is DeadReason.REJECTED and "422" in error and payload == world.jetti.sent[0]


def test_a_retryable_error_spends_an_attempt_until_the_budget_is_spent(world: World) -> None:
    """A 503 within the budget is a spent retry; on the last attempt, a dead letter."""
    world.add("a")
    world.add("b", attempts=world.max_attempts - 1)
    world.jetti.answers = [JettiUnavailable(503, "down"), JettiUnavailable(503, "down")]
    world.run("a", "b")
    retry = world.ledger.finish_of("a").outcome
    assert isinstance(retry, Retry) and retry.spend_attempt and retry.due_at == NOW + 5.0
    dead = world.ledger.finish_of("b").outcome
    assert isinstance(dead, Dead) and dead.reason is DeadReason.RETRIES_EXHAUSTED


def test_a_newer_version_waiting_is_published_again(world: World) -> None:
    """The flush answers that a newer version arrived in flight: it is re-published."""
    world.add("a")
    world.ledger.replies["a"] = SubmitReply.REPUBLISH
    world.run("a")
    assert world.publisher.published == [(["a"], None)]


def test_a_dead_letter_superseded_by_a_newer_version_is_resolved(world: World) -> None:
    """The flush answers that a newer version replaced the dead one: the dead letter is
    resolved and the order re-published."""
    world.add("a")
    world.jetti.answers = [Rejected(422, "bad sku")]
    world.ledger.replies["a"] = DeadReply.SUPERSEDED
    world.run("a")
    assert world.dead.resolved == ["a"] and world.publisher.published == [(["a"], None)]


def test_an_open_breaker_sends_nothing(world: World) -> None:
    """Breaker open: every order waits for the probe time, none is sent."""
    world.add("a")
    world.add("b")
    world.breaker.admission = "none"
    world.run("a", "b")
    assert world.jetti.sent == []
    for key in ("a", "b"):
        assert world.ledger.finish_of(key).outcome == Retry(NOW + PROBE_S, False, None)


def test_the_probe_sends_one_order_and_reports_its_success(world: World) -> None:
    """Half-open: one order goes as the probe; its acceptance closes the breaker."""
    world.add("a")
    world.add("b")
    world.breaker.admission = "probe"
    world.run("a", "b")
    assert len(world.jetti.sent) == 1 and world.breaker.successes == 1
    assert isinstance(world.ledger.finish_of("a").outcome, Submitted)
    assert world.ledger.finish_of("b").outcome == Retry(NOW + PROBE_S, False, None)


def test_orders_without_a_token_in_time_wait_locally(world: World) -> None:
    """The limiter gives one token and then asks for more than max_token_wait_s: the rest go
    back to the schedule for then, spending nothing."""
    world.add("a")
    world.add("b")
    world.limiter.tokens, world.limiter.wait_s = 1, 5.0
    world.run("a", "b")
    assert len(world.jetti.sent) == 1
    assert world.ledger.finish_of("b").outcome == Retry(NOW + 5.0, False, None)


def test_a_short_token_wait_is_slept(world: World) -> None:
    """A wait within max_token_wait_s is slept, then the rest of the batch goes."""
    world.add("a")
    world.add("b")
    world.limiter.grants = [(1, 0.25), (1, 0.0)]
    world.run("a", "b")
    assert world.slept == [0.25] and len(world.jetti.sent) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{not json", DeadReason.INVALID_INPUT), (None, DeadReason.INVALID_INPUT)],
)
def test_an_order_that_does_not_parse_is_dead_lettered(
    world: World, body: bytes | None, reason: DeadReason
) -> None:
    """A raw body that breaks the contract (or is missing) is `invalid_input`, never sent."""
    world.ledger.entries["a"] = order_entry("a", body)
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Dead) and outcome.reason is reason
    assert world.jetti.sent == []


def test_an_update_that_drops_a_sent_line_is_dead_lettered(world: World) -> None:
    """Line ids already sent must stay: dropping one is `lines_changed`."""
    world.add("a", raw("a", "l2"), line_ids=("l1", "l2"))
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Dead) and outcome.reason is DeadReason.LINES_CHANGED


def test_a_crash_loop_is_dead_lettered_as_worker_lost(world: World) -> None:
    """An order past the crash-loop bound is dead-lettered, not sent."""
    world.add("a", deliveries_started=4)
    world.ledger.actions["a"] = DeliveryAction.CRASH_LOOP
    world.run("a")
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Dead) and outcome.reason is DeadReason.WORKER_LOST
    assert world.jetti.sent == []


def test_unknown_and_locked_orders_are_left_alone(world: World) -> None:
    """An unknown key is counted; one locked elsewhere is not touched; neither is flushed."""
    world.add("busy")
    world.ledger.locked_elsewhere.add("busy")
    world.run("ghost", "busy")
    assert world.ledger.finished == [] and world.stats.counts["unknown"] == 1


def test_a_cancellation_is_the_cancel_paths_outcome(world: World) -> None:
    """The canceller wrote the outcome: the delivery ends with its finish marker, no write."""
    world.add("a")
    world.canceller.cancels.add("a")
    world.run("a")
    finish = world.ledger.finish_of("a")
    assert finish.outcome is None and finish.finish and world.jetti.sent == []


def test_a_bug_for_one_order_is_a_strike_not_an_outcome(world: World) -> None:
    """An exception that is no Jetti answer leaves the order without an outcome: no finish
    marker (a crash-loop strike); the batch's other orders are delivered."""
    world.add("a")
    world.add("b")
    world.jetti.answers = [RuntimeError("bug")]
    world.run("a", "b")
    bad, good = world.ledger.finish_of("a"), world.ledger.finish_of("b")
    assert bad.outcome is None and not bad.finish and bad.token == "t1"
    assert isinstance(good.outcome, Submitted)
    assert world.stats.counts["no_outcome"] == 1


def test_a_stop_exception_ends_the_batch_and_still_flushes(world: World) -> None:
    """The injected stop exception (the soft time limit) stops the batch before anything is
    sent; the flush still hands every lock back, without finish markers."""
    world.add("a")
    world.add("b")
    world.canceller.raises = Stop()
    world.run("a", "b")
    assert world.canceller.seen == ["a"] and world.jetti.sent == []
    assert [(f.order_key, f.outcome, f.finish) for f in world.ledger.finished] == [
        ("a", None, False),
        ("b", None, False),
    ]


def test_a_probe_success_is_reported_only_for_the_probe(world: World) -> None:
    """With the breaker closed, an acceptance does not touch the breaker."""
    world.add("a")
    world.jetti.answers = [Accepted(201, 55)]
    world.run("a")
    assert world.breaker.successes == 0
    outcome = world.ledger.finish_of("a").outcome
    assert isinstance(outcome, Submitted) and outcome.sale_id == 55
