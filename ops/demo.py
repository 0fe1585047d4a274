"""`jetti-relay demo`: the whole pipeline on embedded defaults, then a summary.

Starts what is missing (a private `redis-server`, the Jetti sandbox, a worker with its pump),
enqueues the bundled sample orders (gift orders with per-unit engravings to split, dropship and
in-house routing, updates, a stale copy, broken orders), shows progress, prints what reached Jetti
and what was dead-lettered and why, and stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import httpx

ASYNC_PATH = "/webhooks/custom-channels/manual-sale.json"
DATA_DIR = Path(__file__).parent / "demo_data"
# How long the demo waits for every order to settle before it reports what it has.
SETTLE_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"{what} did not start within {timeout_s:.0f} s")
        time.sleep(0.1)


class Services:
    """Processes the demo started, stopped in reverse order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _start_redis(services: Services) -> str:
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(
            "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu) "
            "or set JETTI_RELAY_REDIS_URL to a Redis you own"
        )
    port = _free_port()
    services.start(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(services.folder),
        ],
        dict(os.environ),
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for(lambda: redis.Redis.from_url(url).ping(), "redis-server")
    return url


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
def demo(orders_file: Path, keep_logs: bool) -> None:
    """Run the whole pipeline on embedded defaults with sample orders, then summarise."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-demo-"))
    services = Services(folder)
    try:
        console.print(
            "[bold]jetti-relay demo[/bold]: starting Redis, the Jetti sandbox and a worker"
        )
        redis_url = _start_redis(services)
        hash_, token, port = secrets.token_hex(16), secrets.token_hex(16), _free_port()
        env = {**os.environ, "SANDBOX_WEBHOOK_HASH": hash_, "SANDBOX_API_TOKEN": token}
        services.start(
            "sandbox",
            [sys.executable, "-m", "ops.sandbox", "--port", str(port), "--channel-id", "1"],
            env,
        )
        sandbox_url = f"http://127.0.0.1:{port}"
        _wait_for(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").status_code == 200, "sandbox")
        ready = folder / "worker.ready"
        worker_env = {
            **os.environ,
            "JETTI_RELAY_REDIS_URL": redis_url,
            "JETTI_RELAY_BROKER_URL": redis_url,
            "JETTI_RELAY_JETTI_ASYNC_URL": f"{sandbox_url}{ASYNC_PATH}",
            "JETTI_RELAY_JETTI_API_URL": sandbox_url,
            "JETTI_RELAY_WEBHOOK_HASH": hash_,
            "JETTI_RELAY_API_TOKEN": token,
            "JETTI_RELAY_CHANNEL_ID": "1",
            "JETTI_RELAY_READY_FILE": str(ready),
            "JETTI_RELAY_RATE_PER_S": "200",
            "JETTI_RELAY_RATE_BURST": "50",
        }
        services.start("worker", [sys.executable, "-m", "ops.cli", "worker", "-c", "2"], worker_env)
        _wait_for(ready.exists, "the worker", timeout_s=60)
        summary = _run(console, Progress, redis_url, orders_file, sandbox_url)
        click.echo(summary)
    finally:
        services.stop()
        if keep_logs:
            console.print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _run(
    console: Any, progress_cls: Any, redis_url: str, orders_file: Path, sandbox_url: str
) -> str:
    import redis

    from producers import enqueue
    from worker.celery_app import create_app
    from worker.deadletters import DeadLetters
    from worker.keys import Keys
    from worker.ledger import Ledger
    from worker.publisher import Publisher
    from worker.settings import Settings

    settings = Settings(redis_url=redis_url, broker_url=redis_url)
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    keys = Keys(settings.key_prefix)
    ledger, dead = Ledger(client, keys), DeadLetters(client, keys)
    publisher = Publisher(create_app(settings), batch_size=settings.batch_size)
    lines = orders_file.read_bytes().splitlines()
    result = enqueue([line for line in lines if line.strip()], client=client, publisher=publisher)
    updates = DATA_DIR / "updates.jsonl"
    wanted = {str(k) for k in _accepted_keys(ledger, lines)}
    with progress_cls(console=console, transient=True) as progress:
        task = progress.add_task("orders settling", total=len(wanted))
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        sent_updates = False
        while time.monotonic() < deadline:
            settled = sum(1 for k in wanted if _final(ledger, k))
            progress.update(task, completed=settled)
            if settled == len(wanted):
                if sent_updates or not updates.exists():
                    break
                enqueue(
                    [u for u in updates.read_bytes().splitlines() if u.strip()],
                    client=client,
                    publisher=publisher,
                )
                sent_updates = True
                time.sleep(0.5)
                continue
            time.sleep(0.2)
    states = Counter(str(e.state) for k in wanted if (e := ledger.get(k)) is not None)
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    out = [
        "",
        f"enqueued: accepted {result.accepted}, updated {result.updated}, unchanged "
        f"{result.unchanged}, stale {result.stale}, rejected at the edge {result.rejected}",
    ]
    for rejection in result.rejections[:10]:
        problems = "; ".join(str(problem) for problem in rejection.problems)
        out.append(f"  rejected: order {rejection.position} ({rejection.order_id}): {problems}")
    out.append(f"orders by state: {dict(sorted(states.items()))}")
    out.append(
        f"Jetti (sandbox): {stats.get('sales')} sales, "
        f"{stats.get('versions_received')} versions received, "
        f"{stats.get('duplicates')} identical re-sends"
    )
    entries = dead.list(limit=100)
    out.append(f"dead letters: {len(entries)}")
    for entry in entries:
        out.append(f"  {entry.order_key}: {entry.reason} - {entry.error[:120]}")
    out += [
        "",
        "dead letters stay in Redis, with the raw order and every attempt, until an engineer",
        "replays or purges them; nothing expires on its own.",
        "preview what would be sent:  jetti-relay preview ops/demo_data/orders.jsonl",
        "watch the workers live:      celery -A worker.celery_app flower",
    ]
    return "\n".join(out)


def _accepted_keys(ledger: Any, lines: list[bytes]) -> list[str]:
    import orjson

    keys = []
    for line in lines:
        try:
            key = str(orjson.loads(line)["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if ledger.get(key) is not None:
            keys.append(key)
    return sorted(set(keys))


def _final(ledger: Any, key: str) -> bool:
    entry = ledger.get(key)
    return entry is not None and entry.state.is_final
