"""`jetti-relay worker` processes for the harness: the argv, the environment that points a worker
at a Redis and a sandbox, and `WorkerProcess` (one worker in its own session)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ops.harness.ports import START_TIMEOUT_S, wait_for
from ops.harness.sandbox import ASYNC_PATH, SandboxService


def worker_argv(
    name: str, *, concurrency: int, pump: bool = True, intake: bool | None = None
) -> list[str]:
    """`jetti-relay worker -c N -n <name>` (Celery prefork, task events on, plus the pump
    unless `pump` is False, and the stream intake as `intake` says, by default as the pump)
    as this interpreter runs it."""
    argv = [sys.executable, "-m", "ops.cli", "worker", "-c", str(concurrency), "-n", name]
    if not pump:
        argv.append("--no-pump")
    if intake is not None:
        argv.append("--intake" if intake else "--no-intake")
    return argv


@dataclass
class WorkerProcess:
    """One `jetti-relay worker` started in its own session (Celery master + prefork children,
    pump and sweeper thread), its output in `log_path`; it touches `ready_file` once it
    consumes (JETTI_RELAY_READY_FILE)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_file: Path

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        wait_for(
            self.ready_file.exists,
            f"the worker {self.name}",
            timeout_s=timeout_s,
            process=self.process,
            log=self.log_path,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> float:
        """SIGTERM (Celery's warm shutdown), SIGKILL of the group after `timeout_s`; returns
        the seconds it took to exit."""
        started = time.monotonic()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group (the pool children too)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def worker_target_env(
    redis_url: str, *, base_url: str, webhook_hash: str, api_token: str, channel_id: int
) -> dict[str, str]:
    """The JETTI_RELAY_* variables that point a worker at `redis_url` (store and broker) and
    at the sandbox on `base_url` (async endpoint, sync API, its secrets and channel)."""
    return {
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": redis_url,
        "JETTI_RELAY_JETTI_ASYNC_URL": base_url + ASYNC_PATH,
        "JETTI_RELAY_JETTI_API_URL": base_url,
        "JETTI_RELAY_WEBHOOK_HASH": webhook_hash,
        "JETTI_RELAY_API_TOKEN": api_token,
        "JETTI_RELAY_CHANNEL_ID": str(channel_id),
    }


def pipeline_env(redis_url: str, sandbox: SandboxService, **settings: str) -> dict[str, str]:
    """The environment of a worker pointed at `redis_url` and the sandbox's async endpoint,
    plus `settings` (JETTI_RELAY_* names). The caller's own JETTI_RELAY_* variables are left
    out, so a setting meant for production never changes a demo or a benchmark."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")},
        "JETTI_RELAY_JETTI_MODE": "async",
        **worker_target_env(
            redis_url,
            base_url=sandbox.base_url,
            webhook_hash=sandbox.webhook_hash,
            api_token=sandbox.api_token,
            channel_id=sandbox.channel_id,
        ),
        **settings,
    }
