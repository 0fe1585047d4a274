"""The scenario registry and the loop that runs scenarios on one cluster."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult
from ops.chaos.hostile_producers import hostile_producers
from ops.chaos.misconfig import config_faults, retry_after_extremes
from ops.chaos.recovery import bad_input, lost_messages, rolling_restart
from ops.chaos.scenarios import (
    Scale,
    ScenarioFn,
    duplicates_and_reordering,
    jetti_outage,
    kill_submitting_worker,
    redis_restart,
    slow_responses,
    throttle_storm,
)

# Number -> (short name for the CLI, scenario). Numbers follow issue 7's list, then issue 12's.
SCENARIOS: dict[int, tuple[str, ScenarioFn]] = {
    1: ("kill", kill_submitting_worker),
    2: ("redis", redis_restart),
    3: ("outage", jetti_outage),
    4: ("throttle", throttle_storm),
    5: ("slow", slow_responses),
    6: ("duplicates", duplicates_and_reordering),
    8: ("rolling", rolling_restart),
    9: ("bad-input", bad_input),
    10: ("lost-message", lost_messages),
    11: ("hostile-producers", hostile_producers),
    12: ("config", config_faults),
    13: ("retry-after", retry_after_extremes),
}


def _register_replay() -> None:
    # Scenario 7 drives `jetti-relay dlq replay` (worker/pipeline/replayer.py), which lands
    # separately.
    try:
        module = importlib.import_module("ops.chaos.replay")
    except ImportError:
        return
    SCENARIOS[7] = ("replay", module.dlq_replay)


_register_replay()


def resolve(names: Iterable[str]) -> list[int]:
    """Scenario numbers from numbers or short names; all of them when `names` is empty."""
    by_name = {name: number for number, (name, _fn) in SCENARIOS.items()}
    chosen: list[int] = []
    for name in names:
        number = int(name) if name.isdigit() else by_name.get(name)
        if number is None or number not in SCENARIOS:
            known = ", ".join(f"{n} ({s})" for n, (s, _f) in sorted(SCENARIOS.items()))
            raise ValueError(f"unknown scenario {name!r}; known: {known}")
        chosen.append(number)
    return chosen or sorted(SCENARIOS)


def run_one(cluster: Cluster, number: int, scale: Scale) -> ScenarioResult:
    """Run scenario `number` on an emptied cluster; its workers are stopped afterwards."""
    cluster.fresh()
    started = time.monotonic()
    try:
        result = SCENARIOS[number][1](cluster, scale)
    finally:
        cluster.stop_workers()
    result.elapsed_s = time.monotonic() - started
    return result


def run_all(
    numbers: Iterable[int],
    scale: Scale,
    folder: Path,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Start a cluster in `folder`, run the scenarios in turn, stop everything."""
    cluster = Cluster(folder).start()
    results = []
    try:
        for number in numbers:
            result = run_one(cluster, number, scale)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        cluster.close()
    return results
