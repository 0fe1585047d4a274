"""Fleet-wide counters and the enqueue-to-acceptance latency histogram, kept in Redis.

Every worker process increments the same hashes, so `jetti-relay metrics` can export totals for
the whole fleet without scanning keys (Flower only sees what one monitor process received).
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

import redis

from worker.keys import Keys

# Upper bounds (seconds) of the latency histogram buckets, Prometheus style (le=...).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
)


# Counter fields (in the counters hash) of the two pipeline faults the worker counts.
UNKNOWN_ORDER_FIELD = "order_unknown"
NO_OUTCOME_FIELD = "delivery_no_outcome"


def latency_bucket(seconds: float) -> str:
    """The histogram field suffix for one latency (negative clock skew counts as 0)."""
    index = bisect.bisect_left(LATENCY_BUCKETS_S, max(0.0, seconds))
    return "inf" if index >= len(LATENCY_BUCKETS_S) else repr(LATENCY_BUCKETS_S[index])


class StatsTally:
    """Counts one batch's outcomes in memory; `queue` adds them to a pipeline as a handful of
    HINCRBYs (one per distinct field), so counting costs no round trip of its own."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._counters: Counter[str] = Counter()
        self._buckets: Counter[str] = Counter()
        self._latency_sum = 0.0

    def count_submission(self, outcome: str, status: int | None) -> None:
        """As `Stats.count_submission`."""
        self._counters[f"submissions|{outcome}|{status if status is not None else 'none'}"] += 1

    def count_dead(self, reason: str) -> None:
        """As `Stats.count_dead`."""
        self._counters[f"dead|{reason}"] += 1

    def count_unknown(self) -> None:
        """A message named an order key the ledger has no entry for (reliability L6)."""
        self._counters[UNKNOWN_ORDER_FIELD] += 1

    def count_no_outcome(self) -> None:
        """A delivery ended without a recorded outcome (a crash-loop strike, reliability #7)."""
        self._counters[NO_OUTCOME_FIELD] += 1

    def observe_latency(self, seconds: float) -> None:
        """As `Stats.observe_latency`."""
        self._buckets[latency_bucket(seconds)] += 1
        self._latency_sum += max(0.0, seconds)

    def __bool__(self) -> bool:
        return bool(self._counters or self._buckets)

    def queue(self, pipe: Any) -> None:
        """Queue the increments into `pipe` (a redis pipeline) and forget them."""
        for field, n in self._counters.items():
            pipe.hincrby(self._keys.counters(), field, n)
        if self._buckets:
            latency = self._keys.latency()
            for bucket, n in self._buckets.items():
                pipe.hincrby(latency, f"bucket|{bucket}", n)
            pipe.hincrby(latency, "count", sum(self._buckets.values()))
            pipe.hincrbyfloat(latency, "sum", self._latency_sum)
        self._counters.clear()
        self._buckets.clear()
        self._latency_sum = 0.0


class Stats:
    """Counters of submission outcomes and dead letters, and the latency histogram."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def count_submission(self, outcome: str, status: int | None) -> None:
        """One submission attempt ended with `outcome` (accepted, retry...) and `status`."""
        field = f"submissions|{outcome}|{status if status is not None else 'none'}"
        self._client.hincrby(self._keys.counters(), field, 1)

    def count_dead(self, reason: str) -> None:
        """One order was dead-lettered for `reason`."""
        self._client.hincrby(self._keys.counters(), f"dead|{reason}", 1)

    def observe_latency(self, seconds: float) -> None:
        """Record one enqueue-to-acceptance latency (negative clock skew counts as 0)."""
        value = max(0.0, seconds)
        bucket = latency_bucket(value)
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(self._keys.latency(), f"bucket|{bucket}", 1)
        pipe.hincrby(self._keys.latency(), "count", 1)
        pipe.hincrbyfloat(self._keys.latency(), "sum", value)
        pipe.execute()

    def tally(self) -> StatsTally:
        """An in-memory tally for one batch, flushed with `StatsTally.queue`."""
        return StatsTally(self._keys)

    def submissions(self) -> dict[tuple[str, str], int]:
        """Totals by (outcome, status) since the counters were created."""
        out: dict[tuple[str, str], int] = {}
        for raw_field, raw_value in self._client.hgetall(self._keys.counters()).items():
            parts = raw_field.decode().split("|")
            if parts[0] == "submissions" and len(parts) == 3:
                out[(parts[1], parts[2])] = int(raw_value)
        return out

    def dead_counts(self) -> dict[str, int]:
        """Dead-lettering events by reason since the counters were created."""
        out: dict[str, int] = {}
        for raw_field, raw_value in self._client.hgetall(self._keys.counters()).items():
            parts = raw_field.decode().split("|")
            if parts[0] == "dead" and len(parts) == 2:
                out[parts[1]] = int(raw_value)
        return out

    def fault_counts(self) -> dict[str, int]:
        """Totals of `order_unknown` and `delivery_no_outcome` since the counters began."""
        fields = (UNKNOWN_ORDER_FIELD, NO_OUTCOME_FIELD)
        values = self._client.hmget(self._keys.counters(), list(fields))
        return {f: int(v or 0) for f, v in zip(fields, values, strict=True)}

    def latency_histogram(self) -> tuple[list[tuple[float, int]], int, float]:
        """Cumulative buckets [(le, count)], total count and sum, ready for Prometheus."""
        raw = {k.decode(): v for k, v in self._client.hgetall(self._keys.latency()).items()}
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound in LATENCY_BUCKETS_S:
            running += int(raw.get(f"bucket|{bound!r}", 0))
            cumulative.append((bound, running))
        running += int(raw.get("bucket|inf", 0))
        cumulative.append((float("inf"), running))
        return cumulative, int(raw.get("count", 0)), float(raw.get("sum", 0.0))
