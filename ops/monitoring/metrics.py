"""Prometheus metrics for what Flower cannot show: backlog, retries, dead letters, outcomes.

Flower sees the tasks one monitor process received; it cannot see the orders waiting in the
ledger, the retry schedule, the dead-letter store or the fleet's breaker (mher/flower#1173,
spec/queue-anchors.md §3.5). `RelayCollector` reads them from Redis on every scrape, through
the adapters' index reads (ZCARD, ZRANGE 0 0, HGETALL of small hashes): a scrape costs a fixed
handful of round trips whatever the backlog, and never scans keys.

Each metric family is one function `(Sources, now) -> list[Metric]` listed in `FAMILIES`; a new
figure (the reconciler's, say) is one more function appended there. A scrape is all or nothing:
when Redis fails, only `jetti_relay_redis_up 0` is exported, never half the families.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import redis
import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ops.monitoring.families import FAMILIES
from ops.monitoring.naming import FamilyFn, metric_name
from ops.monitoring.sources import Sources

__all__ = ["RelayCollector", "Sources", "build_registry"]

log = structlog.get_logger("jetti_relay.metrics")


class RelayCollector(Collector):
    """A custom collector: reads the fleet's figures from Redis on every scrape."""

    def __init__(
        self,
        sources: Sources,
        *,
        families: Sequence[FamilyFn] = FAMILIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = sources
        self._families = tuple(families)
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        metrics: list[Metric] = []
        try:
            for family in self._families:
                metrics.extend(family(self._sources, now))
        except redis.RedisError as exc:
            log.warning("metrics_redis_unreachable", error=type(exc).__name__, detail=str(exc))
            yield GaugeMetricFamily(
                metric_name("redis_up"), "1 when Redis answered this scrape.", 0
            )
            return
        yield GaugeMetricFamily(metric_name("redis_up"), "1 when Redis answered this scrape.", 1)
        yield from metrics


def build_registry(sources: Sources) -> CollectorRegistry:
    """A registry holding only the relay's collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(sources))
    return registry
