"""Scenario 11: hostile producers (issue 12, section Chaos).

Good orders mixed with: ids that collide with other keys when spliced into Redis key names
(`A:events` before `A`, `X:attempts`, `idx:all`, braces, `*`, spaces, non-ASCII, newlines, 300
characters), an `updated_at` in 2099 (refused at the edge), copies without `updated_at` after a
timestamped one (applied, by arrival), cancellations without `updated_at` (terminal), a copy after
a cancellation (recorded, not sent) and a huge order whose split exceeds the line-item cap
(refused at the edge). Each raw order is enqueued on its own, in arrival order, so a refusal or a
producer error is tied to one order.

Books: every accepted order delivered with its latest version or cancelled (Jetti's sale cancelled
once, or never imported), every refused one reported with a reason, 0 lost, 0 harmful duplicates.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ops.chaos.books import Books
from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult, raw_order, record, stream
from ops.chaos.hostile import COLLIDING_IDS, EDGE_IDS, FAR_FUTURE, huge_order
from ops.chaos.scenarios import Scale, finish, start_workers
from producers.enqueue import enqueue

# Longest wait for the first copies to settle before the later copies are sent (not a check:
# the books at the end are).
FIRST_ROUND_WAIT_S = 30.0


@dataclass
class _Feed:
    """Enqueues raw orders one at a time, booking what the producer accepted and noting what it
    refused (with the problems it gave) or failed on."""

    cluster: Cluster
    books: Books = field(default_factory=Books)
    refused: dict[str, list[str]] = field(default_factory=dict)  # label -> problems
    failures: list[str] = field(default_factory=list)

    def send(self, label: str, raw: bytes) -> bool:
        """Enqueue one raw order; True when the producer accepted it."""
        assert self.cluster.client is not None
        try:
            summary = enqueue(
                [raw],
                client=self.cluster.client,
                publisher=self.cluster.publisher,
                keys=self.cluster.keys,
            )
        except Exception as exc:  # the producer must refuse an order, never fail on one
            self.failures.append(
                f"{label}: the producer failed with {type(exc).__name__}: {str(exc)[:120]}"
            )
            return False
        refused = {r.position for r in summary.rejections}
        record(self.books, [raw], refused)
        if refused:
            problems = [str(p) for r in summary.rejections for p in r.problems]
            self.refused[label] = problems
            if not problems:
                self.failures.append(f"{label}: refused at the edge without a reason")
        return not refused


def hostile_producers(cluster: Cluster, scale: Scale) -> ScenarioResult:
    """Colliding ids, wrong clocks, cancellations without updated_at and huge orders, mixed with
    good orders; see the module docstring."""
    start_workers(cluster, scale)
    feed = _Feed(cluster)
    goods = stream("good", max(4, scale.orders // 4))
    half = len(goods) // 2

    # Round 1: first copies. The colliding ids must all be accepted (the contract allows them).
    for key, raw in goods[:half]:
        feed.send(key, raw)
    for key in COLLIDING_IDS:
        if not feed.send(f"id {key!r}", raw_order(key, 1)):
            feed.failures.append(f"id {key!r} (allowed by the contract) was not accepted")
    for key in EDGE_IDS:
        feed.send(f"id {key[:20]!r}", raw_order(key, 1))
    if feed.send("far-future first copy", raw_order("clock-F", 1, updated_at=FAR_FUTURE)):
        feed.failures.append("an updated_at in 2099 was accepted at the edge")
    elif not any("updated_at" in p for p in feed.refused.get("far-future first copy", [])):
        feed.failures.append("the far-future refusal does not name updated_at")
    for key in ("clock-G", "clock-M", "clock-C", "clock-K"):
        feed.send(key, raw_order(key, 1))
    if feed.send("huge order", huge_order("huge-1")):
        feed.failures.append("an order that splits into 11,000 line items was accepted at the edge")
    cluster.wait_settled(feed.books.keys, FIRST_ROUND_WAIT_S)

    # Round 2: later copies, while the other half of the good orders arrives.
    for key, raw in goods[half:]:
        feed.send(key, raw)
    feed.send("clock-F v2", raw_order("clock-F", 2))
    feed.send("clock-F v3 without updated_at", raw_order("clock-F", 3, updated_at=None))
    if feed.send("clock-G v2 in 2099", raw_order("clock-G", 2, updated_at=FAR_FUTURE)):
        feed.failures.append("an updated_at in 2099 was accepted at the edge (clock-G)")
    feed.send("clock-G v3 without updated_at", raw_order("clock-G", 3, updated_at=None))
    feed.send("clock-M v2 without updated_at", raw_order("clock-M", 2, updated_at=None))
    feed.send(
        "clock-C cancel without updated_at",
        raw_order("clock-C", 2, updated_at=None, cancelled=True),
    )
    feed.send("clock-K cancel", raw_order("clock-K", 2, cancelled=True))
    feed.send("clock-K v3 after the cancel", raw_order("clock-K", 3))
    for key in ("A", "X", "idx:all"):
        feed.send(f"id {key!r} v2", raw_order(key, 2))
    fault_end = time.time()

    cli_failure = _cli_reports_refusals(cluster)
    result = finish(
        11,
        "hostile producers",
        cluster,
        feed.books,
        fault_end,
        refused_at_edge=len(feed.refused),
        colliding_ids=len(COLLIDING_IDS),
    )
    result.failures.extend(feed.failures)
    if cli_failure:
        result.failures.append(cli_failure)
    if any(r["status"] == "skipped" for r in cluster.sandbox.history("clock-K")):
        result.failures.append("clock-K: a copy after the cancellation was sent to Jetti")
    return result


def _cli_reports_refusals(cluster: Cluster) -> str | None:
    """`jetti-relay enqueue FILE` with a far-future and a huge order: exit 1 ("some orders
    rejected") naming both; the failure text, or None."""
    path = cluster.folder / "hostile-refused.jsonl"
    lines = [raw_order("cli-far", 1, updated_at=FAR_FUTURE), huge_order("cli-huge")]
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, **cluster.env}
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "enqueue", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    if done.returncode != 1:
        return (
            f"jetti-relay enqueue of a far-future and a huge order exited "
            f"{done.returncode}, not 1 (some orders rejected): {output.strip()[-200:]!r}"
        )
    if "updated_at" not in output:
        return "jetti-relay enqueue did not name updated_at in refusing the far-future order"
    return None
