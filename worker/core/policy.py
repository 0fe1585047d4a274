"""The one retry policy (STYLE.md 5): pure, with the clock and randomness injected.

`decide` answers "retry at T" or "give up for reason R" for a retryable failure. Backoff is full
jitter (a uniform draw up to a cap that doubles each attempt, bounded by `backoff_max_s`), so a
fleet that failed together does not retry together. A 429 never spends an attempt and never gives
up: Jetti told us when to come back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker.core.errors import RateLimited, RetryableError
from worker.core.states import DeadReason


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The numbers `decide` needs; all durations in seconds (`worker.wiring.retry_policy`
    maps Settings onto it). `blocked_default_s` is the pause after a 429 without a usable
    `Retry-After`."""

    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    retry_deadline_s: float
    blocked_default_s: float


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again at `due_at` (epoch seconds); `spend_attempt` is False for rate limits."""

    due_at: float
    spend_attempt: bool


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Dead-letter the order for `reason`."""

    reason: DeadReason


def rate_limit_pause_s(error: RateLimited, *, default_s: float) -> float:
    """How long a 429 pauses its budget (seconds): Jetti's `Retry-After` when it sent a usable
    one (the client already bounded it), else `default_s` (`RetryPolicy.blocked_default_s` for
    imports and cancellations, the reconciler's read block for its reads). The only copy."""
    if error.retry_after_s is not None:
        return error.retry_after_s
    return default_s


def backoff_cap_s(attempt: int, policy: RetryPolicy) -> float:
    """Upper bound of the jittered delay after failed attempt number `attempt` (1-based)."""
    # Clamp the exponent so a huge attempt number cannot overflow the float.
    exponent = min(max(attempt - 1, 0), 64)
    return float(min(policy.backoff_max_s, policy.backoff_base_s * 2.0**exponent))


def decide(
    *,
    attempt: int,
    first_failure_at: float,
    now: float,
    error: RetryableError,
    policy: RetryPolicy,
    rand: Callable[[], float],
) -> RetryAt | GiveUp:
    """What to do after attempt number `attempt` (1-based) failed with `error` at `now`.

    `first_failure_at` is when this order first failed (epoch s); `rand` returns a float in
    [0, 1). RateLimited waits `retry_after_s` (else `blocked_default_s`) and spends nothing.
    Otherwise: give up with RETRIES_EXHAUSTED once `attempt >= max_attempts`, or with DEADLINE
    when the jittered retry would fall after `first_failure_at + retry_deadline_s`.
    """
    if isinstance(error, RateLimited):
        return RetryAt(
            due_at=now + rate_limit_pause_s(error, default_s=policy.blocked_default_s),
            spend_attempt=False,
        )
    if attempt >= policy.max_attempts:
        return GiveUp(DeadReason.RETRIES_EXHAUSTED)
    delay_s = rand() * backoff_cap_s(attempt, policy)
    if now + delay_s > first_failure_at + policy.retry_deadline_s:
        return GiveUp(DeadReason.DEADLINE)
    return RetryAt(due_at=now + delay_s, spend_attempt=True)
