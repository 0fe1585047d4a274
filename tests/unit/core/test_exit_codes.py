"""The one table of exit codes: its numbers are a promised interface, every name has a meaning,
and no command exits with a bare number instead of a name from the table."""

from __future__ import annotations

import ast
from pathlib import Path

from click.testing import CliRunner

from ops.cli import main
from worker.core.exit_codes import MEANINGS, ExitCode, table

ROOT = Path(__file__).resolve().parents[3]
COMMAND_PACKAGES = ("ops", "producers", "worker")
# Calls that end a process (or a click command) with the code given as their last argument.
EXITING_CALLS = frozenset({"exit", "SystemExit", "Exit", "fail"})


def test_the_numbers_never_change() -> None:
    """Each name keeps its number: scripts and supervisors depend on them."""
    assert {name: int(code) for name, code in ExitCode.__members__.items()} == {
        "OK": 0,
        "PARTIAL": 1,
        "REJECTED": 1,
        "UNHEALTHY": 1,
        "FAILED": 1,
        "USAGE": 2,
        "CONFIG": 2,
        "UNREADABLE": 2,
        "RECONCILER_OFF": 2,
        "MISSING_EXTRA": 2,
        "NOT_FOUND": 3,
        "NOT_LEADER": 3,
        "REDIS_UNREACHABLE": 4,
        "REDIS_REFUSED": 5,
        "UNREPLICATED": 6,
        "WRONG_STATE": 7,
        "REDIS_TOO_OLD": 78,
    }


def test_every_name_has_one_meaning() -> None:
    """The names are unique, and each has its commands and a one-line meaning (aliases too)."""
    names = list(ExitCode.__members__)
    assert len(names) == len(set(names))
    assert set(MEANINGS) == set(names)
    for commands, meaning in MEANINGS.values():
        assert commands and meaning and "\n" not in meaning


def test_the_table_is_printed_by_the_root_help() -> None:
    """`jetti-relay --help` ends with every code, name and meaning."""
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for line in table().splitlines():
        assert line in result.output


def _bare_exits(path: Path) -> list[str]:
    """`file:line` of each exiting call whose code is an int literal, and of each module-level
    `EXIT_* = <int>` (a second table)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            code = node.args[-1]
            if (
                name in EXITING_CALLS
                and isinstance(code, ast.Constant)
                and isinstance(code.value, int)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and type(node.value.value) is int
        ):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.startswith("EXIT_"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_command_exits_with_a_bare_number() -> None:
    """`sys.exit(1)`, `SystemExit(2)`, `ctx.exit(4)`, `fail(..., 3)` or `EXIT_X = 5` anywhere in
    the product code would be a code outside the table."""
    offenders = [
        where
        for package in COMMAND_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for where in _bare_exits(path)
    ]
    assert offenders == []
