"""The scenario registry and the loop that runs scenarios on one cluster."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ops.chaos.cluster import ChaosBroker, Cluster
from ops.chaos.flow import ScenarioResult
from ops.chaos.ha import redis_primary_kill, redis_primary_stall
from ops.chaos.hostile_producers import hostile_producers
from ops.chaos.intake import intake_kills
from ops.chaos.misconfig import config_faults, retry_after_extremes
from ops.chaos.rabbitmq import rabbitmq_restart
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

# Name -> (number, scenario). The name is what `jetti-relay chaos --scenario` and the tests use;
# the number (issue 7's list, then issue 12's, 14's and 15's) stays accepted as an alias
# and is printed.
SCENARIOS: dict[str, tuple[int, ScenarioFn]] = {
    "kill": (1, kill_submitting_worker),
    "redis": (2, redis_restart),
    "outage": (3, jetti_outage),
    "throttle": (4, throttle_storm),
    "slow": (5, slow_responses),
    "duplicates": (6, duplicates_and_reordering),
    "rolling": (8, rolling_restart),
    "bad-input": (9, bad_input),
    "lost-message": (10, lost_messages),
    "hostile-producers": (11, hostile_producers),
    "config": (12, config_faults),
    "retry-after": (13, retry_after_extremes),
    "intake": (14, intake_kills),
    "redis-primary-kill": (15, redis_primary_kill),
    "redis-primary-stall": (16, redis_primary_stall),
    "rabbitmq": (17, rabbitmq_restart),
}
# Scenarios that break a broker of their own kind run on a cluster with that broker, whatever
# `--broker` says (the others run on the one chosen).
SCENARIO_BROKER: dict[str, ChaosBroker] = {"rabbitmq": "amqp"}


def _register_replay() -> None:
    # Scenario `replay` drives `jetti-relay dlq replay` (worker/pipeline/replayer.py), which
    # landed separately.
    try:
        module = importlib.import_module("ops.chaos.replay")
    except ImportError:
        return
    SCENARIOS["replay"] = (7, module.dlq_replay)


_register_replay()


def names_in_order() -> list[str]:
    """Every scenario name, in the order of their numbers (the order `chaos` runs them)."""
    return sorted(SCENARIOS, key=lambda name: SCENARIOS[name][0])


def resolve(names: Iterable[str]) -> list[str]:
    """Scenario names from names or their numbers; all of them when `names` is empty."""
    by_number = {number: name for name, (number, _fn) in SCENARIOS.items()}
    chosen: list[str] = []
    for given in names:
        name = by_number.get(int(given)) if given.isdigit() else given
        if name is None or name not in SCENARIOS:
            known = ", ".join(f"{n} ({SCENARIOS[n][0]})" for n in names_in_order())
            raise ValueError(f"unknown scenario {given!r}; known: {known}")
        chosen.append(name)
    return chosen or names_in_order()


def run_one(cluster: Cluster, name: str, scale: Scale) -> ScenarioResult:
    """Run scenario `name` on an emptied cluster; its workers are stopped afterwards."""
    cluster.fresh()
    started = time.monotonic()
    try:
        result = SCENARIOS[name][1](cluster, scale)
    finally:
        cluster.stop_workers()
    result.elapsed_s = time.monotonic() - started
    return result


def run_all(
    names: Iterable[str],
    scale: Scale,
    folder: Path,
    on_result: Callable[[ScenarioResult], None] | None = None,
    *,
    broker: ChaosBroker = "redis",
) -> list[ScenarioResult]:
    """Start a cluster in `folder` with the Celery messages on `broker`, run the scenarios in
    turn, stop everything. A scenario of SCENARIO_BROKER gets a second cluster on its broker
    when `broker` is another (started when first needed)."""
    clusters: dict[ChaosBroker, Cluster] = {}
    results = []
    try:
        for name in names:
            wanted = SCENARIO_BROKER.get(name, broker)
            if wanted not in clusters:
                sub = folder / wanted
                sub.mkdir(parents=True, exist_ok=True)
                clusters[wanted] = Cluster(sub, broker=wanted)
                clusters[wanted].start()
            result = run_one(clusters[wanted], name, scale)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        for cluster in clusters.values():
            cluster.close()
    return results
