"""`jetti-relay bench console`: the console's pages on a realistic store, and what a bulk replay
costs new orders. Two parts, one run:

1. **Pages.** A private redis-server seeded (ops/bench/seed.py) with `--orders` orders in every
   state and `--dead` dead letters; `jetti-relay console` on it; every page and every JSON twin
   requested `--requests` times in turn by one keep-alive client with a Bearer token. Printed:
   p50, p95 and the slowest, per page, against the issue's bar (p95 < 200 ms).
2. **Replay.** A fresh Redis with `--replay-dead` dead letters, the sandbox (`--latency-ms` per
   request, a stand-in for Jetti) and `jetti-relay worker` at `--rate` orders/s. New orders are
   enqueued at `--new-rate`/s for `--seconds` through the producers library, three times: without
   a replay, while a bulk replay job of every dead letter runs (its share of the rate is
   JETTI_RELAY_REPLAY_RATE_SHARE), and without again. Printed: each run's p50 and p99
   enqueue-to-acceptance (the ledger's `submitted_at - enqueued_at` of each new order), the
   replay's progress and rate, and the ratio of p99 with the replay to the worse run without
   (the issue's bar: within 1.5x).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from ops.bench.stats import percentiles
from ops.harness.ports import free_port, wait_for
from ops.harness.services import Services, exit_on_sigterm
from ops.harness.workers import pipeline_env
from ops.options import SANDBOX_MODULES, require_extra

# The bars.
PAGE_P95_BAR_MS = 200.0
REPLAY_P99_BAR = 1.5
# New orders that are not accepted this long after the feed ended make the run fail loudly.
SETTLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ConsoleBenchConfig:
    """Sizes of one `bench console` run (the options)."""

    orders: int = 100_000
    dead: int = 10_000
    requests: int = 40
    replay_dead: int = 10_000
    rate: float = 200.0
    new_rate: float = 20.0
    seconds: float = 30.0
    latency_ms: float = 20.0
    concurrency: int = 2
    pages: bool = True
    replay: bool = True


DEFAULTS = ConsoleBenchConfig()


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


# --- part 1: pages --------------------------------------------------------------------------
def console_paths(client: httpx.Client) -> list[str]:
    """Every page and JSON twin the benchmark requests: the console's own list
    (`GET /api/pages`), with a sample order, dead letter and search filled in."""
    listed = client.get("/api/pages")
    listed.raise_for_status()
    paths: list[str] = listed.json()["bench"]
    return paths


@dataclass
class PageFigures:
    path: str
    p50_ms: float
    p95_ms: float
    max_ms: float


def measure_pages(base_url: str, token: str, requests: int) -> list[PageFigures]:
    """Request each path `requests` times in turn (after one warm-up pass)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
        paths = console_paths(client)
        timings: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(requests + 1):
            for path in paths:
                started = time.perf_counter()
                response = client.get(path)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise click.ClickException(f"GET {path}: HTTP {response.status_code}")
                timings[path].append(elapsed_ms)
    figures = []
    for path, all_ms in timings.items():
        measured = all_ms[1:]  # the first pass warms up
        pct = percentiles(measured)
        figures.append(
            PageFigures(
                path=path, p50_ms=pct["p50"] or 0.0, p95_ms=pct["p95"] or 0.0, max_ms=max(measured)
            )
        )
    return figures


def _pages_part(cfg: ConsoleBenchConfig, services: Services) -> dict[str, Any]:
    import redis

    from ops.bench.seed import seed
    from worker.core.keys import Keys

    url = services.start_redis("redis-pages").url
    client = redis.Redis.from_url(url)
    _say(f"seeding {cfg.orders:,} orders and {cfg.dead:,} dead letters")
    seeded = seed(client, Keys(), orders=cfg.orders, dead=cfg.dead)
    memory = int(client.info("memory")["used_memory"])
    _say(f"seeded in {seeded.seconds:.1f} s ({memory / 2**20:.0f} MiB); starting the console")
    token, port = secrets.token_hex(16), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")},
        "JETTI_RELAY_REDIS_URL": url,
        "JETTI_RELAY_CONSOLE_TOKEN": token,
        "JETTI_RELAY_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "ops.cli", "console", "--port", str(port)]
    process = services.start("console", argv, env)
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200,
        "the console",
        process=process,
        log=services.log_path("console"),
    )
    figures = measure_pages(base, token, cfg.requests)
    return {
        "orders": cfg.orders,
        "dead": cfg.dead,
        "seed_s": round(seeded.seconds, 1),
        "redis_used_mib": round(memory / 2**20),
        "requests": cfg.requests,
        "pages": [asdict(f) for f in figures],
    }


# --- part 2: replay -------------------------------------------------------------------------
@dataclass
class FeedRun:
    name: str
    sent: int = 0
    latencies_s: list[float] = field(default_factory=list)
    job: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_s
        pct = percentiles(lat)

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000, 1)

        return {
            "name": self.name,
            "sent": self.sent,
            "accepted": len(lat),
            "p50_ms": ms(pct["p50"]),
            "p99_ms": ms(pct["p99"]),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "job": self.job,
        }


def _feed(run: FeedRun, stores: Any, publisher: Any, cfg: ConsoleBenchConfig) -> list[str]:
    """Enqueue `new_rate` orders a second for `seconds`, one per tick as they fall due."""
    from ops.bench.enqueue import make_order
    from producers import enqueue

    total = int(cfg.new_rate * cfg.seconds)
    started = time.monotonic()
    keys: list[str] = []
    for i in range(total):
        due = started + i / cfg.new_rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        body = make_order(i, 3)
        prefix = f"{run.name}:"
        enqueue([body], client=stores.client, publisher=publisher, id_prefix=prefix)
        keys.append(prefix + _order_id(body))
    run.sent = len(keys)
    return keys


def _order_id(body: bytes) -> str:
    import orjson

    return str(orjson.loads(body)["id"])


def _settle(run: FeedRun, stores: Any, keys: list[str]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    pending = list(keys)
    while pending and time.monotonic() < deadline:
        entries = stores.ledger.get_many(pending)
        still = []
        for key, entry in zip(pending, entries, strict=True):
            if entry is not None and entry.submitted_at is not None:
                run.latencies_s.append(max(0.0, entry.submitted_at - entry.enqueued_at))
            else:
                still.append(key)
        pending = still
        if pending:
            time.sleep(0.2)
    if pending:
        raise click.ClickException(
            f"{run.name}: {len(pending)} new orders not accepted within {SETTLE_TIMEOUT_S:.0f} s"
        )


def _replay_part(cfg: ConsoleBenchConfig, services: Services) -> dict[str, Any]:
    from ops.bench.seed import seed
    from ops.dlq.jobs import cancel_job, create_replay_job, job_status
    from worker import wiring
    from worker.settings import Settings
    from worker.store.dead_query import DeadFilter

    url = services.start_redis("redis-replay").url
    sandbox = services.start_sandbox(latency_ms=cfg.latency_ms)
    settings = Settings(redis_url=url)
    stores = wiring.connect_stores(settings)
    _say(f"seeding {cfg.replay_dead:,} dead letters to replay")
    seed(stores.client, stores.keys, orders=cfg.replay_dead, dead=cfg.replay_dead)
    env = pipeline_env(
        url,
        sandbox,
        JETTI_RELAY_RATE_PER_S=f"{cfg.rate:g}",
        JETTI_RELAY_RATE_BURST=f"{max(1.0, cfg.rate / 10):g}",
        JETTI_RELAY_LOG_LEVEL="WARNING",
    )
    services.start_worker("worker", env, concurrency=cfg.concurrency)
    publisher = wiring.publisher(settings)
    runs: list[FeedRun] = []
    for name in ("without-1", "with-replay", "without-2"):
        run = FeedRun(name)
        job_id = None
        if name == "with-replay":
            job = create_replay_job(
                stores, DeadFilter(), options={}, actor="bench", now=time.time()
            )
            job_id = job.id
            _say(f"replay job {job_id}: {job.total:,} dead letters")
        _say(f"{name}: {cfg.new_rate:g} new orders/s for {cfg.seconds:g} s")
        started = time.monotonic()
        keys = _feed(run, stores, publisher, cfg)
        _settle(run, stores, keys)
        if job_id is not None:
            status = job_status(stores, job_id)
            if status is not None:
                elapsed = time.monotonic() - started
                run.job = {
                    "id": job_id,
                    "total": status.total,
                    "done": status.done,
                    "state": str(status.state),
                    "rearmed_per_s": round(status.done / elapsed, 1) if elapsed > 0 else None,
                }
            cancel_job(stores, job_id, actor="bench")
            _wait_job_end(stores, job_id)
        runs.append(run)
        _say(f"{name}: {run.summary()}")
    summaries = [r.summary() for r in runs]
    without = [s["p99_ms"] for s in summaries if s["name"] != "with-replay" and s["p99_ms"]]
    with_replay = next(s["p99_ms"] for s in summaries if s["name"] == "with-replay")
    ratio = with_replay / max(without) if without and with_replay else None
    return {
        "rate_per_s": cfg.rate,
        "replay_share": settings.replay_rate_share,
        "new_rate_per_s": cfg.new_rate,
        "seconds": cfg.seconds,
        "latency_ms": cfg.latency_ms,
        "runs": summaries,
        "p99_ratio": None if ratio is None else round(ratio, 2),
    }


def _wait_job_end(stores: Any, job_id: str) -> None:
    from ops.dlq.jobs import job_status

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = job_status(stores, job_id)
        if job is None or str(job.state) in ("done", "cancelled", "failed"):
            return
        time.sleep(0.2)


# --- the command ----------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    lines: list[str] = []
    pages = result.get("pages")
    if pages:
        lines.append(
            f"pages: {pages['orders']:,} orders, {pages['dead']:,} dead letters "
            f"({pages['redis_used_mib']} MiB in Redis), {pages['requests']} requests each"
        )
        lines.append(f"  {'path':<48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        worst = 0.0
        for row in pages["pages"]:
            worst = max(worst, row["p95_ms"])
            lines.append(
                f"  {row['path']:<48} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                f"{row['max_ms']:>8.1f}"
            )
        verdict = "met" if worst < PAGE_P95_BAR_MS else "MISSED"
        lines.append(f"  worst p95 {worst:.1f} ms: bar < {PAGE_P95_BAR_MS:.0f} ms {verdict}")
    replay = result.get("replay")
    if replay:
        lines.append(
            f"replay: fleet rate {replay['rate_per_s']:g}/s, replay share "
            f"{replay['replay_share']:g}, new orders {replay['new_rate_per_s']:g}/s for "
            f"{replay['seconds']:g} s, sandbox latency {replay['latency_ms']:g} ms"
        )
        for run in replay["runs"]:
            job = run["job"]
            extra = (
                f"; replay {job['done']:,}/{job['total']:,} re-armed, {job['rearmed_per_s']}/s"
                if job
                else ""
            )
            lines.append(
                f"  {run['name']:<12} accepted {run['accepted']}/{run['sent']}  "
                f"p50 {run['p50_ms']} ms  p99 {run['p99_ms']} ms  max {run['max_ms']} ms{extra}"
            )
        ratio = replay["p99_ratio"]
        if ratio is not None:
            verdict = "met" if ratio <= REPLAY_P99_BAR else "MISSED"
            lines.append(
                f"  p99 with the replay / worse p99 without: {ratio:.2f}x "
                f"(bar <= {REPLAY_P99_BAR}x) {verdict}"
            )
    return "\n".join(lines)


@click.command("console")
@click.option("--orders", type=click.IntRange(min=1), default=DEFAULTS.orders, show_default=True)
@click.option("--dead", type=click.IntRange(min=0), default=DEFAULTS.dead, show_default=True)
@click.option(
    "--requests",
    type=click.IntRange(min=5),
    default=DEFAULTS.requests,
    show_default=True,
    help="Requests per page.",
)
@click.option(
    "--replay-dead", type=click.IntRange(min=1), default=DEFAULTS.replay_dead, show_default=True
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=DEFAULTS.rate,
    show_default=True,
    help="The fleet's submit rate (JETTI_RELAY_RATE_PER_S) in the replay part.",
)
@click.option(
    "--new-rate",
    type=click.FloatRange(min=0.1),
    default=DEFAULTS.new_rate,
    show_default=True,
    help="New orders a second during each replay-part run.",
)
@click.option(
    "--seconds", type=click.FloatRange(min=1), default=DEFAULTS.seconds, show_default=True
)
@click.option(
    "--latency-ms", type=click.FloatRange(min=0), default=DEFAULTS.latency_ms, show_default=True
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=DEFAULTS.concurrency, show_default=True
)
@click.option("--pages/--no-pages", default=True, help="Run the pages part.")
@click.option("--replay/--no-replay", default=True, help="Run the replay part.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs.")
def console_bench(json_path: Path | None, keep_logs: bool, **options: Any) -> None:
    """The console's page latency on a large store, and new orders' latency during a bulk
    replay (docs/console.md)."""
    from ops.bench.common import run_in_folder

    cfg = ConsoleBenchConfig(**options)
    require_extra("sandbox", *SANDBOX_MODULES)
    if cfg.pages:
        require_extra("console", "starlette", "jinja2")
    exit_on_sigterm()
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-bench-console-"))

    def measure() -> dict[str, Any]:
        services = Services(folder)
        try:
            result: dict[str, Any] = {}
            if cfg.pages:
                result["pages"] = _pages_part(cfg, services)
                services.stop()
            if cfg.replay:
                result["replay"] = _replay_part(cfg, services)
            return result
        finally:
            services.stop()

    run_in_folder(measure, render, folder, json_path=json_path, keep_logs=keep_logs)
