"""Private services for the demo and the benchmark: Redis, the Jetti sandbox, workers.

Everything started here runs in its own session (process group) with its log in one folder, and
`Services.stop()` ends every group it started, children and grandchildren included (a Celery
worker forks its pool), so nothing outlives the command.

The parts live beside this module: `ports` (free_port, wait_for, ServiceError), `redis`
(RedisProcess, finding a redis-server), `sandbox` (SandboxService, SandboxRoutes), `workers`
(WorkerProcess, worker_argv, pipeline_env) and `procstats` (process trees, memory, CPU).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from ops.harness.ports import ServiceError, free_port, wait_for
from ops.harness.redis import RedisProcess, RedisService, redis_server_binary
from ops.harness.sandbox import SandboxService
from ops.harness.workers import worker_argv

__all__ = ["STOP_TIMEOUT_S", "ServiceError", "Services", "exit_on_sigterm"]


# A worker finishes its running tasks on SIGTERM (warm shutdown) before it is killed.
STOP_TIMEOUT_S = 20.0


def exit_on_sigterm() -> None:
    """Turn SIGTERM (and an inherited-ignored SIGINT) into SystemExit / KeyboardInterrupt, so
    the caller's `finally` stops what it started instead of leaving it running."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts background jobs with SIGINT ignored; kill -INT should still stop us.
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Services:
    """Processes started for one command, each in its own process group, stopped in reverse."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        # Every process started, stopped or not: each leads its own process group.
        self.started: list[int] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start `argv` with its output in `<folder>/<name>.log`."""
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                argv,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append((name, process))
        self.started.append(process.pid)
        return process

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def stop_one(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process, wait, then SIGKILL its whole process group."""
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT_S)
        # Grandchildren (Celery's pool) may outlive their parent: end the whole group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(timeout=10)
        self.processes = [(n, p) for n, p in self.processes if p is not process]

    def stop(self) -> None:
        """Stop everything started, newest first."""
        for _name, process in list(reversed(self.processes)):
            self.stop_one(process)

    def pids(self) -> list[int]:
        return [p.pid for _n, p in self.processes]

    # -- the services --------------------------------------------------------------------------

    def start_redis(self, name: str = "redis") -> RedisService:
        """A private redis-server on a free loopback port, no persistence."""
        import redis

        binary, origin = redis_server_binary()
        spec = RedisProcess(self.folder, appendonly=False, binary=binary)
        process = self.start(name, spec.argv(), os.environ)
        url = spec.url
        wait_for(
            lambda: redis.Redis.from_url(url).ping(),
            f"redis-server ({binary})",
            process=process,
            log=self.log_path(name),
        )
        return RedisService(url=url, pid=process.pid, origin=origin)

    def start_sandbox(
        self, name: str = "sandbox", *, latency_ms: float = 0.0, channel_id: int = 1
    ) -> SandboxService:
        """The Jetti sandbox on a free port, sync throttle off, with fresh random secrets."""
        webhook_hash, api_token, port = secrets.token_hex(16), secrets.token_hex(16), free_port()
        env = {**os.environ, "SANDBOX_WEBHOOK_HASH": webhook_hash, "SANDBOX_API_TOKEN": api_token}
        argv = [
            sys.executable,
            "-m",
            "ops.sandbox",
            "--port",
            str(port),
            "--channel-id",
            str(channel_id),
            "--no-throttle",
            "--latency-ms",
            str(latency_ms),
        ]
        process = self.start(name, argv, env)
        base = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: httpx.get(f"{base}/_sandbox/stats", timeout=2).status_code == 200,
            "the Jetti sandbox",
            process=process,
            log=self.log_path(name),
        )
        return SandboxService(
            base_url=base,
            webhook_hash=webhook_hash,
            api_token=api_token,
            channel_id=channel_id,
            pid=process.pid,
        )

    def start_worker(
        self, name: str, env: Mapping[str, str], *, concurrency: int, pump: bool = True
    ) -> subprocess.Popen[bytes]:
        """`jetti-relay worker -c N` (Celery prefork, task events on, plus the pump); returns
        once it consumes."""
        ready = self.folder / f"{name}.ready"
        ready.unlink(missing_ok=True)
        argv = worker_argv(f"{name}@%h", concurrency=concurrency, pump=pump)
        process = self.start(name, argv, {**env, "JETTI_RELAY_READY_FILE": str(ready)})
        wait_for(ready.exists, f"the worker {name}", process=process, log=self.log_path(name))
        return process
