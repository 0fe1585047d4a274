"""What every metric family shares: the name prefix, the family signature, the age of a time.

Split from `families` so a group of families in a module of its own (`intake_families`) and
the list of all of them (`families.FAMILIES`) import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.core import Metric

from ops.monitoring.sources import Sources

# Every metric name starts with this.
PREFIX = "jetti_relay"

FamilyFn = Callable[[Sources, float], list[Metric]]


def metric_name(suffix: str) -> str:
    """The full metric name of `suffix` (`jetti_relay_<suffix>`)."""
    return f"{PREFIX}_{suffix}"


def age_s(now: float, since: float | None) -> float:
    """Seconds from `since` to `now`; 0 when there is nothing (no order waiting, no entry)."""
    return 0.0 if since is None else max(0.0, now - since)
