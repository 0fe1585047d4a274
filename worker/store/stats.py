"""Fleet-wide counters and the enqueue-to-acceptance latency histogram, kept in Redis.

Every worker process increments the same hashes, so `jetti-relay metrics` can export totals for
the whole fleet without scanning keys (Flower only sees what one monitor process received).
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from typing import Any

import redis

from worker.core.keys import Keys
from worker.core.limits import MINUTE_COUNTERS_KEPT_S

# Counter field (in keys.counters()) of message entries dropped as not an order key.
DROPPED_KEY_COUNTER = "message_keys_dropped"

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


# Signs that Jetti answered in a way the relay does not assume (docs/reconciler.md,
# "Assumptions about undocumented Jetti behaviour"); each is a label of
# jetti_relay_jetti_assumption_violations_total.
ASSUMPTIONS: tuple[str, ...] = (
    "retry_after_clamped",  # a Retry-After above RETRY_AFTER_MAX_S (used: the bound)
    "retry_after_ignored",  # inf, NaN, negative or unreadable Retry-After (used: the default)
    "page_short",  # an import-log page shorter than asked but not empty (a server-side cap)
    "offset_ignored",  # an import-log page repeated rows already read (offset not honoured)
    "page_cap_hit",  # a pass read MAX_PAGES_PER_PASS pages and stopped
    "sale_without_lines",  # a sale answer without lineItems (cannot compare: confirmed)
    "sale_fields_differ",  # sale lines match ids and quantities, not names/prices (confirmed)
    "sale_other_channel",  # the sale lookup returned another channel's sale (ignored)
    "sale_without_channel",  # a sale row without channelId (cannot be proven ours: ignored)
    "sale_still_differs",  # a sale still differed after MAX_REPAIRS resends (confirmed)
    "error_after_confirmed",  # an import-log error showed up after its order was confirmed
    "cancel_not_shown",  # a cancel POST answered with a sale that does not show the cancel
    "sale_partially_cancelled",  # the sale to cancel was partially cancelled (left as it is)
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

    def count_surprise(self, assumption: str) -> None:
        """As `Stats.count_surprise`."""
        self._counters[f"jetti|{assumption}"] += 1

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

    def queue(self, pipe: Any, *, now: float | None = None) -> None:
        """Queue the increments into `pipe` (a redis pipeline) and forget them. The same
        increments go to the minute's counters (`Keys.minute_counters`) of `now` (default: the
        clock), where submissions count by outcome only and latency as `lat|` fields."""
        if not self:
            return
        minute = self._keys.minute_counters(int((time.time() if now is None else now) // 60))
        by_outcome: Counter[str] = Counter()
        for field, n in self._counters.items():
            pipe.hincrby(self._keys.counters(), field, n)
            kind, _, rest = field.partition("|")
            if kind == "submissions":
                by_outcome[f"submissions|{rest.partition('|')[0]}"] += n
            else:
                by_outcome[field] += n
        for field, n in by_outcome.items():
            pipe.hincrby(minute, field, n)
        if self._buckets:
            latency = self._keys.latency()
            for bucket, n in self._buckets.items():
                pipe.hincrby(latency, f"bucket|{bucket}", n)
                pipe.hincrby(minute, f"lat|{bucket}", n)
            pipe.hincrby(latency, "count", sum(self._buckets.values()))
            pipe.hincrbyfloat(latency, "sum", self._latency_sum)
            pipe.hincrby(minute, "lat|count", sum(self._buckets.values()))
            pipe.hincrbyfloat(minute, "lat|sum", self._latency_sum)
        pipe.expire(minute, MINUTE_COUNTERS_KEPT_S + 60)
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

    def count_dropped_key(self) -> None:
        """One entry of a message was not an order key and was dropped (tasks.parse_message)."""
        self._client.hincrby(self._keys.counters(), DROPPED_KEY_COUNTER, 1)

    def dropped_keys(self) -> int:
        """Message entries dropped as not an order key, since the counters were created."""
        return int(self._client.hget(self._keys.counters(), DROPPED_KEY_COUNTER) or 0)

    def count_surprise(self, assumption: str) -> None:
        """Jetti answered against one of the `ASSUMPTIONS` (a name from that tuple)."""
        self._client.hincrby(self._keys.counters(), f"jetti|{assumption}", 1)

    def surprises(self) -> dict[str, int]:
        """Counts by assumption (every name of `ASSUMPTIONS`, 0 when never seen)."""
        out = dict.fromkeys(ASSUMPTIONS, 0)
        for raw_field, raw_value in self._client.hgetall(self._keys.counters()).items():
            kind, _, name = raw_field.decode().partition("|")
            if kind == "jetti" and name:
                out[name] = int(raw_value)
        return out

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

    def record_counts(self) -> dict[str, int]:
        """Copies recorded by the producers by outcome (accepted, updated, unchanged, stale,
        after_cancel) since the counters were created: the record scripts' `record_<outcome>`
        fields (worker/store/lua/prelude.lua, record_one)."""
        out: dict[str, int] = {}
        for raw_field, raw_value in self._client.hgetall(self._keys.counters()).items():
            field = raw_field.decode()
            if field.startswith("record_"):
                out[field.removeprefix("record_")] = int(raw_value)
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
