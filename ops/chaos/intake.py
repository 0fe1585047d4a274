"""Scenario 14: kill -9 the intake (stream consumers and the HTTP intake) while upstream sends.

Two upstreams that are not the Python library feed the relay at once: one appends to the intake
stream with plain XADD, one POSTs NDJSON batches to the HTTP intake. Meanwhile intake processes
are killed with SIGKILL and started again. What counts as acknowledged to upstream is what the
books hold: an entry once XADD returned its id, an order once the HTTP intake answered 202 with a
non-rejected outcome. Every one of them must reach Jetti (0 lost), none twice without a cause.
A batch the HTTP intake never answered (killed mid-request) is sent again, as any HTTP client
would; the ledger makes the second copy `unchanged`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult, record, stream
from ops.harness.ports import free_port
from worker.store.intake import IntakeStream

# The upstream's token for the HTTP intake in this scenario (not a secret: a private sandbox).
INTAKE_TOKEN = "chaos-intake-token"
# Entries a killed consumer held are claimed by another after this idle time.
RECLAIM_IDLE_S = 2.0
# Stream intake processes running at once (one of them is killed at a time).
STREAM_CONSUMERS = 2
# Orders per XADD pipeline and per HTTP batch.
CHUNK = 5
# How long an upstream keeps resending one batch while the intake is down.
UPSTREAM_RETRY_S = 60.0
START_TIMEOUT_S = 30.0


def intake_env(cluster: Cluster) -> dict[str, str]:
    """The environment of an intake process: the cluster's, a token, a short reclaim time."""
    return {
        **os.environ,
        **cluster.env,
        "JETTI_RELAY_INTAKE_TOKEN": INTAKE_TOKEN,
        "JETTI_RELAY_INTAKE_RECLAIM_IDLE_S": str(RECLAIM_IDLE_S),
    }


@dataclass
class IntakeProcesses:
    """The intake processes of the scenario: stream consumers and one HTTP intake."""

    cluster: Cluster
    folder: Path
    http_port: int = field(default_factory=free_port)
    stream: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http: subprocess.Popen[bytes] | None = None
    started: int = 0

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.folder / f"intake-{self.started}.log"
        with open(log, "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "intake", *args],
                env=intake_env(self.cluster),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_stream(self) -> None:
        self.stream.append(self._start())

    def start_http(self) -> None:
        self.http = self._start(
            "--http", "--no-stream", "--host", "127.0.0.1", "--port", str(self.http_port)
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.http.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the HTTP intake did not start (see {self.folder})")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def kill_stream(self, rng: random.Random) -> None:
        """SIGKILL one stream consumer and start a new one (a new consumer name)."""
        victim = self.stream.pop(rng.randrange(len(self.stream)))
        victim.kill()
        victim.wait()
        self.start_stream()

    def kill_http(self) -> None:
        """SIGKILL the HTTP intake and start it again on the same port."""
        assert self.http is not None
        self.http.kill()
        self.http.wait()
        self.start_http()

    def stop(self) -> None:
        for process in [*self.stream, *([self.http] if self.http else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.stream, *([self.http] if self.http else [])]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Upstream(threading.Thread):
    """One non-Python upstream: sends `items` in chunks, books what was acknowledged."""

    def __init__(
        self, name: str, books: Books, items: Sequence[tuple[str, bytes]], interval_s: float
    ) -> None:
        super().__init__(name=f"chaos-upstream-{name}", daemon=True)
        self.books, self.items, self.interval_s = books, list(items), interval_s
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.resends = 0
        self.finished_at = 0.0

    def send(self, raws: list[bytes]) -> set[int]:
        """Hand `raws` over once; returns the positions refused. Raises to be retried."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the upstream's connections."""

    def run(self) -> None:
        try:
            for start in range(0, len(self.items), CHUNK):
                raws = [raw for _key, raw in self.items[start : start + CHUNK]]
                deadline = time.monotonic() + UPSTREAM_RETRY_S
                while True:
                    try:
                        refused = self.send(raws)
                        break
                    except (httpx.HTTPError, redis.RedisError, RetryLater):
                        if time.monotonic() > deadline:
                            raise
                        self.resends += 1
                        time.sleep(0.1)
                record(self.books, raws, refused, self.lock)
                time.sleep(self.interval_s)
        except BaseException as exc:  # reported by the scenario, never lost in a thread
            self.error = exc
        finally:
            self.finished_at = time.time()


class RetryLater(Exception):
    """The intake answered, but not with an acknowledgement (503, 5xx): send again."""


class StreamUpstream(Upstream):
    """XADD, as redis-cli or any Redis client in any language does."""

    def __init__(
        self,
        cluster: Cluster,
        books: Books,
        items: Sequence[tuple[str, bytes]],
        interval_s: float,
    ) -> None:
        super().__init__("stream", books, items, interval_s)
        self.client: redis.Redis[bytes] = redis.Redis.from_url(cluster.redis.url)
        self.stream = IntakeStream(self.client, cluster.keys)

    def close(self) -> None:
        self.client.close()

    def send(self, raws: list[bytes]) -> set[int]:
        # A pipeline that fails part-way may have appended some entries: sending them again
        # appends a copy, which the ledger records as `unchanged`.
        self.stream.append(raws)
        return set()  # refusals land in the rejects stream; these orders are all valid


class HttpUpstream(Upstream):
    """POST NDJSON with a bearer token, as curl or any HTTP client does."""

    def __init__(
        self, url: str, books: Books, items: Sequence[tuple[str, bytes]], interval_s: float
    ) -> None:
        super().__init__("http", books, items, interval_s)
        self.http = httpx.Client(
            base_url=url,
            timeout=5.0,
            headers={
                "Authorization": f"Bearer {INTAKE_TOKEN}",
                "Content-Type": "application/x-ndjson",
            },
        )

    def close(self) -> None:
        self.http.close()

    def send(self, raws: list[bytes]) -> set[int]:
        answer = self.http.post("/v1/orders", content=b"\n".join(raws) + b"\n")
        if answer.status_code != 202:
            raise RetryLater(f"HTTP {answer.status_code}")
        # Positions in the answer are NDJSON line numbers (1-based); `record` counts from 0.
        orders = json.loads(answer.content)["orders"]
        return {int(o["position"]) - 1 for o in orders if o["outcome"] == "rejected"}


def intake_kills(cluster: Cluster, scale: object) -> ScenarioResult:
    """kill -9 stream consumers and the HTTP intake, alternately, while two upstreams send."""
    from ops.chaos.scenarios import SETTLE_TIMEOUT_S, Scale, finish

    assert isinstance(scale, Scale)
    rng = random.Random(14)
    for _ in range(scale.workers):
        cluster.start_worker(concurrency=scale.concurrency, intake=False)
    processes = IntakeProcesses(cluster, cluster.folder)
    books = Books()
    try:
        for _ in range(STREAM_CONSUMERS):
            processes.start_stream()
        processes.start_http()
        # Each upstream spreads its orders over the fault window, so the kills land mid-flow.
        items = {name: stream(name, scale.orders) for name in ("xs", "xh")}
        interval_s = scale.fault_s / max(1, len(items["xs"]) // CHUNK)
        upstreams: list[Upstream] = [
            StreamUpstream(cluster, books, items["xs"], interval_s),
            HttpUpstream(processes.url, books, items["xh"], interval_s),
        ]
        for upstream in upstreams:
            upstream.start()
        kills = {"stream": 0, "http": 0}
        while any(u.is_alive() for u in upstreams) and sum(kills.values()) < 2 * scale.kills:
            time.sleep(scale.fault_s / (2 * max(1, scale.kills)))
            if kills["stream"] <= kills["http"]:
                processes.kill_stream(rng)
                kills["stream"] += 1
            else:
                processes.kill_http()
                kills["http"] += 1
        for upstream in upstreams:
            upstream.join(timeout=SETTLE_TIMEOUT_S)
            upstream.close()
            if upstream.error is not None:
                raise RuntimeError(f"{upstream.name} failed: {upstream.error!r}")
        fault_end = max(u.finished_at for u in upstreams)
        result = finish(
            14,
            "kill -9 stream and HTTP intake",
            cluster,
            books,
            fault_end,
            stream_kills=kills["stream"],
            http_kills=kills["http"],
            resends=sum(u.resends for u in upstreams),
        )
        result.failures.extend(_stream_left_over(cluster))
    finally:
        processes.stop()
    if kills["stream"] == 0 or kills["http"] == 0:
        result.failures.append(f"the intake was not killed both ways: {kills}")
    return result


def _stream_left_over(cluster: Cluster) -> list[str]:
    """Entries the intake still holds unacknowledged a while after everything settled (a killed
    consumer's entries are reclaimed after RECLAIM_IDLE_S), or rejected."""
    assert cluster.client is not None
    problems = []
    deadline = time.monotonic() + 5 * RECLAIM_IDLE_S + 10
    stream = IntakeStream(cluster.client, cluster.keys)
    while True:
        pending = stream.status().pending
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if pending:
        problems.append(f"{pending} stream entries still pending after settling")
    rejected = int(cluster.client.xlen(cluster.keys.intake_rejects()))
    if rejected:
        problems.append(f"{rejected} valid orders ended in the rejects stream")
    return problems
