"""The stream intake from outside Python: the real `redis-cli` appends, real `jetti-relay intake`
and `jetti-relay worker` processes read, the sandbox receives.

The `redis-cli XADD` line is the one docs/intake.md shows (its `intake-xadd` section), run as it
is: the proof that an upstream in any language can feed the relay with nothing but Redis.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs import doc_section
from tests.factories import raw_order
from tests.fixtures.intake import KEYS, add_entry, pending
from tests.fixtures.pipeline import Harness, PipelineFactory, wait_until
from worker.core.states import OrderState
from worker.store.intake import IntakeStream
from worker.store.stats import Stats

pytestmark = pytest.mark.integration


def documented_xadd() -> list[str]:
    """The `redis-cli XADD ...` command of docs/intake.md, as argv."""
    lines = [line for line in doc_section("docs/intake.md", "intake-xadd").splitlines() if line]
    [command] = [shlex.split(line) for line in lines if line.startswith("redis-cli ")]
    return command


def test_an_order_appended_with_redis_cli_reaches_the_sandbox(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any, harness: Harness
) -> None:
    """The documented `redis-cli XADD` feeds one order that a `jetti-relay worker` (whose
    stream intake runs by default) records under the entry's id prefix and source, acknowledges,
    and submits to the sandbox."""
    start_pipeline()
    command = documented_xadd()
    assert command[:3] == ["redis-cli", "XADD", KEYS.intake_stream()]
    done = subprocess.run(
        ["redis-cli", "-u", redis_url, *command[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    entry_id = done.stdout.strip()
    assert entry_id.split("-")[0].isdigit(), done

    harness.wait_states(["shop-a:1001"], {OrderState.SUBMITTED})
    entry = harness.ledger.get("shop-a:1001")
    assert entry is not None and entry.source == "shop-a"
    assert len(sandbox.sales("shop-a:1001")) == 1
    wait_until(lambda: pending(harness.client) == 0, what="the entry to be acknowledged")
    assert IntakeStream(harness.client, KEYS).status().lag == 0


@pytest.mark.parametrize(
    ("flags", "why"),
    [({"intake": False}, "--no-intake"), ({"pump": False}, "--no-pump, and no --intake")],
)
def test_the_worker_leaves_the_stream_alone_when_told(
    redis_url: str, start_pipeline: PipelineFactory, harness: Harness, flags: Any, why: str
) -> None:
    """With --no-intake, or --no-pump without --intake, `jetti-relay worker` starts no stream
    consumer: once it consumes Celery messages, the stream and its group still do not exist
    (the intake creates both first thing) and it never logged intake_started."""
    worker = start_pipeline(**flags)
    add_entry(harness.client, raw_order("ni-1"))
    harness.enqueue([raw_order("ni-2")])
    harness.wait_states(["ni-2"], {OrderState.SUBMITTED, OrderState.CONFIRMED})
    assert harness.client.xinfo_groups(KEYS.intake_stream()) == [], why
    assert harness.state("ni-1") is None
    assert "intake_started" not in worker.log()


def test_several_intake_processes_share_the_stream(
    redis_url: str, harness: Harness, tmp_path: Path
) -> None:
    """Two `jetti-relay intake` processes reading at once record every entry exactly once (no
    copy recorded `unchanged`), acknowledge all, and each stops on SIGTERM with exit 0."""
    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": redis_url,
        "JETTI_RELAY_INTAKE_BATCH_SIZE": "25",
        "JETTI_RELAY_LOG_FORMAT": "json",
    }
    logs = [tmp_path / f"intake-{n}.log" for n in range(2)]
    processes = []
    for n, log in enumerate(logs):
        with open(log, "wb") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ops.cli", "intake", "--consumer", f"i{n}"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    keys = [f"ip-{n}" for n in range(200)]
    stream = IntakeStream(harness.client, KEYS)
    try:
        wait_until(
            lambda: all("intake_started" in log.read_text() for log in logs),
            what="both intake processes to start reading",
        )
        for key in keys:
            add_entry(harness.client, raw_order(key, lines=1))
        wait_until(
            lambda: (status := stream.status()).lag == 0 and status.pending == 0,
            what="every entry read and acknowledged",
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=20) for process in processes]
    assert codes == [0, 0], [log.read_text() for log in logs]
    assert all(harness.state(k) == OrderState.PENDING for k in keys)
    counts = Stats(harness.client, KEYS).record_counts()
    assert counts.get("accepted") == len(keys)
    assert not counts.get("unchanged")
    assert all("intake_stopped" in log.read_text() for log in logs)
