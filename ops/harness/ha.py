"""A replicated Redis under Sentinel on loopback, for the HA tests and chaos scenarios: one
primary, replicas following it, and sentinels watching them with short timeouts.

Every node runs in its own folder (AOF on, as `RedisProcess`), on its own free port. Sentinel
runs as `redis-server <conf> --sentinel` (the same binary), so nothing more is installed.
`min_replicas_to_write` is set on every node, replicas included, because a promoted replica
becomes the primary that must keep refusing writes nobody replicated.

`password` puts every data node behind `requirepass` (and `masterauth`, so replicas follow the
primary with it); `sentinel_password` does the same for the sentinels (`requirepass`, and
`sentinel-pass` so they still talk to each other).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ops.harness.ports import ServiceError, free_port, wait_for
from ops.harness.redis import RedisProcess

MASTER_NAME = "jr-primary"
# Sentinel's own timing, short so a failover takes a second or two here.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
START_TIMEOUT_S = 30.0


@dataclass
class SentinelProcess:
    """One sentinel on a free port, watching `master` at 127.0.0.1:`primary_port`."""

    folder: Path
    primary_port: int
    quorum: int
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    master: str = MASTER_NAME
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # The data nodes' password (`auth-pass`), and this sentinel's own (`requirepass`).
    auth_pass: str = ""
    password: str = ""
    # Its run id, and what it knows at start: the other sentinels (port, id) and the replicas'
    # ports. Sentinels otherwise learn both from hello messages sent every 2 s, so a group would
    # take seconds to agree; written as Sentinel itself writes them when it rewrites the file.
    myid: str = field(default_factory=lambda: secrets.token_hex(20))
    peers: tuple[tuple[int, str], ...] = ()
    replica_ports: tuple[int, ...] = ()

    @property
    def conf(self) -> Path:
        return self.folder / f"sentinel-{self.port}.conf"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites this file as it learns the replicas, the others and each failover.
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.folder}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.master} 1\n"
            f"sentinel myid {self.myid}\n"
            + "".join(
                f"sentinel known-replica {self.master} 127.0.0.1 {port}\n"
                for port in self.replica_ports
            )
            + "".join(
                f"sentinel known-sentinel {self.master} 127.0.0.1 {port} {run_id}\n"
                for port, run_id in self.peers
            )
            + (f"sentinel auth-pass {self.master} {self.auth_pass}\n" if self.auth_pass else "")
            + (
                f"requirepass {self.password}\nsentinel sentinel-pass {self.password}\n"
                if self.password
                else ""
            ),
            encoding="utf-8",
        )
        binary = RedisProcess(self.folder).argv()[0]
        log = self.folder / f"sentinel-{self.port}.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [binary, str(self.conf), "--sentinel"], stdout=out, stderr=subprocess.STDOUT
            )
        client = self.client()
        try:
            wait_for(client.ping, "redis sentinel", process=self.process, log=log)
        finally:
            client.close()

    def client(self) -> redis.Redis[bytes]:
        return redis.Redis(
            port=self.port,
            password=self.password or None,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
        )

    def primary_port_seen(self) -> int | None:
        """The primary's port as this sentinel sees it now, or None when it cannot tell."""
        client = self.client()
        try:
            reply = client.execute_command("SENTINEL", "get-master-addr-by-name", self.master)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(reply[1]) if reply else None

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None


@dataclass
class _PasswordRedisProcess(RedisProcess):
    """A data node behind `requirepass` (its start-up PING authenticates)."""

    password: str = ""

    def argv(self) -> list[str]:
        auth = ("--requirepass", self.password, "--masterauth", self.password)
        return [*super().argv(), *(auth if self.password else ())]

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, password=self.password or None)
        try:
            wait_for(client.ping, "redis-server", process=self.process)
        finally:
            client.close()


class RedisHA:
    """A primary, `replicas` replicas and `sentinels` sentinels (quorum: a majority).

    `nodes[0]` starts as the primary; after a failover `primary()` tells which node it is.
    `settings_env()` gives the JETTI_RELAY_* variables that point the relay at the sentinels."""

    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        min_replicas_to_write: int = 0,
        min_replicas_max_lag_s: int = 2,
        down_after_ms: int = DOWN_AFTER_MS,
        failover_timeout_ms: int = FAILOVER_TIMEOUT_MS,
        password: str = "",
        sentinel_password: str = "",
    ) -> None:
        self.folder = folder
        self.password = password
        self.sentinel_password = sentinel_password
        # A full sync starts at once: Redis 7 waits 5 s for more replicas to share a diskless one.
        guard: tuple[str, ...] = ("--repl-diskless-sync-delay", "0")
        if min_replicas_to_write:
            guard += (
                "--min-replicas-to-write",
                str(min_replicas_to_write),
                "--min-replicas-max-lag",
                str(min_replicas_max_lag_s),
            )
        self.nodes: list[RedisProcess] = [
            _PasswordRedisProcess(folder / f"node{i}", extra_args=guard, password=password)
            for i in range(1 + replicas)
        ]
        primary_port = self.nodes[0].port
        for node in self.nodes[1:]:
            node.extra_args = (*node.extra_args, "--replicaof", "127.0.0.1", str(primary_port))
        quorum = max(1, sentinels // 2 + 1)
        self.sentinels = [
            SentinelProcess(
                folder / f"sentinel{i}",
                primary_port,
                quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                auth_pass=password,
                password=sentinel_password,
            )
            for i in range(sentinels)
        ]

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> RedisHA:
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            node.start()
        self.wait_replicas(len(self.nodes) - 1)
        replica_ports = tuple(node.port for node in self.nodes[1:])
        for sentinel in self.sentinels:
            sentinel.replica_ports = replica_ports
            sentinel.peers = tuple((o.port, o.myid) for o in self.sentinels if o is not sentinel)
            sentinel.start()
        if self.sentinels:
            self._wait_sentinels_agree()
        return self

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                # A stopped (SIGSTOP) node cannot act on SIGTERM until it is continued.
                node.process.send_signal(18)  # SIGCONT
            node.stop()

    def heal(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start every node that is down, and make each node other than the primary the
        sentinels name follow it, until the primary has every other node online as a replica.

        Sentinel would convert a returning old primary itself, but only after it has reported
        itself master for a while (seconds), and two failovers in a row (a stall, then a kill)
        can leave a node following the primary that lost: re-pointed here on every poll."""
        for node in self.nodes:
            if node.process is None:
                node.start()

        def healed() -> bool:
            primary = self.primary()
            for node in self.nodes:
                if node is primary:
                    continue
                client = self.node_client(node)
                try:
                    info = client.info("replication")
                    if info.get("role") != "slave" or int(info["master_port"]) != primary.port:
                        client.replicaof("127.0.0.1", primary.port)
                finally:
                    client.close()
            return self.connected_replicas(primary) >= len(self.nodes) - 1

        wait_for(
            healed, f"{len(self.nodes) - 1} replicas following the primary", timeout_s=timeout_s
        )

    # --- reading the topology -------------------------------------------------------------
    @property
    def sentinel_addresses(self) -> str:
        """`JETTI_RELAY_REDIS_SENTINELS` for this group."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def settings_env(self, db: int = 0) -> dict[str, str]:
        """The JETTI_RELAY_* variables that point the relay at this group. REDIS_URL's host is
        not used (the sentinels say where the primary is); it names the database."""
        auth = f":{self.password}@" if self.password else ""
        env = {
            "JETTI_RELAY_REDIS_SENTINELS": self.sentinel_addresses,
            "JETTI_RELAY_REDIS_SENTINEL_MASTER": MASTER_NAME,
            "JETTI_RELAY_REDIS_URL": f"redis://{auth}127.0.0.1:{self.nodes[0].port}/{db}",
        }
        if self.sentinel_password:
            env["JETTI_RELAY_REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    def primary_port(self) -> int | None:
        """The primary's port by a majority of the sentinels that answer, or None."""
        seen = [s.primary_port_seen() for s in self.sentinels if s.process is not None]
        ports = [p for p in seen if p is not None]
        for port in set(ports):
            if ports.count(port) > len(self.sentinels) // 2:
                return port
        return None

    def primary(self) -> RedisProcess:
        port = self.primary_port()
        for node in self.nodes:
            if node.port == port:
                return node
        raise ServiceError(f"no node is the primary the sentinels name ({port})")

    def node_client(self, node: RedisProcess) -> redis.Redis[bytes]:
        return redis.Redis(
            port=node.port,
            password=self.password or None,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
        )

    def connected_replicas(self, node: RedisProcess) -> int:
        """Replicas online at `node` (INFO replication), 0 when it does not answer."""
        client = self.node_client(node)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return 0
        finally:
            client.close()
        return sum(
            1
            for key, value in info.items()
            if key.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        )

    def wait_replicas(self, count: int, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the current primary has `count` replicas online."""
        watched = any(s.process is not None for s in self.sentinels)
        primary = self.primary() if watched else self.nodes[0]
        wait_for(
            lambda: self.connected_replicas(primary) >= count,
            f"{count} replicas online",
            timeout_s=timeout_s,
        )

    def wait_failover(self, old_port: int, *, timeout_s: float = START_TIMEOUT_S) -> float:
        """Wait until a majority of sentinels name a primary other than `old_port`; returns
        the seconds it took from the call."""
        started = time.monotonic()
        wait_for(
            lambda: self.primary_port() not in (None, old_port),
            "a Sentinel failover",
            timeout_s=timeout_s,
        )
        return time.monotonic() - started

    def _wait_sentinels_agree(self) -> None:
        replicas = len(self.nodes) - 1
        others = len(self.sentinels) - 1

        def ready() -> bool:
            for sentinel in self.sentinels:
                client = sentinel.client()
                try:
                    facts: dict[str, Any] = client.sentinel_master(  # type: ignore[no-untyped-call]
                        MASTER_NAME
                    )
                finally:
                    client.close()
                if int(facts["num-slaves"]) < replicas:
                    return False
                if int(facts["num-other-sentinels"]) < others:
                    return False
            return True

        wait_for(ready, "sentinels agreeing on the group", timeout_s=START_TIMEOUT_S)
