"""The processes a chaos scenario runs and breaks: redis-server, the sandbox, `jetti-relay worker`s,
and with `broker="amqp"` a private RabbitMQ node carrying the Celery messages.

Everything runs on loopback on free ports, in one folder (logs, the AOF file, readiness files,
the RabbitMQ node's data), and everything started here is stopped by `Cluster.close()`. Redis
runs with AOF on and `appendfsync everysec`, the durability the project relies on
(docs/operations.md, Durability). On `amqp` the ledger stays in that Redis; every process a
scenario starts (workers, intake, commands) gets the node's URL as JETTI_RELAY_BROKER_URL.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import redis

from ops.chaos.books import SaleCancellation
from ops.harness.ports import free_port, wait_for
from ops.harness.rabbitmq import RabbitMQNode
from ops.harness.redis import RedisProcess
from ops.harness.sandbox import SandboxRoutes
from ops.harness.workers import WorkerProcess, worker_argv, worker_target_env
from producers.enqueue import EnqueueSummary, enqueue
from worker.celery_app import create_app
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.publisher import Publisher
from worker.settings import Settings
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger
from worker.store.ledger_schema import OrderField

# WorkerProcess lives in ops.harness.workers; scenarios import it from here with the cluster.
__all__ = ["BROKERS", "CHAOS_ENV", "Cluster", "SandboxProcess", "WorkerProcess"]

ChaosBroker = Literal["redis", "amqp"]
# What `jetti-relay chaos --broker` accepts: the ledger's Redis, or a private RabbitMQ node.
BROKERS: tuple[ChaosBroker, ...] = ("redis", "amqp")

CHANNEL_ID = 7
START_TIMEOUT_S = 30.0
# How long a producer keeps retrying one enqueue call while Redis is down.
PRODUCER_RETRY_S = 30.0
# Parallel readers of the sandbox history when the books are checked.
HISTORY_READERS = 8

# Short timeouts and retries so a scenario settles in seconds. The timeout chain still holds
# (HTTP 4 s in all < soft 6 s < hard 8 s < visibility 30 s < lock 10 s is not required: the lock
# only has to outlive the hard limit). A killed submission is recovered by the sweeper once it is
# SUBMITTING for hard limit + 30 s (worker.pipeline.maintenance.SUBMITTING_MARGIN_S), i.e. 38 s
# here.
CHAOS_ENV: dict[str, str] = {
    "JETTI_RELAY_BACKOFF_BASE_S": "0.2",
    "JETTI_RELAY_BACKOFF_MAX_S": "2",
    "JETTI_RELAY_MAX_ATTEMPTS": "12",
    "JETTI_RELAY_RETRY_DEADLINE_S": "120",
    "JETTI_RELAY_BLOCKED_DEFAULT_S": "0.5",
    "JETTI_RELAY_PUMP_INTERVAL_S": "0.05",
    "JETTI_RELAY_SWEEP_INTERVAL_S": "0.5",
    "JETTI_RELAY_STUCK_AFTER_S": "3",
    "JETTI_RELAY_BREAKER_PROBE_S": "1",
    "JETTI_RELAY_RATE_PER_S": "1000",
    "JETTI_RELAY_RATE_BURST": "1000",
    "JETTI_RELAY_HTTP_CONNECT_TIMEOUT_S": "1",
    "JETTI_RELAY_HTTP_READ_TIMEOUT_S": "1",
    "JETTI_RELAY_HTTP_WRITE_TIMEOUT_S": "1",
    "JETTI_RELAY_HTTP_POOL_TIMEOUT_S": "1",
    "JETTI_RELAY_SOFT_TIME_LIMIT_S": "6",
    "JETTI_RELAY_HARD_TIME_LIMIT_S": "8",
    "JETTI_RELAY_VISIBILITY_TIMEOUT_S": "30",
    "JETTI_RELAY_LOCK_TTL_S": "10",
    "JETTI_RELAY_LOG_FORMAT": "json",
    "JETTI_RELAY_LOG_LEVEL": "INFO",
}


@dataclass
class SandboxProcess(SandboxRoutes):
    """The Jetti sandbox (`python -m ops.sandbox`), sync throttle off, and its test routes."""

    folder: Path
    port: int = field(default_factory=free_port)
    webhook_hash: str = field(default_factory=lambda: secrets.token_hex(16))
    api_token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None
    _client: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            limits = httpx.Limits(max_connections=HISTORY_READERS * 2)
            self._client = httpx.Client(base_url=self.base_url, timeout=60.0, limits=limits)
        return self._client

    def start(self) -> None:
        env = {
            **os.environ,
            "SANDBOX_WEBHOOK_HASH": self.webhook_hash,
            "SANDBOX_API_TOKEN": self.api_token,
        }
        argv = [
            sys.executable,
            "-m",
            "ops.sandbox",
            "--port",
            str(self.port),
            "--channel-id",
            str(CHANNEL_ID),
            "--no-throttle",
        ]
        with open(self.folder / "sandbox.log", "wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(
            lambda: self.client.get("/_sandbox/stats").status_code == 200,
            "sandbox",
            timeout_s=START_TIMEOUT_S,
            process=self.process,
        )

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def histories(self, external_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Every order's history, read in parallel (the applier is waited for once first)."""
        self.stats()
        ids = list(external_ids)

        def one(external_id: str) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = self._json(
                self.client.get(
                    "/_sandbox/history", params={"externalId": external_id, "wait": "0"}
                )
            )
            return result

        with ThreadPoolExecutor(HISTORY_READERS) as pool:
            return dict(zip(ids, pool.map(one, ids), strict=True))

    def cancellations(self) -> dict[str, SaleCancellation]:
        """Jetti's own record of every cancelled sale, or one a cancel request reached, by
        externalId (`GET /_sandbox/cancellations`)."""
        records: dict[str, dict[str, Any]] = self._json(self.client.get("/_sandbox/cancellations"))
        return {key: SaleCancellation.from_sandbox(r) for key, r in records.items()}


class Cluster:
    """Redis + sandbox for a run of scenarios, workers per scenario, and the producer side."""

    def __init__(
        self, folder: Path, *, appendonly: bool = True, broker: ChaosBroker = "redis"
    ) -> None:
        self.folder = folder
        self.broker: ChaosBroker = broker
        self.redis = RedisProcess(folder, appendonly=appendonly)
        # The chaos settings' hard limit (8 s) sits far below RabbitMQ's default timeout.
        self.rabbitmq: RabbitMQNode | None = RabbitMQNode(folder) if broker == "amqp" else None
        self.sandbox = SandboxProcess(folder)
        self.workers: list[WorkerProcess] = []
        self._started_workers = 0
        self.client: redis.Redis[bytes] | None = None

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> Cluster:
        self.redis.start()
        if self.rabbitmq is not None:
            self.rabbitmq.start()
        self.sandbox.start()
        settings = Settings(redis_url=self.redis.url, broker_url=self.broker_url)
        self.connect(settings, redis.Redis.from_url(self.redis.url))
        return self

    def connect(self, settings: Settings, client: redis.Redis[bytes]) -> None:
        """The producer's and the books' side of the cluster: `settings`, the stores on
        `client`, and a publisher on the settings' broker."""
        self.settings = settings
        self.client = client
        self.keys = Keys(settings.key_prefix)
        self.ledger = Ledger(client, self.keys)
        self.dead = DeadLetters(client, self.keys)
        self.app = create_app(settings)
        self.publisher = Publisher(self.app, batch_size=settings.batch_size)

    def close(self) -> None:
        self.stop_workers()
        if self.client is not None:
            self.client.close()
        if getattr(self, "app", None) is not None:
            self.app.close()
        self.sandbox.stop()
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        self.redis.stop()

    @property
    def broker_url(self) -> str:
        """The Celery broker's URL: the private RabbitMQ node's, or the ledger's Redis."""
        return self.rabbitmq.url if self.rabbitmq is not None else self.redis.url

    def fresh(self) -> None:
        """Before a scenario: no worker, an empty Redis, a reset sandbox without faults."""
        self.stop_workers()
        assert self.client is not None
        self.client.flushall()
        if self.rabbitmq is not None:
            self.drop_queued_messages()  # a queue outlives FLUSHALL on RabbitMQ
        self.sandbox.reset()

    def drop_queued_messages(self) -> int:
        """Empty the orders queue as an operator's flush would (kombu's purge: LLEN + DEL on
        Redis, queue.purge on RabbitMQ); the messages dropped. Messages a worker holds stay."""
        from kombu.exceptions import ChannelError

        with self.app.connection_for_write() as conn:
            try:
                return int(conn.default_channel.queue_purge(self.keys.orders_queue()) or 0)
            except ChannelError:
                return 0  # RabbitMQ: not declared yet, nothing was ever published

    @property
    def env(self) -> dict[str, str]:
        return {
            **CHAOS_ENV,
            **worker_target_env(
                self.redis.url,
                base_url=self.sandbox.base_url,
                webhook_hash=self.sandbox.webhook_hash,
                api_token=self.sandbox.api_token,
                channel_id=CHANNEL_ID,
            ),
            "JETTI_RELAY_BROKER_URL": self.broker_url,
        }

    def start_worker(
        self,
        *,
        concurrency: int = 2,
        pump: bool = True,
        intake: bool | None = None,
        wait: bool = True,
        extra_env: Mapping[str, str] | None = None,
        **env: str,
    ) -> WorkerProcess:
        """Start `jetti-relay worker -c N` with the chaos settings plus `env` and `extra_env`
        overrides (`extra_env` for names that are not Python identifiers or clash); the stream
        intake runs in it as `intake` says (None: with the pump)."""
        index = self._started_workers
        self._started_workers += 1
        name = f"chaos{index}"
        ready = self.folder / f"{name}.ready"
        log_path = self.folder / f"{name}.log"
        ready.unlink(missing_ok=True)
        full_env = {
            **os.environ,
            **self.env,
            **env,
            **(extra_env or {}),
            "JETTI_RELAY_READY_FILE": str(ready),
        }
        argv = worker_argv(f"{name}@%h", concurrency=concurrency, pump=pump, intake=intake)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = WorkerProcess(name=name, process=process, log_path=log_path, ready_file=ready)
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def worker_logs(self) -> str:
        return "\n".join(w.log() for w in self.workers)

    # --- producer side --------------------------------------------------------------------
    def enqueue(self, raws: Sequence[bytes]) -> EnqueueSummary:
        """Enqueue like a well-behaved producer: on a Redis or broker error, retry the call.

        A retried call is safe: a version already recorded comes back `unchanged`, and one whose
        message was lost stays PENDING for the sweeper.
        """
        assert self.client is not None
        deadline = time.monotonic() + PRODUCER_RETRY_S
        while True:
            try:
                return enqueue(
                    list(raws), client=self.client, publisher=self.publisher, keys=self.keys
                )
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def unsettled(self) -> int:
        """Orders in a non-final state (PENDING, SUBMITTING, RETRY_WAIT)."""
        counts = self.ledger.state_counts()
        return sum(n for state, n in counts.items() if not state.is_final)

    def wait_settled(self, keys: Sequence[str], timeout_s: float) -> float | None:
        """Wait until every key is in the ledger in a final state; the time it happened, or None
        after `timeout_s`. Redis errors (a restart in progress) count as not settled yet."""
        deadline = time.monotonic() + timeout_s
        pending = list(keys)
        while time.monotonic() < deadline:
            try:
                pending = [k for k in pending if not self._final(k)]
                if not pending:
                    return time.time()
            except redis.RedisError:
                pass
            time.sleep(0.1)
        return None

    def _final(self, key: str) -> bool:
        assert self.client is not None
        state = self.client.hget(self.keys.order(key), OrderField.STATE)
        return state is not None and OrderState(state.decode()).is_final

    def submitting_pids(self) -> list[int]:
        """PIDs of pool processes in the middle of a delivery, read from the ledger's events."""
        keys = self.ledger.stuck(OrderState.SUBMITTING, older_than=time.time() + 60, limit=50)
        pids: list[int] = []
        for key in keys:
            for event in reversed(self.ledger.events(key)):
                if event.get("type") == "delivery_started":
                    worker = str(event.get("worker", ""))
                    pid = worker.rpartition(":")[2]
                    if pid.isdigit() and int(pid) not in pids:
                        pids.append(int(pid))
                    break
        return pids
