"""The measurements of `jetti-relay bench intake`, all on the run's one private Redis.

- `measure_library`: `producers.enqueue` of raw JSON bytes, in this process (the fast path).
- `measure_stream`: a `jetti-relay intake` process reads what another process XADDs
  (`ops/bench/streamfeed.py`), timed from the first XADD to the ledger holding every order.
- `measure_http`: the load generator (`ops/bench/loadgen.py`, its own process) against
  `jetti-relay intake --http`: NDJSON batches, one order per request closed and open loop, and
  trivial requests against the intake and the raw-ASGI sandbox (what the framework costs).

Every order of a run is new (ids never repeat across measurements), so each is ACCEPTED and
written, never UNCHANGED; nothing consumes the orders queue, so the figures are the intake's
alone. The ledger's order count (one ZCARD per state index) says what arrived.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from ops.bench.common import orders
from ops.bench.loadgen import write_bodies
from ops.harness.ports import ServiceError, free_port, wait_for
from ops.harness.procstats import tree_cpu_seconds
from ops.harness.redis import RedisService
from ops.harness.services import Services
from worker.core.keys import INTAKE_GROUP, Keys
from worker.settings import DEFAULT_KEY_PREFIX
from worker.store.ledger import Ledger

# The stream run polls the ledger this often (a few ZCARDs: Redis does not notice).
POLL_S = 0.005
# A run in which the ledger gains nothing for this long is stuck: report what it has.
STALL_TIMEOUT_S = 30.0
# The longest one load-generator run may take beyond what it was asked for.
LOADGEN_GRACE_S = 120.0
# A closed-loop run stops sending after this long, however many requests are left: a very slow
# intake gives a low figure instead of a hung benchmark.
CLOSED_CAP_S = 60.0
INTAKE_PATH = "/v1/orders"
HEALTH_PATH = "/health"
# A path no server here routes: each answers 404 from its router, the least work it can do.
UNROUTED_PATH = "/_bench/unrouted"


@dataclass
class IntakeRun:
    """What the measurements share: the services, the Redis, its ledger, the next order id."""

    folder: Path
    services: Services
    redis: RedisService
    lines: int
    log_level: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    keys: Keys = field(default_factory=lambda: Keys(DEFAULT_KEY_PREFIX))
    next_id: int = 0

    def __post_init__(self) -> None:
        self.client: redis.Redis[bytes] = redis.Redis.from_url(self.redis.url)
        self.ledger = Ledger(self.client, self.keys)
        # The bearer token reaches the load generator in a file, never on its command line.
        self.header_file = self.folder / "loadgen-headers"
        self.header_file.write_text(f"Authorization: Bearer {self.token}\n")
        self.header_file.chmod(0o600)

    def close(self) -> None:
        self.client.close()

    def fresh_orders(self, count: int) -> list[bytes]:
        """`count` realistic raw orders (JSON bytes) whose ids no earlier call handed out."""
        bodies = orders(self.next_id, count, self.lines)
        self.next_id += count
        return bodies

    def held(self) -> int:
        """Orders in the ledger, in any state."""
        return sum(self.ledger.state_counts().values())

    def env(self, **settings: str) -> dict[str, str]:
        """The environment of a relay process on this run's Redis (store and broker), with
        `settings` (JETTI_RELAY_* names); the caller's own JETTI_RELAY_* are left out."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")},
            "JETTI_RELAY_REDIS_URL": self.redis.url,
            "JETTI_RELAY_BROKER_URL": self.redis.url,
            "JETTI_RELAY_KEY_PREFIX": self.keys.prefix,
            "JETTI_RELAY_LOG_LEVEL": self.log_level,
            **settings,
        }


def measure_library(run: IntakeRun, count: int) -> dict[str, Any]:
    """Orders/s through `producers.enqueue` (connect() from settings, raw JSON bytes)."""
    from producers import connect, enqueue
    from worker.settings import Settings

    bodies = run.fresh_orders(count)
    relay = connect(
        Settings(redis_url=run.redis.url, broker_url=run.redis.url, key_prefix=run.keys.prefix)
    )
    before = run.held()
    cpu = tree_cpu_seconds(run.redis.pid)
    started = time.perf_counter()
    summary = enqueue(
        bodies, client=relay.client, publisher=relay.publisher, keys=relay.keys, rules=relay.rules
    )
    seconds = time.perf_counter() - started
    relay.close()
    return {
        "orders": count,
        "accepted": summary.accepted,
        "seconds": seconds,
        "rate": count / seconds,
        "in_ledger": run.held() - before,
        "redis_cpu_s": tree_cpu_seconds(run.redis.pid) - cpu,
    }


# --- the stream intake ------------------------------------------------------------------------


def start_stream_intake(run: IntakeRun) -> subprocess.Popen[bytes]:
    """`jetti-relay intake` (stream only); returns once its consumer group exists."""
    process = run.services.start(
        "intake-stream",
        [sys.executable, "-m", "ops.cli", "intake", "--consumer", "bench-1"],
        run.env(),
    )
    wait_for(
        lambda: _group(run) is not None,
        "the stream intake (its consumer group)",
        process=process,
        log=run.services.log_path("intake-stream"),
    )
    return process


def _group(run: IntakeRun) -> dict[str, Any] | None:
    """XINFO GROUPS of the intake stream: the intake's group (keys as str), or None."""
    groups: list[dict[str, Any]] = run.client.xinfo_groups(  # type: ignore[no-untyped-call]
        run.keys.intake_stream()
    )
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else str(name)) == INTAKE_GROUP:
            return group
    return None


def measure_stream(run: IntakeRun, intake_pid: int, count: int) -> dict[str, Any]:
    """Append `count` orders with XADD from another process; orders/s from the first XADD to
    the ledger holding all of them (then the group has acknowledged every entry)."""
    bodies = run.fresh_orders(count)
    feed_file = run.folder / "stream-feed.ndjson"
    feed_file.write_bytes(b"\n".join(bodies) + b"\n")
    stream = run.keys.intake_stream()
    target = run.held() + count
    cpu = (tree_cpu_seconds(intake_pid), tree_cpu_seconds(run.redis.pid))
    feeder = subprocess.Popen(
        [sys.executable, "-m", "ops.bench.streamfeed", run.redis.url, stream, str(feed_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ledger_at, acked_at, held = _wait_for_ledger(run, target, feeder)
        out, err = feeder.communicate(timeout=LOADGEN_GRACE_S)
    finally:
        if feeder.poll() is None:
            feeder.kill()
            feeder.wait()
    if feeder.returncode != 0:
        raise ServiceError(f"the stream feeder failed: {err.decode(errors='replace')[-2000:]}")
    feed = json.loads(out)
    in_ledger = held - (target - count)
    seconds = (ledger_at - feed["first_at"]) if ledger_at is not None else None
    return {
        "orders": count,
        "complete": ledger_at is not None and acked_at is not None,
        "in_ledger": in_ledger,
        "seconds": seconds,
        "rate": count / seconds if seconds else 0.0,
        "acked_after_s": None if acked_at is None else acked_at - feed["first_at"],
        "feeder": {"seconds": feed["seconds"], "rate": feed["rate"]},
        "rejected": run.client.xlen(run.keys.intake_rejects()),
        "cpu_s": {
            "intake": tree_cpu_seconds(intake_pid) - cpu[0],
            "redis": tree_cpu_seconds(run.redis.pid) - cpu[1],
        },
    }


def _wait_for_ledger(
    run: IntakeRun, target: int, feeder: subprocess.Popen[bytes]
) -> tuple[float | None, float | None, int]:
    """(epoch when the ledger first held `target` orders, epoch when the intake's group had
    also acknowledged every entry, orders held at the end); None for what never happened
    before the ledger stalled for STALL_TIMEOUT_S."""
    ledger_at: float | None = None
    seen, last_change = -1, time.monotonic()
    while True:
        held = run.held()
        if held >= target and ledger_at is None:
            ledger_at = time.time()
        if ledger_at is not None and feeder.poll() is not None and _drained(run):
            return ledger_at, time.time(), held
        if held != seen:
            seen, last_change = held, time.monotonic()
        elif time.monotonic() - last_change > STALL_TIMEOUT_S or (feeder.poll() not in (None, 0)):
            return ledger_at, None, held
        time.sleep(POLL_S)


def _drained(run: IntakeRun) -> bool:
    """The intake's group has read every entry of the stream and has none pending (`lag` is
    Redis 7; on 6.2 the last delivered id is compared with the stream's last)."""
    group = _group(run)
    if group is None or int(group["pending"]) != 0:
        return False
    lag = group.get("lag")
    if lag is not None:
        return int(lag) == 0
    last = run.client.xinfo_stream(run.keys.intake_stream())["last-generated-id"]
    return bool(group["last-delivered-id"] == last)


# --- the HTTP intake --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """An HTTP server under test: where it answers and the process whose CPU it uses."""

    name: str
    base_url: str
    pid: int


def start_http_intake(run: IntakeRun) -> Server:
    """`jetti-relay intake --http --no-stream` on a free loopback port, with the run's bearer
    token; returns once GET /health answers 200."""
    port = free_port()
    argv = [sys.executable, "-m", "ops.cli", "intake", "--http", "--no-stream"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    process = run.services.start("intake-http", argv, run.env(JETTI_RELAY_INTAKE_TOKEN=run.token))
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {run.token}"}
    wait_for(
        lambda: httpx.get(base + HEALTH_PATH, headers=auth, timeout=2).status_code == 200,
        "the HTTP intake",
        process=process,
        log=run.services.log_path("intake-http"),
    )
    return Server("intake", base, process.pid)


def loadgen(
    run: IntakeRun,
    server: Server,
    path: str,
    *,
    expect: int,
    connections: int,
    bodies: list[bytes] | None = None,
    content_type: str | None = None,
    rate: float | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """One load-generator run against `server` (its own process; the module docstring of
    ops/bench/loadgen.py says what it returns), plus the CPU seconds the server and Redis used
    and the server's CPU per ok request."""
    argv = [sys.executable, "-m", "ops.bench.loadgen", server.base_url + path]
    argv += ["--connections", str(connections), "--expect", str(expect)]
    argv += ["--header-file", str(run.header_file)]
    if bodies is not None:
        body_file = run.folder / "loadgen-bodies.jsonl"
        write_bodies(body_file, bodies)
        argv += ["--body-file", str(body_file)]
    if content_type is not None:
        argv += ["--header", f"Content-Type: {content_type}"]
    if rate is not None:
        argv += ["--rate", f"{rate:g}"]
    if seconds is not None:
        argv += ["--seconds", f"{seconds:g}"]
    cpu = (tree_cpu_seconds(server.pid), tree_cpu_seconds(run.redis.pid))
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=(seconds or 0) + LOADGEN_GRACE_S,
            env={k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")},
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"the load generator against the {server.name} hung") from exc
    if done.returncode != 0:
        raise ServiceError(f"the load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    server_cpu = tree_cpu_seconds(server.pid) - cpu[0]
    result["cpu_s"] = {"server": server_cpu, "redis": tree_cpu_seconds(run.redis.pid) - cpu[1]}
    result["server_cpu_us_per_request"] = server_cpu / result["ok"] * 1e6 if result["ok"] else None
    result["client_cpu_share"] = result["client_cpu_s"] / result["seconds"]
    return result


def measure_ndjson(
    run: IntakeRun, intake: Server, count: int, batch: int, connections: int
) -> dict[str, Any]:
    """`count` orders POSTed as NDJSON batches of `batch`, closed loop (for at most
    CLOSED_CAP_S); orders/s into the ledger (every 202 comes after the ledger write)."""
    orders_ = run.fresh_orders(count)
    bodies = [
        b"\n".join(orders_[start : start + batch]) + b"\n" for start in range(0, count, batch)
    ]
    before = run.held()
    result = loadgen(
        run,
        intake,
        INTAKE_PATH,
        expect=202,
        connections=connections,
        bodies=bodies,
        content_type="application/x-ndjson",
        seconds=CLOSED_CAP_S,
    )
    # Only the batches sent count (all of them unless the cap stopped the run).
    result["orders"] = min(count, result["sent"] * batch)
    result["batch"] = batch
    result["in_ledger"] = run.held() - before
    result["orders_per_s"] = result["in_ledger"] / result["seconds"]
    return result


def measure_single(
    run: IntakeRun, intake: Server, count: int, connections: int, rate: float | None = None
) -> dict[str, Any]:
    """`count` orders POSTed one per request (application/json): closed loop (max requests/s,
    for at most CLOSED_CAP_S) or, with `rate`, open loop at that many per second (accept
    latency)."""
    bodies = run.fresh_orders(count)
    before = run.held()
    result = loadgen(
        run,
        intake,
        INTAKE_PATH,
        expect=202,
        connections=connections,
        bodies=bodies,
        content_type="application/json",
        rate=rate,
        seconds=CLOSED_CAP_S if rate is None else None,
    )
    result["orders"] = result["sent"]
    result["in_ledger"] = run.held() - before
    return result


def measure_trivial(
    run: IntakeRun, server: Server, path: str, expect: int, seconds: float, connections: int
) -> dict[str, Any]:
    """Requests/s of one repeated GET for `seconds`, closed loop."""
    return loadgen(run, server, path, expect=expect, connections=connections, seconds=seconds)
