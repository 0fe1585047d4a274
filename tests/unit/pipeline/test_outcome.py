"""worker.core.outcome.settle: the one decision on how a call to Jetti ended, without Redis."""

from __future__ import annotations

import pytest

from tests.fakes import order_entry
from worker.core.errors import (
    ConfigurationError,
    JettiUnavailable,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryableError,
)
from worker.core.outcome import (
    AnswerError,
    Backoff,
    Block,
    DeadLetter,
    Outcome,
    Sent,
    Submission,
    Trip,
    Wait,
    WaitReason,
    error_attempt,
    settle,
)
from worker.core.policy import RetryPolicy, rate_limit_pause_s
from worker.core.records import OrderEntry
from worker.core.states import DeadReason

POLICY = RetryPolicy(
    max_attempts=3,
    backoff_base_s=10.0,
    backoff_max_s=100.0,
    retry_deadline_s=1_000.0,
    blocked_default_s=30.0,
)
PROBE_S = 15.0
NOW = 1_800_000_000.0


def decide(
    error: AnswerError | None, entry: OrderEntry | None = None, draw: float = 0.5
) -> Outcome:
    return settle(
        error,
        entry=entry or order_entry(),
        policy=POLICY,
        breaker_probe_s=PROBE_S,
        now=NOW,
        rand=lambda: draw,
    )


def test_an_accepted_call_is_sent() -> None:
    """No error: Jetti accepted; counted as `accepted`."""
    assert decide(None) == Sent(label=Submission.ACCEPTED)


@pytest.mark.parametrize(
    ("retry_after_s", "pause_s"), [(7.0, 7.0), (0.0, 0.0), (None, POLICY.blocked_default_s)]
)
def test_a_429_blocks_the_budget_for_retry_after_or_the_default(
    retry_after_s: float | None, pause_s: float
) -> None:
    """A 429 waits Jetti's Retry-After (else blocked_default_s) and blocks the budget used
    until then; no attempt is spent, the answer is recorded."""
    error = RateLimited(retry_after_s)
    outcome = decide(error)
    assert outcome == Wait(
        due_at=NOW + pause_s,
        why=WaitReason.RATE_LIMITED,
        effect=Block(until=NOW + pause_s),
        error=error,
        label=Submission.RATE_LIMITED,
    )
    assert rate_limit_pause_s(error, default_s=POLICY.blocked_default_s) == pause_s


def test_a_429_whose_retry_after_was_clamped_says_so() -> None:
    """The client's note on an unusable Retry-After rides on the wait, to be counted."""
    outcome = decide(RateLimited(5.0, retry_after_note="clamped"))
    assert isinstance(outcome, Wait) and outcome.retry_after_note == "clamped"


def test_a_429_never_gives_up_even_past_the_budget() -> None:
    """Jetti said when to come back: the attempt budget and the deadline do not apply."""
    spent = order_entry(attempts=99, first_failure_at=NOW - 10 * POLICY.retry_deadline_s)
    assert isinstance(decide(RateLimited(1.0), spent), Wait)


def test_a_configuration_error_trips_the_breaker_and_waits_a_probe() -> None:
    """401/403: the fleet breaker trips with Jetti's reason and status; the order comes back
    when the probe may go, spending nothing."""
    error = ConfigurationError(401, "bad token")
    assert decide(error) == Wait(
        due_at=NOW + PROBE_S,
        why=WaitReason.BREAKER_OPEN,
        effect=Trip(reason="bad token", status=401),
        error=error,
        label=Submission.CONFIG_ERROR,
    )


def test_a_rejection_is_a_dead_letter() -> None:
    """A permanent 4xx dead-letters the order as `rejected` at once."""
    error = Rejected(422, "bad sku")
    assert decide(error) == DeadLetter(DeadReason.REJECTED, error, Submission.REJECTED)


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (JettiUnavailable(503, "down"), Submission.RETRY),
        (OutcomeUnknown("read timeout"), Submission.UNKNOWN),
    ],
)
def test_a_retryable_error_within_budget_backs_off(
    error: RetryableError, label: Submission
) -> None:
    """Within the budget: a jittered retry (draw x cap) that spends an attempt; an unknown
    outcome is counted apart."""
    outcome = decide(error, order_entry(attempts=1), draw=0.5)
    assert outcome == Backoff(due_at=NOW + 0.5 * 20.0, error=error, label=label)


def test_a_retryable_error_on_the_last_attempt_is_dead() -> None:
    """The attempt that reaches max_attempts gives up as `retries_exhausted`."""
    error = JettiUnavailable(503, "down")
    outcome = decide(error, order_entry(attempts=POLICY.max_attempts - 1))
    assert outcome == DeadLetter(DeadReason.RETRIES_EXHAUSTED, error, Submission.RETRY)


def test_a_retry_past_the_deadline_is_dead() -> None:
    """A retry that would fall after first failure + retry_deadline_s gives up as `deadline`."""
    error = OutcomeUnknown("timeout")
    late = order_entry(attempts=1, first_failure_at=NOW - POLICY.retry_deadline_s + 1.0)
    outcome = decide(error, late, draw=0.9)
    assert outcome == DeadLetter(DeadReason.DEADLINE, error, Submission.UNKNOWN)


def test_the_first_failure_starts_the_deadline_now() -> None:
    """An order that never failed counts its deadline from this failure."""
    outcome = decide(JettiUnavailable(None, "refused"), order_entry(first_failure_at=None))
    assert isinstance(outcome, Backoff)


def test_an_attempt_record_carries_the_answer() -> None:
    """The attempt of a failed call: status, error class, a prefixed excerpt of 500 chars."""
    attempt = error_attempt(
        Rejected(422, "x" * 600), at=NOW, worker="w:1", excerpt_prefix="cancel: "
    )
    assert (attempt.status, attempt.error_class, attempt.outcome) == (422, "Rejected", "error")
    assert attempt.excerpt is not None and attempt.excerpt.startswith("cancel: Jetti answered 422")
    assert len(attempt.excerpt) == 500
