"""Scenarios 15 and 16: losing the Redis primary under Sentinel (issue 15).

Each runs on a replicated group of its own (`ops.harness.ha.RedisHA`: a primary, two replicas,
three sentinels with a 1 s down-after time, every node with `min-replicas-to-write 1`, as the HA
setup runs), sharing the run's sandbox. The producer and every worker reach the primary through
the sentinels only (JETTI_RELAY_REDIS_SENTINELS; the Celery broker is the derived
`sentinel://` URL), so nothing is restarted or re-pointed by hand.

- 15 `redis-primary-kill`: kill -9 of the primary while orders flow. Every order acknowledged
  upstream before the kill must be delivered; figures: time to failover, orders delayed by it,
  the longest delay.
- 16 `redis-primary-stall`: SIGSTOP of the primary for longer than the down-after time (a
  partition, as the primary's clients see it), a failover, then SIGCONT (the old primary is
  demoted). Run twice, with JETTI_RELAY_MIN_REPLICAS_ACK 0 and 1, figures side by side. Orders
  keep coming through the stall; some of those the new primary acknowledged must be submitted
  before the old primary is continued (the workers followed the failover, not the old node).

An order counts as acknowledged when `enqueue` returned for its chunk without an exception: a
chunk that raised (Redis unreachable, NOREPLICAS, "replication unconfirmed") is sent again,
which is what the library asks of upstream, until it is acknowledged.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import fields
from pathlib import Path
from statistics import median

import redis

from ops.chaos.books import Books, BooksReport
from ops.chaos.cluster import Cluster
from ops.chaos.flow import ScenarioResult, record, settle, stream
from ops.chaos.scenarios import SETTLE_TIMEOUT_S, Scale, start_workers
from ops.harness.ha import RedisHA
from producers.enqueue import EnqueueInterrupted, ReplicationUnconfirmed, enqueue
from worker import wiring
from worker.settings import Settings
from worker.store.ledger_schema import OrderField

KILL_NUMBER = 15
STALL_NUMBER = 16
# The relay gives up on a silent Redis after this (the stopped primary never answers): short,
# so a stall costs seconds, and above the replica wait below (the settings insist).
SOCKET_TIMEOUT_S = 2.0
REPLICAS_ACK_TIMEOUT_S = 1.0
# The stall lasts this many times the scale's fault time: past Sentinel's down-after time
# (1 s) and the failover (~3 s) at any scale (6 s in CI), and at full scale (16 s) long enough
# that the workers must have left the stopped primary for the new one before it comes back.
STALL_PER_FAULT = 2.0
# With the 2 s socket timeout the workers consume from the new primary 8-11 s after the stall
# began (measured): the consumer gives up on its BRPOP after ~3-5 s, then reconnects through
# the sentinels. Kombu's defaults held it on the stopped primary until SIGCONT (or ~51 s).
# A stall at least this long must see orders consumed before SIGCONT (checked).
FOLLOW_WITHIN_S = 14.0
# What `jetti-relay worker` prints when its Celery worker died and it starts it again.
CELERY_RESTARTED = "starting it again"
# Longest a producer resends one chunk before the scenario gives up on it.
RESEND_FOR_S = 60.0


class HACluster(Cluster):
    """A `Cluster` whose Redis is a Sentinel group; it borrows `base`'s running sandbox."""

    def __init__(self, folder: Path, base: Cluster, *, min_replicas_ack: int = 0) -> None:
        super().__init__(folder)
        self.sandbox = base.sandbox
        self.ha = RedisHA(folder / "redis", min_replicas_to_write=1)
        self.redis = self.ha.nodes[0]  # only its database number is read (the URL's path)
        self.min_replicas_ack = min_replicas_ack

    def start(self) -> HACluster:
        self.ha.start()
        env = self.ha.settings_env()
        settings = Settings(
            redis_url=env["JETTI_RELAY_REDIS_URL"],
            redis_sentinels=env["JETTI_RELAY_REDIS_SENTINELS"],
            redis_sentinel_master=env["JETTI_RELAY_REDIS_SENTINEL_MASTER"],
            redis_socket_timeout_s=SOCKET_TIMEOUT_S,
            min_replicas_ack=self.min_replicas_ack,
            min_replicas_ack_timeout_s=REPLICAS_ACK_TIMEOUT_S,
        )
        self.connect(settings, wiring.redis_client(settings))
        return self

    def close(self) -> None:
        self.stop_workers()
        if self.client is not None:
            self.client.close()
        self.app.close()
        self.ha.stop()  # the sandbox is the run's: its owner stops it

    @property
    def broker_url(self) -> str:
        return self.settings.broker_url

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            **self.ha.settings_env(),
            "JETTI_RELAY_BROKER_URL": self.settings.broker_url,
            "JETTI_RELAY_REDIS_SOCKET_TIMEOUT_S": str(SOCKET_TIMEOUT_S),
            "JETTI_RELAY_MIN_REPLICAS_ACK": str(self.min_replicas_ack),
            "JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S": str(REPLICAS_ACK_TIMEOUT_S),
        }

    def submitted_at(self, order_keys: list[str]) -> dict[str, float]:
        """When each order was last submitted (the ledger's `submitted_at`), where it was."""
        assert self.client is not None
        pipe = self.client.pipeline(transaction=False)
        for key in order_keys:
            pipe.hget(self.keys.order(key), OrderField.SUBMITTED_AT)
        replies = pipe.execute()
        return {k: float(v) for k, v in zip(order_keys, replies, strict=True) if v}


class AckingProducer(threading.Thread):
    """Enqueues chunks every `interval_s` and resends a chunk until `enqueue` acknowledges it,
    booking each order with the time it was acknowledged; counts the refusals by kind and the
    time from a chunk's first send to its acknowledgement (resends included)."""

    def __init__(
        self,
        cluster: HACluster,
        books: Books,
        items: list[tuple[str, bytes]],
        *,
        chunk: int,
        interval_s: float,
    ) -> None:
        super().__init__(name="ha-producer", daemon=True)
        self.cluster, self.books, self.items = cluster, books, items
        self.chunk, self.interval_s = chunk, interval_s
        self.acked_at: dict[str, float] = {}
        self.latencies_s: list[float] = []
        self.unconfirmed = self.no_replicas = self.unreachable = self.other = 0
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            for start in range(0, len(self.items), self.chunk):
                part = self.items[start : start + self.chunk]
                self._send(part)
                time.sleep(self.interval_s)
        except BaseException as exc:  # reported by the scenario, never lost in a thread
            self.error = exc
        finally:
            self.finished_at = time.time()

    def _send(self, part: list[tuple[str, bytes]]) -> None:
        raws = [raw for _key, raw in part]
        deadline = time.monotonic() + RESEND_FOR_S
        cluster = self.cluster
        began = time.monotonic()  # what upstream waits: every resend of the chunk included
        while True:
            try:
                summary = enqueue(
                    raws,
                    client=cluster.client,  # type: ignore[arg-type]  # started
                    publisher=cluster.publisher,
                    keys=cluster.keys,
                    min_replicas_ack=cluster.min_replicas_ack,
                    min_replicas_ack_timeout_s=REPLICAS_ACK_TIMEOUT_S,
                )
            except (EnqueueInterrupted, redis.RedisError) as exc:
                self._count(exc)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            now = time.time()
            self.latencies_s.append(time.monotonic() - began)
            record(self.books, raws, {r.position for r in summary.rejections})
            for key, _raw in part:
                self.acked_at.setdefault(key, now)
            return

    def _count(self, exc: BaseException) -> None:
        if isinstance(exc, ReplicationUnconfirmed):
            self.unconfirmed += 1
        elif isinstance(exc, EnqueueInterrupted) and exc.no_replicas:
            self.no_replicas += 1
        elif isinstance(exc, EnqueueInterrupted) and exc.unreachable:
            self.unreachable += 1
        else:
            self.other += 1


def _started(base: Cluster, name: str, min_replicas_ack: int = 0) -> HACluster:
    folder = base.folder / name
    folder.mkdir(parents=True, exist_ok=True)
    base.sandbox.reset()
    return HACluster(folder, base, min_replicas_ack=min_replicas_ack).start()


def _producer(
    cluster: HACluster, books: Books, prefix: str, scale: Scale, span_s: float
) -> AckingProducer:
    """A producer that spreads `scale.orders` over about `span_s` seconds."""
    items = stream(prefix, scale.orders)
    chunk = 4
    interval = span_s / max(1, len(items) // chunk)
    return AckingProducer(cluster, books, items, chunk=chunk, interval_s=interval)


def _delays(cluster: HACluster, producer: AckingProducer, fault_at: float) -> tuple[int, float]:
    """Orders acknowledged before `fault_at` and submitted after it, and the longest wait
    from acknowledgement to submission among them."""
    before = [k for k, at in producer.acked_at.items() if at <= fault_at]
    submitted = cluster.submitted_at(before)
    delayed = [k for k in before if submitted.get(k, 0.0) > fault_at]
    longest = max((submitted[k] - producer.acked_at[k] for k in delayed), default=0.0)
    return len(delayed), longest


def _followed(
    cluster: HACluster, producer: AckingProducer, failed_over_at: float, continued_at: float
) -> tuple[int, int]:
    """Orders acknowledged by the new primary while the old one was still stopped, and how
    many of them were submitted before it was continued: the workers followed the failover
    instead of waiting for the old primary to answer again."""
    during = [k for k, at in producer.acked_at.items() if failed_over_at < at <= continued_at]
    submitted = cluster.submitted_at(during)
    return len(during), sum(1 for k in during if submitted.get(k, continued_at) < continued_at)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def redis_primary_kill(base: Cluster, scale: Scale) -> ScenarioResult:
    """kill -9 the Sentinel-managed primary while orders flow; the same workers follow the
    failover and everything acknowledged before the kill is delivered."""
    cluster = _started(base, "ha-kill")
    try:
        base.sandbox.set_faults(latency_ms=50)
        start_workers(cluster, scale)
        books = Books()
        producer = _producer(cluster, books, "hakill", scale, scale.fault_s * 2)
        producer.start()
        time.sleep(scale.fault_s)
        old = cluster.ha.primary()
        killed_at = time.time()
        assert old.process is not None
        old.process.send_signal(signal.SIGKILL)
        old.process.wait()
        old.process = None
        failover_s = cluster.ha.wait_failover(old.port)
        producer.join(timeout=SETTLE_TIMEOUT_S)
        if producer.error is not None:
            raise RuntimeError(f"producer failed: {producer.error!r}") from producer.error
        fault_end = max(killed_at + failover_s, producer.finished_at)
        base.sandbox.set_faults(latency_ms=0)
        report, recover_s = settle(cluster, books, fault_end=fault_end, timeout_s=SETTLE_TIMEOUT_S)
        delayed, longest = _delays(cluster, producer, killed_at)
        result = ScenarioResult(
            KILL_NUMBER,
            "Redis primary kill -9 (Sentinel)",
            report,
            recover_s,
            figures={
                "failover_s": round(failover_s, 1),
                "acked_before_kill": sum(1 for t in producer.acked_at.values() if t <= killed_at),
                "orders_delayed": delayed,
                "longest_delay_s": round(longest, 1),
                "producer_resends": producer.unreachable
                + producer.no_replicas
                + producer.unconfirmed
                + producer.other,
                "celery_restarts": cluster.worker_logs().count(CELERY_RESTARTED),
            },
        )
        if recover_s is None:
            result.failures.append(f"not settled {SETTLE_TIMEOUT_S:.0f} s after the failover")
        if any(not w.alive() for w in cluster.workers):
            result.failures.append("a worker process died with the primary")
        return result
    finally:
        cluster.close()


def _stall_once(
    base: Cluster, scale: Scale, min_replicas_ack: int
) -> tuple[BooksReport, float | None, dict[str, object]]:
    cluster = _started(base, f"ha-stall-{min_replicas_ack}", min_replicas_ack)
    try:
        base.sandbox.set_faults(latency_ms=50)
        workers = start_workers(cluster, scale)
        books = Books()
        # Orders keep coming through the stall: those acknowledged by the new primary while
        # the old one is stopped show whether the workers followed the failover.
        stall_s = STALL_PER_FAULT * scale.fault_s
        span_s = scale.fault_s + stall_s + 1.0
        producer = _producer(cluster, books, f"hastall{min_replicas_ack}", scale, span_s)
        producer.start()
        time.sleep(scale.fault_s)
        old = cluster.ha.primary()
        assert old.process is not None
        stopped_at = time.time()
        old.process.send_signal(signal.SIGSTOP)
        failover_s = cluster.ha.wait_failover(old.port)
        time.sleep(max(0.0, stall_s - (time.time() - stopped_at)))
        old.process.send_signal(signal.SIGCONT)
        continued_at = time.time()
        producer.join(timeout=SETTLE_TIMEOUT_S)
        if producer.error is not None:
            raise RuntimeError(f"producer failed: {producer.error!r}") from producer.error
        base.sandbox.set_faults(latency_ms=0)
        fault_end = max(continued_at, producer.finished_at)
        report, recover_s = settle(cluster, books, fault_end=fault_end, timeout_s=SETTLE_TIMEOUT_S)
        delayed, longest = _delays(cluster, producer, stopped_at)
        in_stall, consumed = _followed(cluster, producer, stopped_at + failover_s, continued_at)
        latencies = producer.latencies_s
        figures: dict[str, object] = {
            "acked": len(producer.acked_at),
            "lost": report.lost,
            "harmful": report.harmful_duplicates,
            "failover_s": round(failover_s, 1),
            "unconfirmed": producer.unconfirmed,
            "noreplicas": producer.no_replicas,
            "unreachable": producer.unreachable,
            "enqueue_p50_ms": round(median(latencies) * 1000, 1) if latencies else 0.0,
            "enqueue_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
            "enqueue_max_ms": round(max(latencies, default=0.0) * 1000, 1),
            "delayed": delayed,
            "longest_delay_s": round(longest, 1),
            "stall_s": round(continued_at - stopped_at, 1),
            "acked_in_stall": in_stall,
            "consumed_in_stall": consumed,
            "celery_restarts": cluster.worker_logs().count(CELERY_RESTARTED),
            "workers_alive": sum(1 for w in workers if w.alive()),
        }
        return report, recover_s, figures
    finally:
        cluster.close()


def redis_primary_stall(base: Cluster, scale: Scale) -> ScenarioResult:
    """SIGSTOP the primary past the down-after time, fail over, SIGCONT it; once with
    MIN_REPLICAS_ACK 0 and once with 1. No order acknowledged may be lost or applied twice."""
    halves = {ack: _stall_once(base, scale, ack) for ack in (0, 1)}
    report = _sum_reports([r for r, _s, _f in halves.values()])
    recovered = [s for _r, s, _f in halves.values()]
    recover_s = None if None in recovered else max(s for s in recovered if s is not None)
    figures = {f"ack{ack}_{k}": v for ack, (_r, _s, f) in halves.items() for k, v in f.items()}
    result = ScenarioResult(
        STALL_NUMBER, "Redis primary stall (SIGSTOP)", report, recover_s, figures=figures
    )
    if recover_s is None:
        result.failures.append(f"not settled {SETTLE_TIMEOUT_S:.0f} s after SIGCONT")
    for ack, (_r, _s, f) in halves.items():
        if f["workers_alive"] != scale.workers:
            result.failures.append(f"a worker process died with the stall (MIN_REPLICAS_ACK {ack})")
        long_stall = float(str(f["stall_s"])) >= FOLLOW_WITHIN_S
        if long_stall and f["acked_in_stall"] and not f["consumed_in_stall"]:
            result.failures.append(
                f"no order acknowledged by the new primary was submitted before the old one "
                f"came back (MIN_REPLICAS_ACK {ack}): the workers waited for the stopped primary"
            )
    return result


def _sum_reports(reports: list[BooksReport]) -> BooksReport:
    """One report of several runs: counts added, problems and reasons merged."""
    total = BooksReport()
    for report in reports:
        for f in fields(BooksReport):
            value = getattr(report, f.name)
            if isinstance(value, int):
                setattr(total, f.name, getattr(total, f.name) + value)
            elif isinstance(value, dict):
                merged = getattr(total, f.name)
                for key, n in value.items():
                    merged[key] = merged.get(key, 0) + n
            elif isinstance(value, list):
                for problem in value:
                    total.note(problem)
    return total
