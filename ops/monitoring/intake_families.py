"""The Redis Stream intake's metric families (producers/stream.py, docs/intake.md).

One read of `IntakeStream.status()` per scrape (XLEN of both streams, XINFO GROUPS, XPENDING
and a script that returns entry ids, never an entry's body). Every figure is exported at 0 when
the stream does not exist, so an alert on it finds a series.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from ops.monitoring.naming import age_s, metric_name
from ops.monitoring.sources import Sources
from worker.store.intake import LAG_COUNT_CAP


def intake(src: Sources, now: float) -> list[Metric]:
    """Stream length, the group's lag and pending entries, their ages, and the rejects."""
    status = src.intake.status()

    def gauge(suffix: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(metric_name(suffix), text, value=value)

    return [
        gauge(
            "intake_stream_length",
            "Entries in the intake stream (XLEN): unread, pending, and acknowledged ones not "
            "trimmed yet.",
            status.length,
        ),
        gauge(
            "intake_lag",
            "Entries no intake consumer has read yet (XINFO GROUPS lag; on Redis 6.2 counted up "
            f"to {LAG_COUNT_CAP}); every entry when no intake ever ran.",
            status.lag,
        ),
        gauge(
            "intake_pending",
            "Entries read by an intake consumer and not acknowledged yet (XPENDING).",
            status.pending,
        ),
        gauge(
            "intake_oldest_pending_age_seconds",
            "Seconds since the oldest pending entry was added (its id); 0 when none is pending.",
            age_s(now, status.oldest_pending_at),
        ),
        gauge(
            "intake_oldest_unread_age_seconds",
            "Seconds since the oldest entry no consumer has read was added; 0 when all are read.",
            age_s(now, status.oldest_unread_at),
        ),
        gauge(
            "intake_rejects",
            "Entries in the intake rejects stream (XLEN; capped near intake_rejects_max).",
            status.rejects,
        ),
        gauge(
            "intake_rejects_max",
            "The cap of the intake rejects stream (JETTI_RELAY_INTAKE_REJECTS_MAX).",
            src.intake_rejects_max,
        ),
        gauge(
            "intake_last_reject_timestamp_seconds",
            "Epoch seconds of the newest entry in the rejects stream; 0 if there is none.",
            status.newest_reject_at or 0.0,
        ),
    ]
