"""The Redis replication's metric families (docs/operations.md, high availability).

One read per scrape of the primary's INFO replication and, with Sentinel configured, of each
sentinel (SENTINEL MASTER and REPLICAS; worker/store/replication_info.py). Every unlabelled
figure is exported even on a single Redis without Sentinel (at 0), so an alert on it finds a
series; per-replica lag has one series per replica the primary reports.

The last failover is Sentinel's own record (worker/core/replication.py): nothing is written to
Redis to keep it.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from ops.monitoring.naming import metric_name
from ops.monitoring.sources import Sources
from worker.wiring import replication_state

# The roles exported one-hot: a primary, a replica (writes refused), or no answer.
ROLES: tuple[str, ...] = ("master", "replica", "unknown")


def replication(src: Sources, now: float) -> list[Metric]:
    """Role, replicas online against the minimum, lag per replica and at most, and the
    sentinels' view: how many are configured and see the primary, quorum, epoch, failover."""
    settings = src.stores.settings
    state = replication_state(settings, src.client)
    view = state.primary

    def gauge(suffix: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(metric_name(suffix), text, value=value)

    role = GaugeMetricFamily(
        metric_name("redis_role"),
        "1 for the role of the Redis the relay writes to (INFO replication): master, replica "
        "(writes are refused), unknown (no answer).",
        labels=["role"],
    )
    current = "unknown" if view is None else ("master" if view.role == "master" else "replica")
    for name in ROLES:
        role.add_metric([name], 1.0 if name == current else 0.0)
    lag_bytes = GaugeMetricFamily(
        metric_name("redis_replica_lag_bytes"),
        "Replication offset a replica has not acknowledged (primary's master_repl_offset "
        "minus the replica's offset).",
        labels=["replica"],
    )
    lag_s = GaugeMetricFamily(
        metric_name("redis_replica_lag_seconds"),
        "Seconds since a replica's last acknowledgement (INFO replication lag; 0-1 is normal).",
        labels=["replica"],
    )
    for replica in () if view is None else view.replicas:
        lag_bytes.add_metric([replica.address], replica.lag_bytes)
        lag_s.add_metric([replica.address], replica.lag_s)
    failover = state.last_failover_at(now)
    return [
        role,
        gauge(
            "redis_replicas_online",
            "Replicas streaming the primary's writes (INFO replication state online).",
            0 if view is None else view.online,
        ),
        gauge(
            "redis_min_replicas_ack",
            "Replicas that must hold an order before it is acknowledged "
            "(JETTI_RELAY_MIN_REPLICAS_ACK; 0: the primary alone).",
            settings.min_replicas_ack,
        ),
        lag_bytes,
        lag_s,
        gauge(
            "redis_replica_lag_max_seconds",
            "The longest time since an online replica's acknowledgement; 0 with no replica.",
            0.0 if view is None else view.max_lag_s,
        ),
        gauge(
            "redis_sentinels",
            "Sentinels configured (JETTI_RELAY_REDIS_SENTINELS); 0 without Sentinel.",
            len(state.sentinels),
        ),
        gauge(
            "redis_sentinels_seeing_primary",
            "Sentinels that name the current primary and do not believe it down.",
            state.seeing_primary,
        ),
        gauge(
            "redis_sentinel_quorum",
            "Sentinels that must agree the primary is down before a failover (0: none answered).",
            state.quorum,
        ),
        gauge(
            "redis_sentinel_config_epoch",
            "Sentinel's config-epoch for the master: one more with every failover.",
            state.epoch,
        ),
        gauge(
            "redis_last_failover_timestamp_seconds",
            "Epoch seconds when the current primary took over (Sentinel's record); 0 when "
            "there was no failover.",
            failover or 0.0,
        ),
    ]
