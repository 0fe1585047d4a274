"""Every exit code of the `jetti-relay` commands, in one table (a promised interface).

The numbers never change. A number keeps one broad meaning across commands (0 done, 1 done but
not all good, 2 refused before starting, 3 not there, 4 Redis unreachable, 5 Redis refused, 6
recorded on the Redis primary but replication unconfirmed, 7 the item's state refuses the
action, 78 Redis too old); where a command gives a number its own, narrower meaning, that
meaning is a second name for the same number (an enum alias: `ExitCode.NOT_LEADER is
ExitCode.NOT_FOUND`), listed in `MEANINGS` with the commands that use it. Click's own usage
error is 2 as well.

    ExitCode.OK                 0
    ExitCode.PARTIAL            1   (REJECTED, UNHEALTHY, FAILED)
    ExitCode.USAGE              2   (CONFIG, UNREADABLE, RECONCILER_OFF, MISSING_EXTRA)
    ExitCode.NOT_FOUND          3   (NOT_LEADER)
    ExitCode.REDIS_UNREACHABLE  4
    ExitCode.REDIS_REFUSED      5
    ExitCode.UNREPLICATED       6
    ExitCode.WRONG_STATE        7
    ExitCode.REDIS_TOO_OLD      78  (sysexits' EX_CONFIG)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """A process exit code of a `jetti-relay` command; see `MEANINGS` for each name's meaning."""

    OK = 0
    PARTIAL = 1
    REJECTED = 1
    UNHEALTHY = 1
    FAILED = 1
    USAGE = 2
    CONFIG = 2
    UNREADABLE = 2
    RECONCILER_OFF = 2
    MISSING_EXTRA = 2
    NOT_FOUND = 3
    NOT_LEADER = 3
    REDIS_UNREACHABLE = 4
    REDIS_REFUSED = 5
    UNREPLICATED = 6
    WRONG_STATE = 7
    REDIS_TOO_OLD = 78


# Name -> (commands that exit with it, one-line meaning). One row per name, aliases included.
MEANINGS: dict[str, tuple[str, str]] = {
    "OK": ("every command", "done: everything asked for was done, or all is well"),
    "PARTIAL": ("dlq, migrate-keys", "done in part: some items could not be handled"),
    "REJECTED": ("enqueue, preview", "some orders invalid (each reported), the valid ones done"),
    "UNHEALTHY": ("health", "health: at least one check failed"),
    "FAILED": (
        "reconcile, chaos, alerts",
        "a reconcile pass failed or is behind; a chaos scenario failed; alerts ack: not firing",
    ),
    "USAGE": ("every command", "usage error, or a destructive command without --yes"),
    "CONFIG": ("every command", "the JETTI_RELAY_* settings are invalid (refused to start)"),
    "UNREADABLE": ("enqueue", "enqueue: the input is not JSON, a JSON array or JSON Lines"),
    "RECONCILER_OFF": ("reconcile", "reconcile: not configured (no API token)"),
    "MISSING_EXTRA": ("sandbox, demo, chaos, bench", "an optional dependency group is missing"),
    "NOT_FOUND": ("dlq, order", "no such order or dead letter"),
    "NOT_LEADER": ("reconcile, notify", "reconcile run, notify --once: another host leads"),
    "REDIS_UNREACHABLE": (
        "enqueue, dlq, order, orders, reconcile, reindex, metrics, migrate-keys, alerts, notify",
        "Redis (or the broker) unreachable, or older than supported",
    ),
    "REDIS_REFUSED": (
        "enqueue, migrate-keys",
        "Redis refused a command part-way (OOM, READONLY, NOREPLICAS...)",
    ),
    "UNREPLICATED": (
        "enqueue",
        "enqueue: recorded on the Redis primary, replicas unconfirmed: send again",
    ),
    "WRONG_STATE": (
        "order, dlq",
        "refused by state: order retry/discard of an order in flight, settled or dead; "
        "dlq replay --cancel of a job that has ended",
    ),
    "REDIS_TOO_OLD": ("worker, pump", "worker: the ledger's Redis is older than supported"),
}


def table(*, with_commands: bool = False) -> str:
    """The exit codes as text, one line per name (aliases included), for `--help` and the docs;
    `with_commands` adds the commands that use each name."""
    width = max(len(name) for name in ExitCode.__members__)
    lines = []
    for name, code in ExitCode.__members__.items():
        commands, meaning = MEANINGS[name]
        suffix = f" ({commands})" if with_commands else ""
        lines.append(f"{int(code):>3}  {name:<{width}}  {meaning}{suffix}")
    return "\n".join(lines)
