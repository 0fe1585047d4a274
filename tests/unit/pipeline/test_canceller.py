"""Canceller over in-memory fakes: it applies the same outcome decision as the processor
(worker.core.outcome), writing through the single-order ledger calls. No Redis, no Jetti."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.fakes import (
    FakeBreaker,
    FakeBucket,
    FakeCancelJetti,
    FakeDeadLetters,
    FakeLedger,
    FakePublisher,
    FakeStats,
    order_entry,
)
from worker.core.answers import Sale, SaleLookup
from worker.core.errors import ConfigurationError, JettiUnavailable, RateLimited, Rejected
from worker.core.jsonio import dumps_canonical
from worker.core.policy import RetryPolicy
from worker.core.records import OrderEntry
from worker.core.states import DeadReason
from worker.pipeline.canceller import CancelConfig, Canceller

NOW = 1_800_000_000.0
PROBE_S = 15.0
CANCELLED = dumps_canonical(
    {
        "id": "c-1",
        "number": "#c-1",
        "updated_at": "2026-11-27T10:00:00+00:00",
        "cancelled_at": "2026-11-27T11:00:00+00:00",
        "lines": [{"id": "l1", "sku": "S", "name": "Mug", "quantity": 1, "unit_price": "9.50"}],
    }
)
SALE = Sale(id=42, external_id="c-1", cancelled_flag=False, line_items=(), channel_id=7)


@dataclass
class Desk:
    """A canceller wired to fakes, and the fakes to script and read."""

    ledger: FakeLedger = field(default_factory=FakeLedger)
    dead: FakeDeadLetters = field(default_factory=FakeDeadLetters)
    jetti: FakeCancelJetti = field(default_factory=lambda: FakeCancelJetti(lookup=SaleLookup(SALE)))
    reads: FakeBucket = field(default_factory=FakeBucket)
    writes: FakeBucket = field(default_factory=FakeBucket)
    breaker: FakeBreaker = field(default_factory=FakeBreaker)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    stats: FakeStats = field(default_factory=FakeStats)

    def cancel(self, entry: OrderEntry | None = None) -> None:
        canceller = Canceller(
            config=CancelConfig(
                worker_id="w:1",
                max_token_wait_s=1.0,
                breaker_probe_s=PROBE_S,
                retry=RetryPolicy(3, 10.0, 100.0, 1_000.0, 30.0),
            ),
            ledger=self.ledger,
            dead_letters=self.dead,
            jetti=self.jetti,
            writes=self.writes,
            reads=self.reads,
            breaker=self.breaker,
            publisher=self.publisher,
            stats=self.stats,
            clock=lambda: NOW,
            rand=lambda: 0.5,
            sleep=lambda s: None,
        )
        assert canceller.handle(entry or order_entry("c-1", CANCELLED), now=NOW)

    def write(self) -> tuple[str, dict[str, object]]:
        (one,) = [(method, kw) for method, _, kw in self.ledger.writes]
        return one


@pytest.fixture
def desk() -> Desk:
    return Desk()


def test_a_sale_is_cancelled_in_jetti(desk: Desk) -> None:
    """The sale found in our channel is cancelled with a write token; CANCELLED via jetti,
    counted as cancel_accepted, the breaker told of the success."""
    desk.cancel()
    assert desk.jetti.cancelled == [42]
    assert desk.write() == ("mark_cancelled", {"sale_id": 42, "via": "jetti"})
    assert desk.stats.counts["submissions|cancel_accepted|200"] == 1
    assert desk.breaker.successes == 1


def test_an_order_jetti_never_had_is_cancelled_locally(desk: Desk) -> None:
    """No sale, and nothing of the order could have reached Jetti: CANCELLED, nothing sent."""
    desk.jetti.lookup = SaleLookup(None)
    desk.cancel()
    assert desk.jetti.cancelled == []
    assert desk.write() == ("mark_cancelled", {"sale_id": None, "via": "not_imported"})


def test_a_429_on_the_cancel_blocks_the_write_budget(desk: Desk) -> None:
    """The 429 pause blocks the budget the call used (writes), not the reads; no attempt."""
    desk.jetti.cancel = RateLimited(None)
    desk.cancel()
    assert desk.writes.blocked_until == NOW + 30.0 and desk.reads.blocked_until is None
    assert desk.write() == ("schedule_retry", {"due_at": NOW + 30.0, "spend_attempt": False})
    assert desk.stats.counts["submissions|cancel_rate_limited|429"] == 1


def test_a_configuration_error_trips_the_breaker(desk: Desk) -> None:
    """401 on the cancel: the fleet breaker trips; the order waits for the probe."""
    desk.jetti.cancel = ConfigurationError(401, "bad token")
    desk.cancel()
    assert desk.breaker.trips == [("bad token", 401)]
    assert desk.write() == ("schedule_retry", {"due_at": NOW + PROBE_S, "spend_attempt": False})


def test_a_rejected_cancel_is_dead_lettered_saying_so(desk: Desk) -> None:
    """A permanent 4xx on the cancel: `rejected`, the error prefixed `cancel: `."""
    desk.jetti.cancel = Rejected(422, "cannot cancel")
    desk.cancel()
    reason, error, _ = desk.dead.letters["c-1"]
    assert reason is DeadReason.REJECTED and error.startswith("cancel: Jetti answered 422")
    assert desk.write() == ("mark_dead", {"reason": DeadReason.REJECTED})


def test_a_retryable_cancel_backs_off_then_gives_up(desk: Desk) -> None:
    """A 503 within the budget is a spent retry; on the last attempt a dead letter."""
    desk.jetti.cancel = JettiUnavailable(503, "down")
    desk.cancel()
    assert desk.write() == ("schedule_retry", {"due_at": NOW + 5.0, "spend_attempt": True})
    assert desk.stats.counts["submissions|cancel_retry|503"] == 1
    last = Desk(jetti=FakeCancelJetti(lookup=SaleLookup(SALE), cancel=desk.jetti.cancel))
    last.cancel(order_entry("c-1", CANCELLED, attempts=2))
    assert last.dead.letters["c-1"][0] is DeadReason.RETRIES_EXHAUSTED


def test_no_read_token_in_time_waits_without_spending(desk: Desk) -> None:
    """The read budget asks for longer than max_token_wait_s: back to the schedule."""
    desk.reads.tokens, desk.reads.wait_s = 0, 5.0
    desk.cancel()
    assert desk.write() == ("schedule_retry", {"due_at": NOW + 5.0, "spend_attempt": False})


def test_an_open_breaker_sends_nothing(desk: Desk) -> None:
    """Breaker open: nothing is looked up or cancelled; the order waits for the probe."""
    desk.breaker.admission = "none"
    desk.cancel()
    assert desk.jetti.cancelled == []
    assert desk.write() == ("schedule_retry", {"due_at": NOW + PROBE_S, "spend_attempt": False})
