"""`jetti-relay worker`'s policy for its Celery child: which exits end the command, and how long
it pauses before starting the child again (ops/commands/worker.py)."""

from __future__ import annotations

import pytest

from ops.commands.worker import (
    HEALTHY_RUN_S,
    RESTART_DELAY_MAX_S,
    RESTART_DELAY_MIN_S,
    RESTART_HISTORY,
    child_is_final,
    restart_delay_s,
)
from worker.core.exit_codes import ExitCode
from worker.settings import CHILD_RESTART_VARIABLE, child_restart

QUICK_S = 2.0  # a child that died soon after it started
LONG_S = HEALTHY_RUN_S + 1.0


@pytest.mark.parametrize(
    ("run_times_s", "expected_s"),
    [
        ([QUICK_S], 1.0),
        ([QUICK_S] * 2, 2.0),
        ([QUICK_S] * 3, 4.0),
        ([QUICK_S] * 4, 8.0),
        ([QUICK_S] * 5, 16.0),
        ([QUICK_S] * 6, 30.0),
        ([QUICK_S] * 50, 30.0),
    ],
)
def test_quick_exits_in_a_row_double_the_pause_up_to_the_cap(
    run_times_s: list[float], expected_s: float
) -> None:
    """1 s after the first quick exit, then 2, 4, 8, 16, and never more than 30 s."""
    assert restart_delay_s(run_times_s) == expected_s


def test_a_child_that_ran_long_enough_resets_the_pause() -> None:
    """After a child that ran a minute, the pause is the minimum again, however many quick exits
    came before it; the quick exits after it count from there."""
    assert restart_delay_s([QUICK_S] * 5 + [LONG_S]) == RESTART_DELAY_MIN_S
    assert restart_delay_s([QUICK_S] * 5 + [LONG_S, QUICK_S, QUICK_S]) == 2.0
    assert restart_delay_s([HEALTHY_RUN_S]) == RESTART_DELAY_MIN_S


def test_the_history_kept_is_long_enough_to_reach_the_cap() -> None:
    """The parent remembers RESTART_HISTORY run times: enough quick exits to reach the cap."""
    assert restart_delay_s([QUICK_S] * RESTART_HISTORY) == RESTART_DELAY_MAX_S


@pytest.mark.parametrize("code", [ExitCode.OK, ExitCode.CONFIG, ExitCode.REDIS_TOO_OLD])
def test_a_refusal_or_clean_exit_of_the_first_child_ends_the_worker(code: int) -> None:
    """The first child is the one that shows a configuration mistake: its refusal is final."""
    assert child_is_final(code, restart=0)


@pytest.mark.parametrize("code", [ExitCode.OK, ExitCode.CONFIG, ExitCode.REDIS_TOO_OLD, 1, -9])
def test_a_restarted_child_is_started_again_whatever_its_exit_code(code: int) -> None:
    """A restarted child meets an outage (a replica down, a failover), not a configuration
    mistake: it is started again whatever it exits with."""
    assert not child_is_final(code, restart=1)
    assert not child_is_final(code, restart=7)


@pytest.mark.parametrize("code", [1, -9, 70])
def test_a_crash_of_the_first_child_is_not_final(code: int) -> None:
    """A crash or a kill of the first child is restarted as before."""
    assert not child_is_final(code, restart=0)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("1", 1), ("12", 12), ("x", 0)]
)
def test_the_child_reads_its_restart_number_from_the_parent(
    value: str | None, expected: int
) -> None:
    """CHILD_RESTART_VARIABLE is the restart's number; absent or not a number, a first start."""
    environ = {} if value is None else {CHILD_RESTART_VARIABLE: value}
    assert child_restart(environ) == expected


def test_the_restart_marker_is_not_a_setting_name() -> None:
    """The unknown-setting check refuses unknown JETTI_RELAY_* names: the marker is not one."""
    assert not CHILD_RESTART_VARIABLE.upper().startswith("JETTI_RELAY_")
