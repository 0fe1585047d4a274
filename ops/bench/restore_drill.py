"""`jetti-relay bench restore-drill`: back up a live Redis, lose it, restore, and check with the
relay's own commands that nothing acknowledged before the backup is missing (docs/scaling.md,
"Backup and restore").

1. A private redis-server with AOF (`appendfsync everysec`, automatic rewrites on, as in
   production), the sandbox and one `jetti-relay worker`; a feeder enqueues `--orders` orders
   through the producer library in chunks, so orders flow during everything that follows.
2. When half of them are acknowledged (enqueue returned), two backups are taken while it runs:
   the AOF directory (automatic rewrites paused, none in progress, `appendonlydir` copied,
   rewrites back on) and an RDB snapshot (`BGSAVE`, wait, copy `dump.rdb`). Each backup
   remembers which orders were acknowledged before it started.
3. The feeder finishes; the live Redis is killed (SIGKILL) and the worker with it.
4. Each backup is restored onto a new server in a new folder: the AOF directory as is; the RDB
   with AOF off, then `CONFIG SET appendonly yes` (Redis writes a fresh AOF from memory).
5. Checks on each restored server: every order acknowledged before its backup is in the ledger
   (`Ledger.get_many`), `jetti-relay health --json`, `jetti-relay order show` of the first and last
   such order, `jetti-relay dlq list --json`, the ledger's state counts.
6. A worker started on the AOF restore delivers what the backup held unfinished; the orders
   acknowledged after the backup and not in it are the loss window (upstream must send them
   again; a resend is idempotent).

Each step is timed. The drill never touches a Redis it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

# The sweeper re-publishes an order stuck this long: short, so the restore drains in seconds.
DRILL_STUCK_AFTER_S = "5"
DRILL_SWEEP_INTERVAL_S = "1"
# --short-timeouts: the worker's timeout chain (HTTP < soft < hard < lock TTL) scaled down, so
# an order caught SUBMITTING by the backup is free again after 12 s instead of 180 s.
SHORT_TIMEOUTS = {
    "JETTI_RELAY_HTTP_CONNECT_TIMEOUT_S": "1",
    "JETTI_RELAY_HTTP_READ_TIMEOUT_S": "3",
    "JETTI_RELAY_HTTP_WRITE_TIMEOUT_S": "1",
    "JETTI_RELAY_HTTP_POOL_TIMEOUT_S": "1",
    "JETTI_RELAY_SOFT_TIME_LIMIT_S": "8",
    "JETTI_RELAY_HARD_TIME_LIMIT_S": "10",
    "JETTI_RELAY_LOCK_TTL_S": "12",
}
# Longest wait for the restored ledger to deliver what the backup held.
DRAIN_TIMEOUT_S = 300.0


@dataclass
class Feeder:
    """Enqueues orders in chunks from a thread; `acked` is how many were acknowledged so far
    (orders are numbered, so the first `acked` are the acknowledged ones)."""

    url: str
    bodies: list[bytes]
    chunk: int
    pause_s: float
    acked: int = 0
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="restore-drill-feeder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import redis

        from producers import enqueue
        from worker.settings import Settings
        from worker.wiring import publisher

        client: redis.Redis[bytes] = redis.Redis.from_url(self.url)
        sender = publisher(Settings(redis_url=self.url, broker_url=self.url))
        try:
            for start in range(0, len(self.bodies), self.chunk):
                part = self.bodies[start : start + self.chunk]
                summary = enqueue(part, client=client, publisher=sender)
                if summary.accepted != len(part):
                    raise RuntimeError(f"accepted {summary.accepted} of {len(part)}")
                with self.lock:
                    self.acked = start + len(part)
                time.sleep(self.pause_s)
        except BaseException as exc:  # reported by the caller, which owns the run
            self.error = exc
        finally:
            client.close()

    def acknowledged(self) -> int:
        with self.lock:
            return self.acked

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise click.ClickException(f"the feeder failed: {self.error!r}")


def _say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def _relay(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    """`jetti-relay ARGS --redis-url URL`, as an operator would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETTI_RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args, "--redis-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verify(url: str, acked: int) -> dict[str, Any]:
    """What the restored server at `url` holds of the first `acked` orders, checked with the
    ledger and the relay's own commands."""
    import redis

    from worker.settings import Settings
    from worker.wiring import keys, ledger

    started = time.monotonic()
    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    settings = Settings(redis_url=url)
    store = ledger(client, keys(settings), settings)
    wanted = [f"bench-{n}" for n in range(acked)]
    entries = store.get_many(wanted)
    missing = [k for k, e in zip(wanted, entries, strict=True) if e is None]
    held = int(client.dbsize())
    counts = {str(s): n for s, n in store.state_counts().items() if n}
    client.close()
    health = _relay(["health", "--json", "--min-workers", "0"], url)
    checks = {c["name"]: c["status"] for c in json.loads(health.stdout)["checks"]}
    shown = [_relay(["order", "show", k, "--json"], url) for k in (wanted[0], wanted[-1])]
    dead = _relay(["dlq", "list", "--json"], url)
    return {
        "acknowledged_before_backup": acked,
        "missing": len(missing),
        "missing_first": missing[:5],
        "keys_held": held,
        "states": counts,
        "health_exit": health.returncode,
        "health_checks": checks,
        "order_show_exit": [s.returncode for s in shown],
        "order_show_states": [json.loads(s.stdout).get("state") for s in shown if s.stdout],
        "dead_letters": len(json.loads(dead.stdout)) if dead.returncode == 0 else None,
        "seconds": time.monotonic() - started,
    }


def run(
    orders: int,
    chunk: int,
    pause_s: float,
    concurrency: int,
    short_timeouts: bool,
    folder: Path,
) -> dict[str, Any]:
    """The whole drill on fresh private services, as one JSON-ready dict."""
    import redis

    from ops.bench.aof import backup_aof, backup_rdb, restore, start_aof_redis, wait_until
    from ops.bench.common import SandboxProbe
    from ops.bench.common import orders as make_orders
    from ops.harness.services import Services
    from ops.harness.workers import pipeline_env

    result: dict[str, Any] = {
        "config": {
            "orders": orders,
            "chunk": chunk,
            "pause_s": pause_s,
            "short_timeouts": short_timeouts,
        },
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0]},
    }
    services = Services(folder)
    try:
        live_folder = folder / "live"
        live = start_aof_redis(services, live_folder, "live-redis", auto_rewrite=True)
        sandbox = services.start_sandbox("drill-sandbox")
        probe = SandboxProbe(sandbox)

        def worker_env(url: str) -> dict[str, str]:
            return pipeline_env(
                url,
                sandbox,
                JETTI_RELAY_RATE_PER_S="1000000",
                JETTI_RELAY_RATE_BURST="1000000",
                JETTI_RELAY_LOG_LEVEL="WARNING",
                JETTI_RELAY_STUCK_AFTER_S=DRILL_STUCK_AFTER_S,
                JETTI_RELAY_SWEEP_INTERVAL_S=DRILL_SWEEP_INTERVAL_S,
                **(SHORT_TIMEOUTS if short_timeouts else {}),
            )

        worker = services.start_worker("live-worker", worker_env(live.url), concurrency=concurrency)
        feeder = Feeder(live.url, make_orders(0, orders, 3), chunk, pause_s)
        _say(f"feeding {orders} orders in chunks of {chunk}")
        feeder.start()
        wait_until(
            lambda: feeder.acknowledged() >= orders // 2 or feeder.error, "half the orders", 600
        )
        client: redis.Redis[bytes] = redis.Redis.from_url(live.url)
        backups: dict[str, dict[str, Any]] = {}
        for kind, take in (("aof", backup_aof), ("rdb", backup_rdb)):
            acked = feeder.acknowledged()
            target = folder / "backup" / ("appendonlydir" if kind == "aof" else "dump.rdb")
            _say(f"backup {kind} while orders flow ({acked} acknowledged so far)")
            backups[kind] = {"acknowledged_before": acked, **take(client, live_folder, target)}
            backups[kind]["path"] = target
        feeder.join()
        result["acknowledged_total"] = feeder.acknowledged()
        result["delivered_before_loss"] = probe.accepted()
        client.close()
        _say("losing the live Redis (SIGKILL) and its worker")
        started = time.monotonic()
        os.kill(live.pid, signal.SIGKILL)
        services.stop_one(worker)
        result["kill_seconds"] = time.monotonic() - started

        for kind, backup in backups.items():
            _say(f"restoring the {kind} backup onto a new server")
            service, seconds = restore(services, kind, backup["path"], folder / f"restored-{kind}")
            backup["path"] = str(backup["path"])
            backup["restore_seconds"] = seconds
            backup["verify"] = verify(service.url, backup["acknowledged_before"])
            if kind != "aof":
                continue
            _say("a worker on the AOF restore delivers what the backup held")
            services.start_worker(
                "restored-worker", worker_env(service.url), concurrency=concurrency
            )
            backup.update(drain(service.url, probe))
        result["backups"] = backups
        probe.close()
    finally:
        services.stop()
    result["pids"] = list(services.started)
    result["machine"]["load_average_end"] = os.getloadavg()[0]
    return result


def drain(url: str, probe: Any) -> dict[str, Any]:
    """Wait until no order of the ledger at `url` is waiting (pending, submitting, retry);
    the seconds it took, the states and the sandbox's counts then."""
    import redis

    from ops.bench.aof import wait_until
    from worker.core.states import OrderState
    from worker.settings import Settings
    from worker.wiring import keys, ledger

    started = time.monotonic()
    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    settings = Settings(redis_url=url)
    store = ledger(client, keys(settings), settings)
    waiting = (OrderState.PENDING, OrderState.SUBMITTING, OrderState.RETRY_WAIT)

    def settled() -> bool:
        counts = store.state_counts()
        return not any(counts.get(state, 0) for state in waiting)

    wait_until(settled, "the restored ledger to settle", DRAIN_TIMEOUT_S)
    seconds = time.monotonic() - started
    states = {str(s): n for s, n in store.state_counts().items() if n}
    client.close()
    return {"drain_seconds": seconds, "after_drain": {"states": states, "sandbox": probe.stats()}}


def render(result: dict[str, Any]) -> str:
    """The drill's steps and checks, as the doc quotes them."""
    config = result["config"]
    out = [
        f"restore drill: {config['orders']} orders fed in chunks of {config['chunk']}, "
        f"{result['acknowledged_total']} acknowledged, {result['delivered_before_loss']} "
        f"delivered before the live Redis was killed ({result['kill_seconds']:.2f} s)",
    ]
    for kind, backup in result["backups"].items():
        check = backup["verify"]
        out += [
            "",
            f"{kind}: backup taken in {backup['seconds']:.2f} s ({backup['bytes']:,} bytes) with "
            f"{backup['acknowledged_before']} orders acknowledged before it; restored in "
            f"{backup['restore_seconds']:.2f} s; checked in {check['seconds']:.2f} s",
            f"  missing of those acknowledged before the backup: {check['missing']}",
            f"  ledger states: {check['states']}",
            f"  jetti-relay health: exit {check['health_exit']}, "
            + ", ".join(f"{name} {status}" for name, status in check["health_checks"].items()),
            f"  jetti-relay order show (first, last): exit {check['order_show_exit']}, "
            f"states {check['order_show_states']}",
            f"  jetti-relay dlq list: {check['dead_letters']} dead letters",
        ]
        if "drain_seconds" in backup:
            after = backup["after_drain"]
            sandbox = after["sandbox"]
            out.append(
                f"  a worker on it settled everything in {backup['drain_seconds']:.2f} s: "
                f"states {after['states']}; sandbox {sandbox['sales']} sales, "
                f"{sandbox['duplicates']} duplicates (resends of the same version)"
            )
    lost = result["acknowledged_total"] - max(
        b["acknowledged_before"] for b in result["backups"].values()
    )
    out += [
        "",
        f"acknowledged after the last backup (the loss window: upstream sends them again): {lost}",
    ]
    return "\n".join(out)


@click.command("restore-drill")
@click.option("--orders", default=4000, show_default=True, help="Orders fed while it runs.")
@click.option("--chunk", default=100, show_default=True, help="Orders per enqueue call.")
@click.option("--pause-s", default=0.05, show_default=True, help="Pause between chunks (s).")
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
@click.option(
    "--short-timeouts",
    is_flag=True,
    help="Lock TTL 12 s (and the timeout chain below it) instead of 180 s, for a quick drain.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write figures here.")
@click.option("--keep-logs", is_flag=True, help="Keep the services' logs, backups and AOFs.")
def restore_drill_bench(
    orders: int,
    chunk: int,
    pause_s: float,
    concurrency: int,
    short_timeouts: bool,
    json_path: Path | None,
    keep_logs: bool,
) -> None:
    """Back up a live Redis while orders flow, kill it, restore each backup onto a new server
    and check that nothing acknowledged before the backup is missing."""
    from ops.bench.common import run_in_folder
    from ops.options import SANDBOX_MODULES, require_extra

    require_extra("sandbox", *SANDBOX_MODULES)
    folder = Path(tempfile.mkdtemp(prefix="jetti-relay-restore-drill-"))
    run_in_folder(
        lambda: run(orders, chunk, pause_s, concurrency, short_timeouts, folder),
        render,
        folder,
        json_path=json_path,
        keep_logs=keep_logs,
    )
