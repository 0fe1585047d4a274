"""The one decision on how a call to Jetti ended, for imports and cancels alike (STYLE 5).

`settle` maps what a call ended with onto what the order does next. The processor (imports)
and the canceller (cancels) both apply it; neither decides on its own:

    None (Jetti accepted) ──► Sent
    RateLimited ────────────► Wait rate_limited, Block the budget used for the 429 pause
    ConfigurationError ─────► Wait breaker_open, Trip the fleet breaker
    Rejected ───────────────► DeadLetter rejected
    any other RetryableError► policy.decide: Backoff (spends an attempt) | DeadLetter
                              (retries_exhausted or deadline)

Pure: the clock (`now`) and randomness (`rand`) are injected. Applying an outcome (the ledger
write, the limiter block, the breaker trip, the counters) is the service's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from worker.core.errors import (
    ConfigurationError,
    JettiRelayError,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    RetryableError,
)
from worker.core.policy import GiveUp, RetryPolicy, decide, rate_limit_pause_s
from worker.core.records import Attempt, OrderEntry
from worker.core.states import DeadReason

# What Jetti can answer besides acceptance: each one has a decision below. Anything else raised
# around a call (a bug, Redis) is not an answer and is never settled.
AnswerError = ConfigurationError | Rejected | RetryableError
ANSWER_ERRORS = (ConfigurationError, Rejected, RetryableError)


class WaitReason(StrEnum):
    """Why an order goes back to the schedule without spending an attempt (the `why` logged)."""

    RATE_LIMITED = "rate_limited"  # Jetti answered 429
    RATE_LIMITED_LOCALLY = "rate_limited_locally"  # no fleet token within max_token_wait_s
    BREAKER_OPEN = "breaker_open"  # the fleet breaker is open, or this answer tripped it


class Submission(StrEnum):
    """The outcome label of the submission counters (`Stats.count_submission`)."""

    ACCEPTED = "accepted"
    RATE_LIMITED = "rate_limited"
    CONFIG_ERROR = "config_error"
    REJECTED = "rejected"
    RETRY = "retry"
    UNKNOWN = "unknown"  # a retry after a request that got no answer (OutcomeUnknown)


@dataclass(frozen=True, slots=True)
class Block:
    """Fleet effect: block the token bucket the call used until `until` (epoch s)."""

    until: float


@dataclass(frozen=True, slots=True)
class Trip:
    """Fleet effect: trip the fleet breaker, with Jetti's reason and status."""

    reason: str
    status: int | None


FleetEffect = Block | Trip


@dataclass(frozen=True, slots=True)
class Sent:
    """Jetti accepted the call."""

    label: Submission = Submission.ACCEPTED


@dataclass(frozen=True, slots=True)
class Wait:
    """Back to the schedule at `due_at` (epoch s) without spending an attempt, after applying
    `effect` to the fleet. `error` is the answer behind it (recorded as an attempt), None for a
    wait decided locally; `retry_after_note` says when Jetti's Retry-After was clamped or
    ignored (a surprise worth counting)."""

    due_at: float
    why: WaitReason
    effect: FleetEffect | None = None
    error: AnswerError | None = None
    label: Submission | None = None
    retry_after_note: str | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """A retryable failure within the budget: try again at `due_at` (epoch s), spending an
    attempt."""

    due_at: float
    error: RetryableError
    label: Submission


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up on the order for `reason`; `error` is the answer that ended it."""

    reason: DeadReason
    error: AnswerError
    label: Submission


Outcome = Sent | Wait | Backoff | DeadLetter


def settle(
    error: AnswerError | None,
    *,
    entry: OrderEntry,
    policy: RetryPolicy,
    breaker_probe_s: float,
    now: float,
    rand: Callable[[], float],
) -> Outcome:
    """What the order whose call to Jetti ended with `error` (None: accepted) does next.

    `entry` is the order as this delivery read it (its attempts and first failure count toward
    the budget); `breaker_probe_s` is how long a tripped breaker stays open; `now` is epoch
    seconds and `rand` returns a float in [0, 1) for the backoff jitter.
    """
    if error is None:
        return Sent()
    if isinstance(error, RateLimited):
        until = now + rate_limit_pause_s(error, default_s=policy.blocked_default_s)
        return Wait(
            due_at=until,
            why=WaitReason.RATE_LIMITED,
            effect=Block(until=until),
            error=error,
            label=Submission.RATE_LIMITED,
            retry_after_note=error.retry_after_note,
        )
    if isinstance(error, ConfigurationError):
        return Wait(
            due_at=now + breaker_probe_s,
            why=WaitReason.BREAKER_OPEN,
            effect=Trip(reason=error.detail, status=error.status),
            error=error,
            label=Submission.CONFIG_ERROR,
        )
    if isinstance(error, Rejected):
        return DeadLetter(DeadReason.REJECTED, error, Submission.REJECTED)
    label = Submission.UNKNOWN if isinstance(error, OutcomeUnknown) else Submission.RETRY
    decision = decide(
        attempt=entry.attempts + 1,
        first_failure_at=entry.first_failure_at or now,
        now=now,
        error=error,
        policy=policy,
        rand=rand,
    )
    if isinstance(decision, GiveUp):
        return DeadLetter(decision.reason, error, label)
    return Backoff(due_at=decision.due_at, error=error, label=label)


def error_attempt(
    error: JettiRelayError, *, at: float, worker: str, excerpt_prefix: str = ""
) -> Attempt:
    """The attempt record of a call that ended with `error` (`excerpt_prefix` tells a cancel's
    attempts from an import's in the order's history)."""
    return Attempt(
        at=at,
        status=getattr(error, "status", None),
        error_class=type(error).__name__,
        excerpt=f"{excerpt_prefix}{error}"[:500],
        worker=worker,
        outcome="error",
    )
