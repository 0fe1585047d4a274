"""Repeated failures of a background loop: the first with its traceback, the rest counted.

The pump, the job runner, the reconciler, the notifier and the stream intake each retry on
their next pass whatever failed. While Redis fails over (2-10 s) or is down, every pass fails
the same way; logging each with its traceback would print one identical traceback per pass and
push the first one, the one that says what happened, out of sight. A `FailureStreak` per loop
logs instead:

- the first failure of a streak as before: the loop's own event (e.g. `maintenance_pass_failed`,
  which alerts and dashboards may key on), level error, with the traceback;
- a later failure of the same exception type as one line without a traceback (level warning,
  the same event with `failures` and `for_s`), at most once every `every_s`; the others only
  add to the count;
- a failure of another type with its traceback again: it is news;
- the first success after a streak as the loop's recovered event (level info, `failures` and
  `for_s`), so the log says when the outage ended and how long it lasted.

This module sits beside the services (worker.pipeline, worker.store...) and below them, so the
pipeline, the producers and ops can all use it; it needs structlog only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["REPEAT_LOG_EVERY_S", "EventLog", "FailureStreak"]

# At most one line per this many seconds while a loop keeps failing the same way.
REPEAT_LOG_EVERY_S = 30.0
# Longest exception text kept on a repeated failure's line (a Redis error's fits).
ERROR_TEXT_MAX = 200


class EventLog(Protocol):
    """The part of a structlog logger a streak writes to."""

    def error(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...

    def info(self, event: str, **fields: Any) -> Any: ...


class FailureStreak:
    """Logs one loop's failures in a row (see the module docstring); one per loop, used from
    the loop's own thread only.

    `failed` is the event name of a failure (the loop's existing one), `recovered` that of the
    first success after failures. `every_s` is the least time between two lines of the same
    failure repeating; `clock` (monotonic seconds) is injected for tests.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        failed: str,
        recovered: str,
        every_s: float = REPEAT_LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._failed = failed
        self._recovered = recovered
        self._every_s = every_s
        self._clock = clock
        self._failures = 0
        self._since = 0.0  # when the streak's first failure was seen (clock s)
        self._kind: type[BaseException] | None = None  # the type last logged with a traceback
        self._logged_at = 0.0  # when the streak last wrote a line (clock s)

    @property
    def failures(self) -> int:
        """Failures in a row so far; 0 after a success."""
        return self._failures

    def failed(self, exc: BaseException, **fields: Any) -> None:
        """Count `exc`, the failure of this pass, and log it if it is news or the last line is
        `every_s` old. `fields` go on the line as they did on the loop's own event."""
        now = self._clock()
        if self._failures == 0:
            self._since = now
        self._failures += 1
        if self._failures > 1:
            fields = {**fields, "failures": self._failures, "for_s": self._for_s(now)}
        if type(exc) is not self._kind:
            self._kind = type(exc)
            self._logged_at = now
            self._log.error(self._failed, exc_info=exc, **fields)
        elif now - self._logged_at >= self._every_s:
            self._logged_at = now
            self._log.warning(self._failed, error=_describe(exc), **fields)

    def attempt(self, step: Callable[[], object], **fields: Any) -> None:
        """Run one pass of the loop, `step()`: an exception is `failed` (never raised), a
        return is `succeeded`; `fields` go on either line."""
        try:
            step()
        except Exception as exc:
            self.failed(exc, **fields)
        else:
            self.succeeded(**fields)

    def succeeded(self, **fields: Any) -> None:
        """End the streak, if any, with the recovered event; nothing when there was none."""
        if self._failures == 0:
            return
        self._log.info(
            self._recovered,
            failures=self._failures,
            for_s=self._for_s(self._clock()),
            **fields,
        )
        self._failures = 0
        self._kind = None

    def _for_s(self, now: float) -> float:
        return round(now - self._since, 1)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX]
