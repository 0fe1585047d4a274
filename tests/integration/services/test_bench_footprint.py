"""`jetti-relay bench footprint` (library and stream) and `jetti-relay bench restore-drill` at
tiny scale, through the installed entry point (real Redis with AOF, sandbox and worker processes
they start themselves).

The figures are not asserted as numbers (the machine is shared), only what must hold whatever the
machine: every order reached the sandbox once, the bytes of an order reached Redis and its AOF, a
tombstone is smaller than the order it replaced, and a restore holds every order acknowledged
before its backup, as the relay's own commands see it.
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

FOOTPRINT_ORDERS = 40
DRILL_ORDERS = 200


def _bench(folder: Path, args: list[str], timeout_s: float) -> tuple[dict[str, Any], str]:
    out = folder / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    # Nothing listens here: the bench must never touch a Redis it did not start.
    env["JETTI_RELAY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jetti-relay"), "bench", *args, "--json", str(out)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


@pytest.fixture(scope="module")
def footprint(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("footprint")
    args = ["footprint", "--orders", str(FOOTPRINT_ORDERS), "--idle-s", "1"]
    return _bench(folder, args, timeout_s=110)


@pytest.fixture(scope="module")
def footprint_stream(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("footprint-stream")
    args = ["footprint", "--orders", str(FOOTPRINT_ORDERS), "--idle-s", "1", "--via", "stream"]
    return _bench(folder, args, timeout_s=110)[0]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    folder = tmp_path_factory.mktemp("drill")
    args = ["restore-drill", "--orders", str(DRILL_ORDERS), "--chunk", "20", "--short-timeouts"]
    return _bench(folder, args, timeout_s=110)


@pytest.mark.timeout(150)
def test_footprint_delivers_every_order_once(footprint: tuple[dict[str, Any], str]) -> None:
    """The measured run is the real pipeline: every order SUBMITTED, one sale each, no resend."""
    result, _table = footprint
    assert result["states"] == {"submitted": FOOTPRINT_ORDERS}
    assert result["sandbox"]["sales"] == FOOTPRINT_ORDERS
    assert result["sandbox"]["duplicates"] == 0


@pytest.mark.timeout(150)
def test_footprint_figures_follow_the_order(footprint: tuple[dict[str, Any], str]) -> None:
    """Accepting an order sends its raw bytes to Redis and writes them to the AOF, through the
    ledger's script; delivering it runs scripts and sends commands; the tombstone left by shedding
    is smaller than the settled order, and its timeline is gone."""
    result, table = footprint
    accept, deliver = result["accept"], result["deliver"]
    body = result["raw_order_bytes"]
    assert accept["net_in_bytes_per_order"] > body
    assert accept["aof_bytes_per_order"] > body
    assert accept["script_calls_per_order"] > 0 and "evalsha" in accept["by_command_per_order"]
    assert deliver["commands_per_order"] > deliver["script_calls_per_order"] > 0
    assert deliver["redis_cpu_us_per_order"] > 0
    settled, tombstone = result["settled"]["per_order_keys"], result["tombstone"]["per_order_keys"]
    assert 0 < tombstone["order_hash"] < settled["order_hash"]
    assert tombstone["events"] == 0 and settled["events"] > 0
    assert result["in_flight"]["shared_keys_per_order"]["celery_queue"] > 0
    assert result["fixed"]["worker_start_commands"] > 0
    assert "commands (scripts' inner included)" in table and "MEMORY USAGE order_hash" in table


@pytest.mark.timeout(150)
def test_footprint_through_the_stream_counts_the_upstream_xadd(
    footprint_stream: dict[str, Any],
) -> None:
    """With `--via stream` an order is accepted by one XADD (upstream's) that the intake reads
    into the ledger; the order then goes through the same pipeline to the sandbox."""
    accept = footprint_stream["accept"]
    assert accept["by_command_per_order"]["xadd"] == 1.0
    assert "evalsha" in accept["by_command_per_order"]
    assert accept["net_in_bytes_per_order"] > footprint_stream["raw_order_bytes"]
    assert footprint_stream["states"] == {"submitted": FOOTPRINT_ORDERS}
    assert footprint_stream["sandbox"]["sales"] == FOOTPRINT_ORDERS


@pytest.mark.timeout(150)
def test_a_restore_holds_every_order_acknowledged_before_its_backup(
    drill: tuple[dict[str, Any], str],
) -> None:
    """For both backups (the AOF directory and a BGSAVE), the restored ledger holds every order
    acknowledged before the backup began, `order show` finds the first and the last, Redis
    answers `health`, and no order was dead-lettered."""
    result, table = drill
    assert set(result["backups"]) == {"aof", "rdb"}
    for kind, backup in result["backups"].items():
        check = backup["verify"]
        assert 0 < backup["acknowledged_before"] < DRILL_ORDERS, kind
        assert check["missing"] == 0, (kind, check["missing_first"])
        assert sum(check["states"].values()) >= backup["acknowledged_before"], kind
        assert check["order_show_exit"] == [0, 0], kind
        assert check["health_checks"]["redis"] == "ok", kind
        assert check["dead_letters"] == 0, kind
    assert "missing of those acknowledged before the backup: 0" in table


@pytest.mark.timeout(150)
def test_a_worker_on_the_restore_settles_what_the_backup_held(
    drill: tuple[dict[str, Any], str],
) -> None:
    """The worker started on the AOF restore leaves no order waiting, and every order the backup
    held ends SUBMITTED (the ones Jetti already had are resent: same version, harmless)."""
    result, _table = drill
    aof = result["backups"]["aof"]
    held = sum(aof["verify"]["states"].values())
    assert aof["after_drain"]["states"] == {"submitted": held}


@pytest.mark.timeout(150)
def test_nothing_is_left_running(
    footprint: tuple[dict[str, Any], str],
    footprint_stream: dict[str, Any],
    drill: tuple[dict[str, Any], str],
) -> None:
    """After each bench exits, no process group it started is alive."""
    groups = set(footprint[0]["pids"]) | set(footprint_stream["pids"]) | set(drill[0]["pids"])
    assert process_groups_alive(groups) == []
