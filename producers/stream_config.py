"""The stream intake's knobs and counters, and which failures it waits out
(`producers.stream_intake.StreamIntake`)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.exceptions import OutOfMemoryError  # type: ignore[attr-defined]  # not in types-redis

from producers.enqueue import EnqueueInterrupted, ReplicationUnconfirmed, unreachable
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S, DEFAULT_MAX_LINE_ITEMS
from worker.settings.defaults import DEFAULT_MIN_REPLICAS_ACK, DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S
from worker.store.replication import refused_for_replicas

# How long one read waits for new entries: also how fast the loop notices `stop`.
DEFAULT_BLOCK_MS = 1000
# How often the pending entries of dead consumers are looked for (at most; and at start).
RECLAIM_EVERY_S = 5.0
# How often acknowledged entries are trimmed from the stream.
TRIM_EVERY_S = 5.0


@dataclass(frozen=True)
class IntakeLimits:
    """The intake's knobs (JETTI_RELAY_INTAKE_*; `worker.settings`), and the library's
    validation bounds and replicas to wait for (JETTI_RELAY_MIN_REPLICAS_ACK*), as plain
    values."""

    batch_size: int
    reclaim_idle_s: float
    max_deliveries: int
    rejects_max: int
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS
    min_replicas_ack: int = DEFAULT_MIN_REPLICAS_ACK
    min_replicas_ack_timeout_s: float = DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S
    block_ms: int = DEFAULT_BLOCK_MS
    reclaim_every_s: float = RECLAIM_EVERY_S
    trim_every_s: float = TRIM_EVERY_S


@dataclass
class IntakeCounts:
    """What this consumer did since it started (entries, not orders: one entry, one order)."""

    read: int = 0
    acked: int = 0
    rejected: int = 0
    reclaimed: int = 0
    gave_up: int = 0
    failed: int = 0


def transient(exc: BaseException) -> bool:
    """True when retrying the same batch later can help: a transport failure, Redis refusing
    writes for now (a replica after a failover, maxmemory reached, too few replicas in sync for
    its `min-replicas-to-write`), or the batch recorded with too few replicas confirming it."""
    if isinstance(exc, ReplicationUnconfirmed):
        return True
    if isinstance(exc, EnqueueInterrupted) and exc.__cause__ is not None:
        exc = exc.__cause__
    return (
        unreachable(exc)
        or isinstance(exc, redis.exceptions.ReadOnlyError | OutOfMemoryError)
        or refused_for_replicas(exc)
    )
