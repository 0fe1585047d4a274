"""Scenario 7: dead-letter replays, driven through `jetti-relay dlq replay` as an operator would.

Every order is dead-lettered while Jetti answers 503 (two attempts each). Jetti recovers; a third
of the orders get a newer version, which goes through and so "meanwhile succeeded". Then
`jetti-relay dlq replay --all --rate R` runs and is killed with SIGKILL half-way, and run again to
the end. The orders that meanwhile succeeded must not be sent again; every other order must reach
Jetti exactly once (no duplicate at all, harmless or not); every dead letter ends resolved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult, raw_order, record
from ops.chaos.scenarios import SETTLE_TIMEOUT_S, Scale, finish
from worker.core.states import DeadStatus, OrderState

# Orders per second the interrupted replay sends, slow enough to kill it half-way.
REPLAY_RATE = 10.0


def _replay_argv() -> list[str]:
    return [sys.executable, "-m", "ops.cli", "dlq", "replay", "--all", "--json"]


def dlq_replay(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Replay of orders that meanwhile succeeded, and a replay interrupted by kill -9."""
    keys = [f"replay-{n}" for n in range(scale.orders)]
    cluster.sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    cluster.start_worker(concurrency=scale.concurrency, JETTI_RELAY_MAX_ATTEMPTS="2")
    books = Books()
    firsts = [raw_order(k, 1) for k in keys]
    record(books, firsts, {r.position for r in cluster.enqueue(firsts).rejections})
    if cluster.wait_settled(keys, SETTLE_TIMEOUT_S) is None:
        raise RuntimeError("orders were not dead-lettered while Jetti was down")
    dead_first = [k for k in keys if (e := cluster.ledger.get(k)) and e.state is OrderState.DEAD]
    cluster.sandbox.set_faults(error_rate=0.0)

    succeeded = keys[::3]
    updates = [raw_order(k, 2) for k in succeeded]
    record(books, updates, {r.position for r in cluster.enqueue(updates).rejections})
    if cluster.wait_settled(succeeded, SETTLE_TIMEOUT_S) is None:
        raise RuntimeError("the newer versions did not settle")

    env = {**os.environ, **cluster.env}
    log = cluster.folder / "replay.log"
    with open(log, "ab") as out:
        first = subprocess.Popen(
            [*_replay_argv(), "--rate", str(REPLAY_RATE)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    to_replay = len(dead_first) - len(succeeded)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        replayed = cluster.dead.stats().by_status.get(DeadStatus.REPLAYED, 0)
        resolved = cluster.dead.stats().by_status.get(DeadStatus.RESOLVED, 0)
        if replayed + resolved - len(succeeded) >= max(1, to_replay // 3):
            break
        time.sleep(0.05)
    killed_mid_run = first.poll() is None
    if killed_mid_run:
        os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    fault_end = time.time()
    with open(log, "ab") as out:
        second = subprocess.run(
            _replay_argv(), env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120
        )
    result = finish(
        7,
        "dead-letter replay, killed and rerun",
        cluster,
        books,
        fault_end,
        dead_lettered_first=len(dead_first),
        succeeded_meanwhile=len(succeeded),
        replay_killed=killed_mid_run,
    )
    if not killed_mid_run:
        result.failures.append("the first replay finished before it could be killed")
    if second.returncode != 0:
        result.failures.append(f"the second replay exited with {second.returncode}")
    if len(dead_first) != len(keys):
        result.failures.append(f"only {len(dead_first)} of {len(keys)} orders were dead-lettered")
    histories = cluster.sandbox.histories(keys)
    resent = [k for k in succeeded if len(histories[k]) != 1]
    if resent:
        result.failures.append(
            f"{len(resent)} orders that meanwhile succeeded were sent again (e.g. {resent[0]})"
        )
    twice = [k for k in keys if len(histories[k]) > 1]
    if twice:
        result.failures.append(
            f"{len(twice)} orders reached Jetti more than once (e.g. {twice[0]})"
        )
    unresolved = [
        k for k in keys if (d := cluster.dead.get(k)) is None or d.status is not DeadStatus.RESOLVED
    ]
    if unresolved:
        result.failures.append(
            f"{len(unresolved)} dead letters not resolved (e.g. {unresolved[0]})"
        )
    return result
