"""The retry policy: full-jitter backoff, attempt and deadline budgets, 429s spend nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.core.errors import JettiUnavailable, OutcomeUnknown, RateLimited, RetryableError
from worker.core.policy import GiveUp, RetryAt, RetryPolicy, backoff_cap_s, decide
from worker.core.states import DeadReason

POLICY = RetryPolicy(
    max_attempts=10,
    backoff_base_s=2.0,
    backoff_max_s=600.0,
    retry_deadline_s=6 * 3600.0,
    blocked_default_s=30.0,
)
NOW = 1_000_000.0

transient = st.sampled_from([JettiUnavailable(503, "down"), OutcomeUnknown("read timeout")])


@given(attempt=st.integers(1, POLICY.max_attempts - 1), draw=st.floats(0.0, 1.0), error=transient)
def test_delay_lies_within_zero_and_the_cap(
    attempt: int, draw: float, error: RetryableError
) -> None:
    """A transient failure retries after a delay in [0, min(max, base * 2**(attempt-1))]."""
    decision = decide(
        attempt=attempt,
        first_failure_at=NOW,
        now=NOW,
        error=error,
        policy=POLICY,
        rand=lambda: draw,
    )
    assert isinstance(decision, RetryAt)
    assert decision.spend_attempt
    assert 0.0 <= decision.due_at - NOW <= backoff_cap_s(attempt, POLICY) <= POLICY.backoff_max_s


def test_cap_doubles_until_the_maximum() -> None:
    """The jitter cap starts at the base, doubles each attempt and stops at backoff_max_s."""
    assert [backoff_cap_s(n, POLICY) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff_cap_s(50, POLICY) == POLICY.backoff_max_s


@given(attempt=st.integers(POLICY.max_attempts, 10_000), error=transient)
def test_gives_up_when_attempts_are_exhausted(attempt: int, error: RetryableError) -> None:
    """Once the failed attempt is number max_attempts or later, the order is dead-lettered."""
    decision = decide(
        attempt=attempt,
        first_failure_at=NOW,
        now=NOW,
        error=error,
        policy=POLICY,
        rand=lambda: 0.0,
    )
    assert decision == GiveUp(DeadReason.RETRIES_EXHAUSTED)


@given(elapsed_s=st.floats(0.0, 10 * POLICY.retry_deadline_s), draw=st.floats(0.0, 1.0))
def test_gives_up_when_the_retry_would_land_after_the_deadline(
    elapsed_s: float, draw: float
) -> None:
    """A retry due after first_failure_at + retry_deadline_s becomes a DEADLINE dead letter."""
    now = NOW + elapsed_s
    decision = decide(
        attempt=3,
        first_failure_at=NOW,
        now=now,
        error=JettiUnavailable(None, "refused"),
        policy=POLICY,
        rand=lambda: draw,
    )
    delay_s = draw * backoff_cap_s(3, POLICY)
    if now + delay_s > NOW + POLICY.retry_deadline_s:
        assert decision == GiveUp(DeadReason.DEADLINE)
    else:
        assert decision == RetryAt(due_at=now + delay_s, spend_attempt=True)


@given(
    attempt=st.integers(1, 10_000),
    elapsed_s=st.floats(0.0, 100 * POLICY.retry_deadline_s),
    retry_after_s=st.none() | st.floats(0.0, 86_400.0),
)
def test_rate_limit_never_spends_and_never_gives_up(
    attempt: int, elapsed_s: float, retry_after_s: float | None
) -> None:
    """A 429 waits Retry-After (else blocked_default_s), spends no attempt, ignores budgets."""
    now = NOW + elapsed_s
    decision = decide(
        attempt=attempt,
        first_failure_at=NOW,
        now=now,
        error=RateLimited(retry_after_s),
        policy=POLICY,
        rand=lambda: 1.0,
    )
    expected_wait_s = POLICY.blocked_default_s if retry_after_s is None else retry_after_s
    assert decision == RetryAt(due_at=now + expected_wait_s, spend_attempt=False)


def test_the_runtime_maps_the_five_retry_settings_unchanged() -> None:
    """worker.wiring.retry_policy reads the five retry settings unchanged (the core never
    imports Settings)."""
    from worker.settings import Settings
    from worker.wiring import retry_policy

    settings = Settings(
        max_attempts=3,
        backoff_base_s=1.5,
        backoff_max_s=60.0,
        retry_deadline_s=120.0,
        blocked_default_s=9.0,
    )
    assert retry_policy(settings) == RetryPolicy(3, 1.5, 60.0, 120.0, 9.0)
