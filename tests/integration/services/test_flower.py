"""Flower, started as the README and docs/operations.md say, sees the workers and import tasks.

A real `celery -A worker.celery_app flower` process watches real workers through the broker's
event stream; the test asks Flower's own HTTP API what it saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.harness.ports import free_port
from ops.harness.procstats import end_process
from producers import enqueue
from tests.factories import raw_order
from tests.fixtures.pipeline import Harness, PipelineFactory, wait_until
from worker.core.keys import IMPORT_TASK
from worker.core.states import OrderState

pytestmark = pytest.mark.integration


@pytest.fixture
def flower(redis_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """Flower on a free loopback port, its HTTP API open (FLOWER_UNAUTHENTICATED_API)."""
    port = free_port()
    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": redis_url,
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    log_path = tmp_path / "flower.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.celery_app",
                f"--broker={redis_url}",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)

    def answering() -> bool:
        if process.poll() is not None:
            pytest.fail(f"flower exited with {process.returncode}: {log_path.read_text()}")
        try:
            return client.get("/healthcheck").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answering, timeout_s=30, what="Flower to answer /healthcheck")
        yield client
    finally:
        client.close()
        end_process(process)


def test_flower_sees_workers_and_readable_import_tasks(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any, flower: httpx.Client
) -> None:
    """Flower lists the worker, and each import task by name with the order keys it carried in
    its arguments, finished successfully on that worker."""
    harness = Harness(redis_url)
    start_pipeline(name="flowerwatch@%h")
    keys = [f"fl-{n}" for n in range(3)]
    enqueue([raw_order(k) for k in keys], client=harness.client, publisher=harness.publisher)
    harness.wait_states(keys, {OrderState.SUBMITTED})

    def worker_listed() -> bool:
        workers = flower.get("/api/workers", params={"refresh": "true"}).json()
        return any(name.startswith("flowerwatch@") for name in workers)

    wait_until(worker_listed, timeout_s=30, what="Flower to list the worker")

    def import_tasks() -> list[dict[str, Any]]:
        tasks = flower.get("/api/tasks", params={"taskname": IMPORT_TASK}).json()
        return [t for t in tasks.values() if t.get("state") == "SUCCESS"]

    def every_key_seen() -> bool:
        args = " ".join(str(t.get("args")) for t in import_tasks())
        return all(k in args for k in keys)

    wait_until(every_key_seen, timeout_s=30, what="Flower to show tasks carrying every order key")
    for task in import_tasks():
        assert task["name"] == IMPORT_TASK
        assert str(task["worker"]).startswith("flowerwatch@")
        assert "'keys': [" in str(task["args"])
    harness.client.close()
