"""`jetti-relay worker` starts its Celery worker again when it dies on its own.

Regression (chaos scenario 2): with Redis killed mid-run, kombu ended one Celery worker with
"Unrecoverable error: AttributeError(... 'hostname')" and that machine stopped consuming. The
kombu race is not reproducible on demand, so the test kills the Celery main process instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster, WorkerProcess
from ops.chaos.flow import raw_order, record, settle

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("restart")).start()
    yield started
    started.close()


def celery_main(worker: WorkerProcess) -> int | None:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        pid, ppid = (int(x) for x in line.split())
        if ppid == worker.process.pid:
            return pid
    return None


def test_a_dead_celery_worker_is_started_again(cluster: Cluster) -> None:
    """kill -9 of the Celery main process: a new one starts and consumes the next orders."""
    worker = cluster.start_worker(concurrency=1)
    first = celery_main(worker)
    assert first is not None
    worker.ready_file.unlink()
    os.kill(first, signal.SIGKILL)
    worker.wait_ready()
    assert worker.alive()
    assert celery_main(worker) not in (None, first)
    books = Books()
    raws = [raw_order(f"again-{n}") for n in range(5)]
    record(books, raws, {r.position for r in cluster.enqueue(raws).rejections})
    report, recover_s = settle(cluster, books, fault_end=time.time(), timeout_s=30)
    assert recover_s is not None and report.delivered == 5
