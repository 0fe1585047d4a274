"""The per-minute counters (`Keys.minute_counters`): what the console's last hour is drawn from.

Two writers fill one hash per minute, each with an expiry of MINUTE_COUNTERS_KEPT_S after it:
the ledger scripts' `counter()` (worker/store/lua/prelude.lua: `record_accepted`,
`record_updated`, `submitted`, `dead_<reason>`, `confirmed`, `cancelled`...) and the worker's
batch tally (worker/store/stats.py `StatsTally.queue`: `submissions|<outcome>` per attempt, and
the enqueue-to-acceptance latency as `lat|<bucket>`, `lat|count`, `lat|sum`). Reading the last
hour is 60 pipelined HGETALLs of known names: never a key scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from worker.core.keys import Keys
from worker.store.stats import LATENCY_BUCKETS_S


@dataclass(frozen=True)
class Minute:
    """One minute's counters. `start` is the minute's first second (epoch s)."""

    start: int
    counts: Mapping[str, float] = field(default_factory=dict)

    def get(self, name: str) -> int:
        """A counter's value (0 when the minute has none)."""
        return int(self.counts.get(name, 0))

    @property
    def received(self) -> int:
        """New orders and new versions recorded by producers."""
        return self.get("record_accepted") + self.get("record_updated")

    @property
    def submitted(self) -> int:
        """Orders whose latest version Jetti accepted."""
        return self.get("submitted")

    @property
    def dead(self) -> int:
        """Orders dead-lettered, whatever the reason."""
        return sum(int(v) for k, v in self.counts.items() if k.startswith("dead_"))

    @property
    def retries(self) -> int:
        """Attempts that ended in a retry."""
        return self.get("submissions|retry")

    @property
    def latency_count(self) -> int:
        return self.get("lat|count")

    @property
    def latency_mean_s(self) -> float | None:
        """Mean enqueue-to-acceptance latency of the minute, None without an acceptance."""
        n = self.latency_count
        return None if n == 0 else float(self.counts.get("lat|sum", 0.0)) / n

    def latency_quantile_s(self, q: float) -> float | None:
        """The bucket bound holding quantile `q` (0..1) of the minute's latencies, None without
        any; an upper bound, as a Prometheus histogram_quantile without interpolation."""
        return quantile_of(self.counts, q)


def quantile_of(counts: Mapping[str, float], q: float) -> float | None:
    """The upper bound of the latency bucket holding quantile `q` of `lat|<bucket>` counts
    (inf when it lies beyond the last bound), None when there is none."""
    total = sum(int(counts.get(f"lat|{b!r}", 0)) for b in LATENCY_BUCKETS_S)
    total += int(counts.get("lat|inf", 0))
    if total == 0:
        return None
    rank = q * total
    running = 0
    for bound in LATENCY_BUCKETS_S:
        running += int(counts.get(f"lat|{bound!r}", 0))
        if running >= rank:
            return bound
    return float("inf")


class MinuteStats:
    """Reads the per-minute counters of one deployment."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def last(self, minutes: int, *, now: float) -> list[Minute]:
        """The `minutes` minutes ending with the current one, oldest first (empty minutes
        included, so a chart has no gaps)."""
        current = int(now // 60)
        numbers = list(range(current - minutes + 1, current + 1))
        pipe = self._client.pipeline(transaction=False)
        for m in numbers:
            pipe.hgetall(self._keys.minute_counters(m))
        out = []
        for m, raw in zip(numbers, pipe.execute(), strict=True):
            counts = {k.decode(): float(v) for k, v in raw.items()}
            out.append(Minute(start=m * 60, counts=counts))
        return out

    @staticmethod
    def total(minutes: list[Minute]) -> Minute:
        """The sum of several minutes' counters (start: the first one's)."""
        summed: dict[str, float] = {}
        for minute in minutes:
            for k, v in minute.counts.items():
                summed[k] = summed.get(k, 0.0) + v
        return Minute(start=minutes[0].start if minutes else 0, counts=summed)
