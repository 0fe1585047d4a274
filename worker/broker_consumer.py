"""Celery's consumer, reconnecting to the broker within a second of it coming back.

Celery's worker reconnects through kombu's `Connection.ensure_connection` with kombu's default
pauses: 2 s before the second try, then 4, 6... up to 30 s. After a kill -9 of a Sentinel
primary, the first two tries fell before the failover was done (2.3 s in chaos 15), so the
third, 6 s in, was the one that connected: the orders already queued waited 7.4 s for the
failover of 2.3 s. After a Redis or RabbitMQ restart the same pauses leave the queue unread for
seconds after the broker is back. `PromptReconnectConsumer` asks for half a second, growing by
half a second to 5 s: a broker that is back is found within about a second, and a long outage
costs one try every 5 s. `create_app` installs it (`worker_consumer`).

Celery's `broker_connection_max_retries` (100) still bounds the tries: about 8 minutes of
outage at these pauses, after which the Celery worker exits and `jetti-relay worker` starts it
again (ops/commands/worker.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery.worker.consumer import Consumer

# Seconds before the second try to reach the broker, the growth per try, and the longest pause.
RECONNECT_FIRST_PAUSE_S = 0.5
RECONNECT_PAUSE_STEP_S = 0.5
RECONNECT_LONGEST_PAUSE_S = 5.0


class PromptReconnectConsumer(Consumer):  # type: ignore[misc]  # celery ships no type hints
    """Celery's consumer whose broker reconnects use the pauses above (module docstring)."""

    def ensure_connected(self, conn: Any) -> Any:
        # Celery's method passes no pauses to kombu; hand it a connection whose
        # ensure_connection has them bound, for this call only.
        conn.ensure_connection = partial(
            type(conn).ensure_connection,
            conn,
            interval_start=RECONNECT_FIRST_PAUSE_S,
            interval_step=RECONNECT_PAUSE_STEP_S,
            interval_max=RECONNECT_LONGEST_PAUSE_S,
        )
        try:
            return super().ensure_connected(conn)
        finally:
            del conn.ensure_connection
