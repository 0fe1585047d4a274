"""`jetti-relay bench` on its tiny profile: every figure is there and agrees with the sandbox;
and the other benchmarks are subcommands of the same command.

The tiny profile runs the installed entry point (real Redis, sandbox and worker processes it
starts itself), so this is the benchmark harness end to end; the numbers themselves are not
asserted (the machine is shared), only that they exist, are consistent, and that nothing is
left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ops.bench.cli import BENCH_SUBCOMMANDS, bench
from ops.harness.ports import free_port
from ops.harness.procstats import process_groups_alive

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The JSON and the printed table of one tiny run (shared by this module's tests)."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    # Nothing listens here: the bench must never touch a Redis it did not start.
    env["JETTI_RELAY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "jetti-relay"),
            "bench",
            "--profile",
            "tiny",
            "--json",
            str(out),
        ],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def _figures(run: dict[str, Any]) -> None:
    assert run["throughput"] > 0
    assert run["seconds"] > 0
    for p in ("p50", "p95", "p99"):
        assert run["latency_s"][p] is not None and run["latency_s"][p] >= 0
    assert run["latency_s"]["p50"] <= run["latency_s"]["p95"] <= run["latency_s"]["p99"]


@pytest.mark.timeout(150)
def test_every_figure_is_reported(tiny_bench: tuple[dict[str, Any], str]) -> None:
    """Enqueue rate, end-to-end throughput and latency for ours and both baselines, the paced
    run, peak RSS of the workers and Redis, memory growth, ratios and every target."""
    result, table = tiny_bench
    assert result["enqueue"]["rate"] > 0
    assert result["enqueue"]["accepted"] == result["enqueue"]["orders"]
    assert list(result["latencies"]) == ["0"]
    run = result["latencies"]["0"]
    for name in ("ours", "ours_half_rate", "naive_celery", "plain_loop"):
        _figures(run[name])
    assert run["ours_half_rate"]["target_rate"] == pytest.approx(run["ours"]["throughput"] / 2)
    assert run["ours"]["peak_rss_kb"]["workers"] > 0
    assert run["ours"]["cpu_s"]["workers"] > 0 and run["ours"]["cpu_s"]["sandbox"] > 0
    assert run["naive_celery"]["peak_rss_kb"]["workers"] > 0
    redis = run["ours"]["peak_rss_kb"]["redis"]
    assert redis["vm_hwm_kb"] > 0 and redis["used_memory_peak_kb"] > 0
    assert run["ratios"]["ours_vs_naive"] == pytest.approx(
        run["ours"]["throughput"] / run["naive_celery"]["throughput"]
    )
    assert run["ratios"]["ours_vs_loop"] == pytest.approx(
        run["ours"]["throughput"] / run["plain_loop"]["throughput"]
    )
    memory = result["memory"]
    assert memory["at_10pct"]["workers_rss_kb"] > 0 and memory["at_100pct"]["workers_rss_kb"] > 0
    assert memory["flat"] == (memory["worker_growth"] <= 0.10)
    names = [t["name"] for t in result["targets"]]
    assert len(names) == 5  # enqueue, vs naive, e2e at 0 ms, p99 at half rate, memory
    for target in result["targets"]:
        assert ("PASS  " if target["pass"] else "FAIL  ") + target["name"] in table


@pytest.mark.timeout(150)
def test_counts_agree_with_the_sandbox(tiny_bench: tuple[dict[str, Any], str]) -> None:
    """Every order of every run reached the sandbox exactly once: delivered equals the
    sandbox's own sale count, and ours sent no duplicate."""
    result, _table = tiny_bench
    orders = result["config"]["orders"]
    run = result["latencies"]["0"]
    ours = run["ours"]
    assert ours["complete"] and ours["delivered"] == ours["sandbox_sales"] == orders
    assert ours["sandbox_versions"] == orders and ours["sandbox_duplicates"] == 0
    paced = run["ours_half_rate"]
    assert paced["complete"] and paced["delivered"] == paced["sandbox_sales"] == paced["orders"]
    naive = run["naive_celery"]
    assert naive["complete"] and naive["delivered"] == naive["sandbox_sales"] == orders
    loop = run["plain_loop"]
    assert loop["delivered"] == loop["sandbox_sales"] == loop["orders"]


def test_nothing_is_left_running(tiny_bench: tuple[dict[str, Any], str]) -> None:
    """After the bench exits, no process of any process group it started is alive."""
    result, _table = tiny_bench
    groups = set(result["pids"])
    assert len(groups) >= 9  # Redis, sandbox and workers of each run
    alive = process_groups_alive(groups)
    assert alive == []


@pytest.mark.parametrize("name", sorted(BENCH_SUBCOMMANDS))
def test_each_benchmark_is_a_subcommand(name: str) -> None:
    """`jetti-relay bench NAME --help` works for every benchmark (no `python -m` entry left)."""
    result = CliRunner().invoke(bench, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"bench {name} [OPTIONS]" in result.output


def test_bare_bench_lists_its_subcommands() -> None:
    """`jetti-relay bench --help` shows the comparison's options (the run without a subcommand)
    and every subcommand."""
    result = CliRunner().invoke(bench, ["--help"])
    assert result.exit_code == 0, result.output
    assert "--profile" in result.output
    for name in BENCH_SUBCOMMANDS:
        assert f"  {name} " in result.output


def test_comparison_options_before_a_subcommand_are_refused() -> None:
    """`bench --profile tiny transform` is a usage error (2), not a silently ignored option."""
    result = CliRunner().invoke(bench, ["--profile", "tiny", "transform"])
    assert result.exit_code == 2
    assert "--profile" in result.output


def test_bench_transform_runs() -> None:
    """A tiny `jetti-relay bench transform` through the installed entry point prints both
    medians in milliseconds."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jetti-relay"), "bench", "transform", "--repeat", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.endswith(" ms") and "median" in line for line in lines)
