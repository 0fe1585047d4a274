"""Orders for the scenarios, a producer thread that feeds them while things break, and the
result of one scenario."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.chaos.books import Books, BooksReport, check_books
from ops.chaos.cluster import Cluster
from worker.core.contract import parse_raw_order
from worker.core.errors import InvalidOrder
from worker.core.jsonio import dumps_canonical, loads_document

# Seconds of updated_at between two versions of one order.
VERSION_STEP_S = 60


def raw_order(
    key: str,
    version: int = 1,
    *,
    lines: int = 2,
    updated_at: str | None = "",
    cancelled: bool = False,
) -> bytes:
    """Version `version` of a realistic order: every version has its own note and prices, so
    each one becomes a payload of its own (Jetti's history shows which version it holds).

    `updated_at`: "" for the version's own timestamp (VERSION_STEP_S apart), None to leave the
    field out, or the text to send. `cancelled`: the copy carries `cancelled_at`."""
    minute, second = divmod(version * VERSION_STEP_S, 3600)
    if updated_at == "":
        updated_at = f"2026-11-27T{10 + minute:02d}:{second // 60:02d}:{second % 60:02d}+00:00"
    doc: dict[str, Any] = {
        "id": key,
        "number": f"#{key}",
        "notes": f"v{version}",
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        "shipping_address": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "line1": "1 Main St",
            "city": "London",
            "zip": "N1",
            "country": "GB",
        },
        "lines": [
            {
                "id": f"{key}-l{n}",
                "sku": f"SKU-{n}",
                "name": f"Item {n}",
                "quantity": n,
                "unit_price": f"{10 + version}.{n:02d}",
            }
            for n in range(1, lines + 1)
        ],
        "shipping": {"code": "std", "name": "Standard", "price": "4.95"},
        "auto_connect_by_sku": True,
    }
    if updated_at is not None:
        doc["updated_at"] = updated_at
    if cancelled:
        doc["cancelled_at"] = "2026-11-27T09:00:00+00:00"
        doc["cancel_reason"] = "customer request"
    return dumps_canonical(doc)


def stream(prefix: str, count: int, *, update_every: int = 3) -> list[tuple[str, bytes]]:
    """`count` new orders; every `update_every`-th order also gets a version 2 a little later
    in the stream, so updates arrive while earlier versions are in flight."""
    items: list[tuple[str, bytes]] = []
    for n in range(count):
        key = f"{prefix}-{n}"
        items.append((key, raw_order(key, 1)))
        back = n - 4
        if back >= 0 and back % update_every == 0:
            old = f"{prefix}-{back}"
            items.append((old, raw_order(old, 2)))
    return items


def record(
    books: Books,
    raws: Sequence[bytes],
    rejected_positions: set[int],
    lock: threading.Lock | None = None,
) -> None:
    """Book every raw order the producer accepted (its key read the way the producer does)."""
    accepted: list[tuple[str, bytes]] = []
    for position, raw in enumerate(raws):
        if position in rejected_positions:
            continue
        try:
            accepted.append((str(parse_raw_order(loads_document(raw)).id), raw))
        except InvalidOrder:
            continue
    if lock is None:
        lock = threading.Lock()
    with lock:
        for key, raw in accepted:
            books.accept(key, raw)
        books.rejected_at_edge += len(rejected_positions)


class Producer(threading.Thread):
    """Enqueues `items` in chunks every `interval_s`, booking what the producer accepted."""

    def __init__(
        self,
        cluster: Cluster,
        books: Books,
        items: Sequence[tuple[str, bytes]],
        *,
        chunk: int = 5,
        interval_s: float = 0.1,
        lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.cluster, self.books, self.items = cluster, books, list(items)
        self.chunk, self.interval_s = chunk, interval_s
        self.lock = lock or threading.Lock()
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            for start in range(0, len(self.items), self.chunk):
                raws = [raw for _key, raw in self.items[start : start + self.chunk]]
                summary = self.cluster.enqueue(raws)
                rejected = {r.position for r in summary.rejections}
                record(self.books, raws, rejected, self.lock)
                time.sleep(self.interval_s)
        except BaseException as exc:  # reported by the scenario, never lost in a thread
            self.error = exc
        finally:
            self.finished_at = time.time()


@dataclass
class ScenarioResult:
    """What one scenario did and what the books say."""

    number: int
    name: str
    books: BooksReport
    recover_s: float | None
    elapsed_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.books.balanced and not self.failures and self.recover_s is not None

    def summary(self) -> str:
        b = self.books
        recover = "never" if self.recover_s is None else f"{self.recover_s:.1f} s"
        extra = ", ".join(f"{k} {v}" for k, v in self.figures.items())
        return (
            f"{self.number:>2} {self.name:<34} sent {b.sent}, delivered {b.delivered}, "
            f"dead-lettered {b.dead_lettered}, cancelled {b.cancelled}, lost {b.lost}, "
            f"duplicates "
            f"{b.harmless_duplicates}/{b.harmful_duplicates} (harmless/harmful), regressions "
            f"{b.regressions}, recovered in {recover}" + (f"; {extra}" if extra else "")
        )


def settle(
    cluster: Cluster, books: Books, *, fault_end: float, timeout_s: float
) -> tuple[BooksReport, float | None]:
    """Wait until every booked order is final, then check the books. Returns the report and the
    seconds from `fault_end` (epoch) until everything settled (None: it never did)."""
    settled_at = cluster.wait_settled(books.keys, timeout_s)
    report = check_books(
        books,
        ledger=cluster.ledger,
        dead=cluster.dead,
        histories=cluster.sandbox.histories,
        cancellations=cluster.sandbox.cancellations,
    )
    recover_s = None if settled_at is None else max(0.0, settled_at - fault_end)
    return report, recover_s
