"""What the benchmark's runs share: their configuration, the orders, the sandbox probe, figures.

Throughput runs from the first enqueue to the last sale the sandbox recorded (`createdAt` of its
last import row, which is when the request was accepted); latency is enqueue to that acceptance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ops.bench.enqueue import make_order
from ops.harness.procstats import tree_memory_kb
from ops.harness.sandbox import SandboxService

# Polling the sandbox's counters while a run is in flight (`wait=0` never stalls it).
POLL_S = 0.1
# A run that delivers nothing new for this long is stuck: report what it has.
STALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunConfig:
    """What every run shares."""

    folder: Path
    lines: int
    processes: int
    workers: int
    submit_concurrency: int | None
    batch_size: int | None
    # The paced run sends whatever is due this often (one order per message at low rates).
    paced_tick_s: float = 0.01
    # Process group ids of everything started, so callers can check that none is left.
    pids: list[int] = field(default_factory=list)


def run_in_folder(
    measure: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    folder: Path,
    *,
    json_path: Path | None,
    keep_logs: bool,
) -> None:
    """Run a bench whose services write into `folder`: print `render(measure())` (and write
    the figures to `json_path`), then delete `folder` unless `keep_logs` or a service failed to
    start (its logs say why)."""
    import json
    import shutil

    import click

    from ops.harness.ports import ServiceError

    keep = keep_logs
    try:
        result = measure()
        if json_path is not None:
            json_path.write_text(json.dumps(result, indent=2, sort_keys=True))
        click.echo(render(result))
    except ServiceError as exc:
        keep = True
        raise click.ClickException(f"{exc} (logs in {folder})") from exc
    finally:
        if keep:
            click.echo(f"logs kept in {folder}", err=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def orders(start: int, count: int, lines: int) -> list[bytes]:
    """`count` raw orders (JSON bytes) with ids `bench-<start>` ... and `lines` lines each."""
    return [
        make_order(n, lines).replace(b'"id": "', b'"id": "bench-', 1)
        for n in range(start, start + count)
    ]


def payloads(bodies: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """(externalId, Jetti payload bytes) for each raw order, built by our pure transform."""
    from worker.core.contract import parse_raw_order
    from worker.core.jsonio import loads_document
    from worker.core.rules import Rules
    from worker.core.transform import transform

    rules = Rules.empty()
    out = []
    for body in bodies:
        order = parse_raw_order(loads_document(body))
        out.append((str(order.id), transform(order, rules).body))
    return out


def _epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


class SandboxProbe:
    """Reads the sandbox's own records."""

    def __init__(self, sandbox: SandboxService) -> None:
        self.base = sandbox.base_url
        self.http = httpx.Client(base_url=self.base, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def stats(self, *, wait: bool = True) -> dict[str, Any]:
        params = {} if wait else {"wait": "0"}
        result: dict[str, Any] = self.http.get("/_sandbox/stats", params=params).json()
        return result

    def accepted(self) -> int:
        """Imports applied successfully so far (no wait)."""
        return int(self.stats(wait=False)["imports"]["success"])

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def import_times(self) -> dict[str, float]:
        """externalId -> epoch time of its first successful import (when Jetti accepted it)."""
        times: dict[str, float] = {}
        offset = 0
        while True:
            rows = self.http.get(
                "/_sandbox/imports",
                params={"offset": offset, "limit": 1000, "where[status]": "success"},
            ).json()
            for row in rows:
                times.setdefault(str(row["externalId"]), _epoch(row["createdAt"]))
            if len(rows) < 1000:
                return times
            offset += len(rows)

    def wait_accepted(self, target: int, *, budget_s: float | None = None) -> bool:
        """Wait until `target` imports succeeded; False when the budget ran out or nothing new
        arrived for STALL_TIMEOUT_S."""
        started = last_change = time.monotonic()
        seen = -1
        while True:
            count = self.accepted()
            if count >= target:
                return True
            now = time.monotonic()
            if count != seen:
                seen, last_change = count, now
            if now - last_change > STALL_TIMEOUT_S:
                return False
            if budget_s is not None and now - started > budget_s:
                return False
            time.sleep(POLL_S)


def throughput(first_at: float, accepted_at: dict[str, float]) -> tuple[float, float]:
    """(seconds, orders/s) from `first_at` to the last acceptance."""
    if not accepted_at:
        return 0.0, 0.0
    seconds = max(accepted_at.values()) - first_at
    return seconds, (len(accepted_at) / seconds if seconds > 0 else 0.0)


def redis_memory(url: str, pid: int) -> dict[str, int]:
    import redis

    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    info = client.info("memory")
    client.close()
    return {
        "used_memory_peak_kb": int(info["used_memory_peak"]) // 1024,
        "used_memory_kb": int(info["used_memory"]) // 1024,
        "vm_hwm_kb": tree_memory_kb(pid, "VmHWM"),
    }
