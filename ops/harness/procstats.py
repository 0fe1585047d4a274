"""Processes seen through /proc (Linux): a process tree, live members of process groups, memory
and CPU of a tree, and ending one process politely."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc/<pid>/stat fields after the command name) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields follow the last ')'.
        yield int(entry.name), stat.rsplit(")", 1)[1].split()


def process_tree(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def process_groups_alive(groups: set[int]) -> list[str]:
    """ "<pid>: <command line>" of each live (not zombie) process in any of `groups` (process
    group ids): what a command that stops everything it started must leave empty."""
    alive = []
    for pid, fields in _proc_stats():
        if int(fields[2]) in groups and fields[0] != "Z":
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            alive.append(f"{pid}: {cmdline}")
    return alive


def end_process(process: subprocess.Popen[Any], *, timeout_s: float = 10.0) -> None:
    """SIGTERM `process`; SIGKILL it if it has not exited after `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def memory_kb(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in kB (`VmRSS`, `VmHWM`); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_memory_kb(root_pid: int, field: str) -> int:
    """Sum of `field` over the process tree of `root_pid`."""
    return sum(memory_kb(pid, field) for pid in process_tree(root_pid))


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of the live processes in the tree of `root_pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
