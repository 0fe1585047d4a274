"""The one exception tree of jetti-relay.

    JettiRelayError
    ├── PermanentError            the order cannot go through as it is: dead-letter it
    │   ├── InvalidOrder          the raw order (or message) breaks the contract   -> invalid_input
    │   ├── TransformError        valid raw order, but no valid payload         -> transform_error
    │   └── Rejected              Jetti answered a permanent 4xx                    -> rejected
    ├── RetryableError            try again later with the same payload
    │   ├── JettiUnavailable      connection error, 408, 409, 5xx
    │   ├── OutcomeUnknown        the request was sent and no answer came (timeout)
    │   └── RateLimited           429, or our own limiter; spends no attempt
    ├── ConfigurationError        the fleet is misconfigured (401/403, unknown channel): pause all
    └── ClaimFailed               a message's orders could not be claimed (Redis): redeliver it

Behaviour is chosen with `isinstance`, never by message text; data travels as attributes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, at a field path such as `lines[2].quantity`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class JettiRelayError(Exception):
    """Base of every error jetti-relay raises on purpose."""


class PermanentError(JettiRelayError):
    """Retrying cannot help; the order goes to the dead-letter store."""


class InvalidOrder(PermanentError):
    """The raw order breaks the contract. Carries every problem found, each with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid order")


class TransformError(PermanentError):
    """The raw order is valid but no payload Jetti would accept can be built from it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "transform failed")


class Rejected(PermanentError):
    """Jetti refused the payload with a permanent status (a 4xx other than 408/409/429)."""

    def __init__(self, status: int, excerpt: str) -> None:
        self.status = status
        self.excerpt = excerpt
        super().__init__(f"Jetti answered {status}: {excerpt}")


class RetryableError(JettiRelayError):
    """A transient failure; the same payload may go through later."""


class JettiUnavailable(RetryableError):
    """Jetti could not be reached or answered 408, 409 or 5xx. `status` is None without a reply."""

    def __init__(self, status: int | None, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"Jetti unavailable ({status or 'no response'}): {detail}")


class OutcomeUnknown(RetryableError):
    """The request left the client and no answer came back; Jetti may or may not have it."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"outcome unknown: {detail}")


class RateLimited(RetryableError):
    """Jetti (or our fleet limiter) asked us to wait. Spends no attempt.

    `retry_after_s` is Jetti's `Retry-After` when it sent one, else None (already bounded by
    the client); `retry_after_note` says when the header was clamped or ignored, else None.
    """

    def __init__(
        self,
        retry_after_s: float | None,
        status: int | None = 429,
        *,
        retry_after_note: str | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.status = status
        self.retry_after_note = retry_after_note
        super().__init__(f"rate limited (retry after {retry_after_s} s)")


class ConfigurationError(JettiRelayError):
    """The fleet's configuration is wrong (bad credentials, unknown channel): pause submission."""

    def __init__(self, status: int | None, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"configuration fault ({status}): {detail}")


class ClaimFailed(JettiRelayError):
    """The ledger could not lock and begin a message's orders (Redis unreachable or failing).

    Nothing was begun, so the message must not be acked: the task rejects it for redelivery
    instead of leaving its orders to the sweeper (reliability L8).
    """
