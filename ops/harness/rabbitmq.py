"""A private RabbitMQ node for the chaos suite: start, stop (graceful or kill -9), restart.

The machine's own broker (127.0.0.1:5672) is shared and never restarted: a scenario that breaks
the broker starts a node of its own, on free loopback ports (AMQP and Erlang distribution), with
its data (mnesia), logs, config and Erlang cookie in one folder. Restarting it on the same node
name and folder keeps its durable quorum queues and their messages, as a restarted production
broker does.

Needs Debian's rabbitmq-server (`/usr/lib/rabbitmq/bin/rabbitmq-server`) and the right to run it
(root, or the rabbitmq user); `node_available()` says whether this machine can.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.harness.ports import ServiceError, free_port, wait_for

SERVER_PATHS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)
# A node boots in about 3 s on this machine; a loaded CI box may take several times that.
NODE_START_TIMEOUT_S = 60.0
# A graceful stop syncs the quorum queues' logs; give it time before SIGKILL.
NODE_STOP_TIMEOUT_S = 30.0
# RabbitMQ's default consumer_timeout (30 min), in milliseconds as rabbitmq.conf takes it.
DEFAULT_CONSUMER_TIMEOUT_MS = 1_800_000


def server_binary() -> str | None:
    """The rabbitmq-server start script, or None when RabbitMQ is not installed."""
    for path in (*SERVER_PATHS, shutil.which("rabbitmq-server")):
        if path and os.access(path, os.X_OK):
            return path
    return None


def node_available() -> str | None:
    """None when this machine can start a private node, else why not (for a skip or an error
    message: never a silent skip)."""
    if server_binary() is None:
        return "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    if os.geteuid() != 0:
        return "a private RabbitMQ node needs root here (Debian's script switches to rabbitmq)"
    return None


def amqp_reachable(url: str, *, timeout_s: float = 1.0) -> bool:
    """True when a broker accepts an AMQP connection (login included) at `url`."""
    from kombu.connection import Connection
    from kombu.exceptions import OperationalError

    with Connection(url, connect_timeout=timeout_s) as conn:  # type: ignore[no-untyped-call]
        try:
            conn.ensure_connection(max_retries=1)
        except (OperationalError, OSError):
            return False
    return True


@dataclass
class RabbitMQNode:
    """One private RabbitMQ node on loopback (`url`), its files under `folder`."""

    folder: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    consumer_timeout_ms: int = DEFAULT_CONSUMER_TIMEOUT_MS
    name: str = field(default_factory=lambda: f"jr{secrets.token_hex(4)}")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    def _env(self) -> dict[str, str]:
        base = self.folder / "rabbitmq"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            # The Erlang cookie lives in $HOME: the node's own, never the system node's.
            "HOME": str(base),
        }

    def _write_config(self) -> None:
        base = self.folder / "rabbitmq"
        base.mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"consumer_timeout = {self.consumer_timeout_ms}\n"
            # guest may log in over loopback only by default; the listener is loopback anyway.
            "loopback_users = none\n",
            encoding="utf-8",
        )
        (base / "plugins").write_text("[].\n", encoding="utf-8")

    def start(self) -> None:
        """Start the node and return once it accepts AMQP logins. ServiceError when it
        cannot (not installed, no right to, or it never answered)."""
        problem = node_available()
        if problem is not None:
            raise ServiceError(problem)
        binary = server_binary()
        assert binary is not None
        self._write_config()
        with open(self.folder / f"rabbitmq-{self.name}.out", "ab") as out:
            self.process = subprocess.Popen(
                [binary],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: amqp_reachable(self.url),
            f"RabbitMQ node {self.nodename}",
            timeout_s=NODE_START_TIMEOUT_S,
            process=self.process,
            log=self.folder / f"rabbitmq-{self.name}.out",
        )

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Erlang's orderly `init:stop`: queues synced, connections closed) or
        SIGKILL of the node's process group, and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reap_group(self.process.pid)
        self.process = None

    def restart(self, *, kill: bool = False, down_s: float = 0.0) -> float:
        """Stop (see `stop`), stay down `down_s` s, start again on the same port with the same
        data; returns the seconds the broker did not answer."""
        started = time.monotonic()
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()
        return time.monotonic() - started

    @staticmethod
    def _reap_group(pgid: int) -> None:
        # The script's children (beam, erl_child_setup) share its group; none may outlive it
        # holding the port. epmd daemonizes into a session of its own and stays (shared).
        deadline = time.monotonic() + NODE_STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
