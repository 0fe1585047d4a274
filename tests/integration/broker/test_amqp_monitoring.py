"""Health, metrics and Flower with RabbitMQ as the broker (the ledger in Redis).

The queue's figures come from RabbitMQ itself (a passive declare), the workers answer
`health`'s ping over RabbitMQ, and Flower follows their events there. Each test has its own
key prefix, hence its own queue and its own control and event exchanges on the shared broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from ops.harness.ports import free_port
from ops.harness.procstats import end_process
from ops.monitoring.metrics import build_registry
from ops.monitoring.sources import AmqpQueue, Sources
from tests.factories import raw_order
from tests.fixtures.exporter import run_health
from tests.fixtures.pipeline import PipelineFactory, wait_until
from tests.fixtures.rabbitmq import AmqpBroker, AmqpHarness
from worker.core.keys import IMPORT_TASK
from worker.core.states import OrderState

pytestmark = pytest.mark.integration


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["name"] == name)
    return found


def scrape(sources: Sources) -> str:
    return generate_latest(build_registry(sources)).decode()


def test_metrics_read_the_queue_from_rabbitmq_and_leave_unacked_out(
    amqp_harness: AmqpHarness, amqp_broker: AmqpBroker
) -> None:
    """Messages waiting in the RabbitMQ queue are counted from the broker, the consumers
    too; the unacked figure, which AMQP cannot tell without the management plugin, is absent
    rather than 0."""
    amqp_harness.enqueue([raw_order(f"m-{n}") for n in range(3)])
    sources = Sources.from_settings(amqp_harness.settings)
    assert isinstance(sources.broker, AmqpQueue)
    text = scrape(sources)
    queue = amqp_broker.queue
    assert f'jetti_relay_celery_queue_messages{{queue="{queue}"}} 1.0' in text
    assert f'jetti_relay_celery_queue_consumers{{queue="{queue}"}} 0.0' in text
    assert "jetti_relay_broker_up 1.0" in text
    assert "jetti_relay_queue_depth 3.0" in text
    assert "celery_unacked_messages" not in text


def test_a_rabbitmq_that_does_not_answer_is_broker_up_0_not_a_failed_scrape(
    amqp_harness: AmqpHarness,
) -> None:
    """With RabbitMQ unreachable the scrape still reports the ledger (redis_up 1) and says
    the broker is down; the broker's password does not appear in what it reports."""
    port = free_port()
    settings = amqp_harness.settings.model_copy(
        update={"broker_url": f"amqp://guest:s3cr3t-pw@127.0.0.1:{port}//"}
    )
    text = scrape(Sources.from_settings(settings))
    assert "jetti_relay_broker_up 0.0" in text
    assert "jetti_relay_redis_up 1.0" in text
    assert "celery_queue_messages" not in text
    assert "s3cr3t-pw" not in text


def test_health_pings_the_workers_over_rabbitmq(
    redis_url: str, amqp_broker: AmqpBroker, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """`jetti-relay health --only workers` finds the worker consuming over RabbitMQ, and only
    this deployment's (its own control exchange); with RabbitMQ gone it fails by name."""
    start_pipeline(name="amqphealth@%h", **amqp_broker.env)
    code, doc = run_health(redis_url, "--only", "workers", **amqp_broker.env)
    workers = check(doc, "workers")
    assert (code, workers["status"], workers["value"]) == (0, "ok", 1), doc
    assert "amqphealth@" in workers["detail"]
    gone = {**amqp_broker.env, "JETTI_RELAY_BROKER_URL": f"amqp://127.0.0.1:{free_port()}//"}
    code, doc = run_health(redis_url, "--only", "workers", **gone)
    workers = check(doc, "workers")
    assert (code, workers["status"]) == (1, "fail"), doc
    assert "broker unreachable" in workers["detail"]


def test_flower_sees_a_worker_and_its_import_tasks_over_rabbitmq(
    redis_url: str,
    amqp_harness: AmqpHarness,
    amqp_broker: AmqpBroker,
    start_pipeline: PipelineFactory,
    sandbox: Any,
    tmp_path: Path,
) -> None:
    """Flower started as docs/operations.md says, on the RabbitMQ broker, lists the worker and
    the import tasks it ran (their events travel through the deployment's event exchange)."""
    port = free_port()
    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": redis_url,
        **amqp_broker.env,
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
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:

        def answering() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return client.get("/healthcheck").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answering, timeout_s=30, what="Flower to answer /healthcheck")
        start_pipeline(name="amqpflower@%h", **amqp_broker.env)
        keys = [f"fla-{n}" for n in range(3)]
        amqp_harness.enqueue([raw_order(k) for k in keys])
        amqp_harness.wait_states(keys, {OrderState.SUBMITTED})

        def worker_listed() -> bool:
            workers = client.get("/api/workers", params={"refresh": "true"}).json()
            return any(name.startswith("amqpflower@") for name in workers)

        wait_until(worker_listed, timeout_s=30, what="Flower to list the worker")

        def every_key_seen() -> bool:
            tasks = client.get("/api/tasks", params={"taskname": IMPORT_TASK}).json()
            args = " ".join(str(t.get("args")) for t in tasks.values())
            return all(k in args for k in keys)

        wait_until(every_key_seen, timeout_s=30, what="Flower to show the import tasks")
    finally:
        client.close()
        end_process(process)
