"""worker.loop_failures.FailureStreak: what a loop that keeps failing writes to the log."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from worker.loop_failures import FailureStreak


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def streak(clock: Clock) -> FailureStreak:
    return FailureStreak(
        structlog.get_logger("test"),
        failed="pass_failed",
        recovered="pass_recovered",
        every_s=30.0,
        clock=clock,
    )


def _fail(streak: FailureStreak, exc: Exception, **fields: Any) -> None:
    """Fail as a loop does: from inside its except block."""
    try:
        raise exc
    except Exception as caught:
        streak.failed(caught, **fields)


def test_the_first_failure_is_the_loops_event_with_its_traceback(streak: FailureStreak) -> None:
    """The first failure of a streak is logged as before the streak existed: the loop's event,
    level error, the exception attached (its traceback), the loop's fields."""
    error = ConnectionError("refused")
    with capture_logs() as logs:
        _fail(streak, error, holder="h1")
    assert logs == [
        {"event": "pass_failed", "log_level": "error", "exc_info": error, "holder": "h1"}
    ]


def test_the_same_failure_again_is_one_line_at_most_every_every_s(
    streak: FailureStreak, clock: Clock
) -> None:
    """Failures of the same type after the first: nothing until `every_s` has passed since the
    last line, then one warning without a traceback that counts them and says for how long."""
    with capture_logs() as logs:
        _fail(streak, ConnectionError("refused"))
        for _ in range(29):
            clock.now_s += 1.0
            _fail(streak, ConnectionError("refused"))
        assert len(logs) == 1
        clock.now_s += 1.0
        _fail(streak, ConnectionError("refused again"))
        clock.now_s += 29.0
        _fail(streak, ConnectionError("refused"))
    assert logs[1:] == [
        {
            "event": "pass_failed",
            "log_level": "warning",
            "error": "ConnectionError: refused again",
            "failures": 31,
            "for_s": 30.0,
        }
    ]


def test_a_failure_of_another_type_brings_its_traceback_back(
    streak: FailureStreak, clock: Clock
) -> None:
    """Another exception type within the quiet time is news: logged with its traceback at once,
    counted in the same streak; the type it replaced would get its traceback again too."""
    with capture_logs() as logs:
        _fail(streak, ConnectionError("refused"))
        clock.now_s += 2.0
        timeout = TimeoutError("read timed out")
        _fail(streak, timeout)
        clock.now_s += 2.0
        refused = ConnectionError("refused")
        _fail(streak, refused)
    assert [(e["log_level"], e["exc_info"], e["failures"], e["for_s"]) for e in logs[1:]] == [
        ("error", timeout, 2, 2.0),
        ("error", refused, 3, 4.0),
    ]


def test_the_first_success_after_failures_logs_the_recovery(
    streak: FailureStreak, clock: Clock
) -> None:
    """The first success after a streak logs the recovered event with the number of failures
    and how long they lasted; the next failure starts a new streak, traceback first."""
    with capture_logs() as logs:
        _fail(streak, ConnectionError("refused"))
        clock.now_s += 4.5
        _fail(streak, ConnectionError("refused"))
        clock.now_s += 1.0
        streak.succeeded(holder="h1")
        streak.succeeded(holder="h1")
        assert streak.failures == 0
        again = ConnectionError("refused")
        _fail(streak, again)
    assert logs[1:] == [
        {
            "event": "pass_recovered",
            "log_level": "info",
            "failures": 2,
            "for_s": 5.5,
            "holder": "h1",
        },
        {"event": "pass_failed", "log_level": "error", "exc_info": again},
    ]


def test_a_success_without_failures_logs_nothing(streak: FailureStreak) -> None:
    """A loop calls `succeeded` after every good pass: only the end of a streak is news."""
    with capture_logs() as logs:
        streak.succeeded()
    assert logs == []
