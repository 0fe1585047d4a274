"""`jetti-relay bench intake` at a tiny scale, end to end through the installed entry point: its
own Redis, stream intake, HTTP intake and sandbox processes, every figure and target in the JSON
and the table, every order sent found in the ledger, and nothing left running afterwards.

The numbers themselves are not asserted (the machine is shared), only that they exist and are
consistent with each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.harness.ports import free_port
from ops.harness.procstats import process_groups_alive

pytestmark = pytest.mark.integration

ORDERS = 200
SINGLE = 100


@pytest.fixture(scope="module")
def tiny_intake_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The JSON and the printed table of one tiny run (shared by this module's tests)."""
    folder = tmp_path_factory.mktemp("bench-intake")
    out = folder / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    # Nothing listens here: the bench must never touch a Redis it did not start.
    env["JETTI_RELAY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "jetti-relay"), "bench", "intake"),
            *("--orders", str(ORDERS), "--single", str(SINGLE), "--repeat", "1"),
            *("--seconds", "0.4", "--connections", "4", "--json", str(out)),
        ],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


@pytest.mark.timeout(150)
def test_every_way_in_is_measured(tiny_intake_bench: tuple[dict[str, Any], str]) -> None:
    """Library, stream, NDJSON, one per request closed and open loop: a rate each, every order
    of each run in the ledger, no failed request, the stream's group drained."""
    result, _table = tiny_intake_bench
    [library] = result["library"]["runs"]
    assert library["accepted"] == library["in_ledger"] == ORDERS and library["rate"] > 0
    [stream] = result["stream"]["runs"]
    assert stream["complete"] and stream["in_ledger"] == ORDERS and stream["rejected"] == 0
    assert stream["rate"] > 0 and stream["feeder"]["rate"] > 0
    assert result["stream"]["vs_library"] == pytest.approx(
        result["stream"]["rate"] / result["library"]["rate"]
    )
    [ndjson] = result["http_ndjson"]["runs"]
    assert ndjson["sent"] == ndjson["ok"] == ORDERS // result["config"]["batch"]
    assert ndjson["statuses"] == {"202": ndjson["sent"]} and ndjson["in_ledger"] == ORDERS
    [single] = result["http_single"]["runs"]
    assert single["ok"] == single["in_ledger"] == SINGLE and single["errors"] == 0
    paced = result["http_open"]
    assert paced["target_rate"] >= result["config"]["min_open_rate"]
    [open_run] = paced["runs"]
    assert open_run["mode"] == "open" and open_run["ok"] == open_run["in_ledger"] > 0
    latency = paced["latency_s"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    ledger = result["ledger"]
    assert ledger["sent"] == ledger["held"] == 3 * ORDERS + SINGLE + open_run["orders"]
    assert ledger["missing"] == ledger["failed"] == 0


@pytest.mark.timeout(150)
def test_the_framework_cost_is_measured(tiny_intake_bench: tuple[dict[str, Any], str]) -> None:
    """The same trivial GET against the raw-ASGI sandbox and the intake (404 from each router)
    and the intake's /health: requests/s, server CPU per request, their ratio."""
    result, _table = tiny_intake_bench
    framework = result["framework"]
    for key, status in (("sandbox", "404"), ("intake", "404"), ("intake_health", "200")):
        [run] = framework[key]["runs"]
        assert run["ok"] > 0 and run["errors"] == 0 and run["statuses"] == {status: run["ok"]}
        assert framework[key]["rate"] > 0
    assert framework["ratio"] == pytest.approx(
        framework["intake"]["rate"] / framework["sandbox"]["rate"]
    )


@pytest.mark.timeout(150)
def test_the_table_has_every_row_and_target(tiny_intake_bench: tuple[dict[str, Any], str]) -> None:
    """Each figure has its row and each of the six targets its PASS or FAIL line."""
    result, table = tiny_intake_bench
    for row in (
        "library: producers.enqueue",
        "stream intake: XADD from another process",
        "stream intake / library",
        "HTTP NDJSON, 100 orders per request",
        "HTTP one order per request, 4 connections, closed loop",
        "HTTP one order per request, open loop at",
        "raw-ASGI sandbox: GET unrouted path",
        "intake's Starlette app: GET unrouted path",
        "intake's Starlette app: GET /health",
        "Starlette intake / raw ASGI",
        "orders sent / in the ledger / failed requests",
    ):
        assert row in table
    assert len(result["targets"]) == 6
    for target in result["targets"]:
        assert ("PASS  " if target["pass"] else "FAIL  ") + target["name"] in table
    [nothing_lost] = [t for t in result["targets"] if t["kind"] == "count"]
    assert nothing_lost["pass"]


def test_nothing_is_left_running(tiny_intake_bench: tuple[dict[str, Any], str]) -> None:
    """After the bench exits, no process of any process group it started is alive."""
    result, _table = tiny_intake_bench
    groups = set(result["pids"])
    assert len(groups) >= 4  # Redis, the stream intake, the HTTP intake, the sandbox
    assert process_groups_alive(groups) == []
