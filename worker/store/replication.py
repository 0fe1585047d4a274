"""Replicated acceptance: wait until the replicas hold every write made so far (`WAIT`).

The producers tell upstream "accepted" only once the primary and `JETTI_RELAY_MIN_REPLICAS_ACK`
replicas hold the orders (issue 15); without that, a failover in the second after the answer
promotes a replica that never saw them, and upstream, told they were safe, never sends them again.

`WAIT n timeout` alone is not enough: Redis answers it for the replication offset its own
connection reached (`c->woff`: up to Redis 7.0 the offset at that connection's previous command,
since 7.2 the offset of its last command that propagated). Another connection's writes are not
covered: the ledger records on pooled connections that threads share (the intakes read and write
on several), the broker publishes on its own, so a WAIT on a connection that has been quiet since
the replicas last answered confirms at once while they still lack those writes
(tests/integration/pipeline/test_replicated_acceptance.py shows it). A write to the fence key on
the same connection, just before the WAIT, moves that connection's offset to the primary's
current one under either rule: the WAIT then covers every write the primary accepted before it,
on any connection. Fence and WAIT go in one pipeline: one round trip, one connection.
"""

from __future__ import annotations

import math

import redis

from worker.core.keys import Keys


class ReplicaFence:
    """Confirms that `replicas` replicas hold every write the primary took before the call,
    waiting at most `timeout_s` seconds. Built only when upstream asks for replicas (N > 0):
    with N = 0 nothing is written and nothing waits, exactly as before replication existed.

    `timeout_s` must stay under the client's socket timeout, or the wait reads as a Redis that
    does not answer (`redis.TimeoutError`)."""

    def __init__(
        self, client: redis.Redis[bytes], keys: Keys, *, replicas: int, timeout_s: float
    ) -> None:
        if replicas < 1:
            raise ValueError("a ReplicaFence waits for at least one replica")
        if timeout_s <= 0:
            raise ValueError("a ReplicaFence needs a timeout above 0 s (WAIT 0 waits for ever)")
        self.client = client
        self.replicas = replicas
        self.timeout_s = timeout_s
        self._key = keys.replication_fence()
        # WAIT takes whole milliseconds and 0 means no limit: never round down to it.
        self._timeout_ms = max(1, math.ceil(timeout_s * 1000))

    def confirm(self) -> int:
        """Write the fence, then WAIT: the number of replicas that acknowledged everything up
        to the fence (it may be more than `replicas`; fewer means the timeout passed). Redis
        errors propagate: a primary under `min-replicas-to-write` with too few replicas in
        sync refuses the fence with NOREPLICAS (a `redis.ResponseError`)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(self._key)
        pipe.wait(self.replicas, self._timeout_ms)
        fence, acked = pipe.execute(raise_on_error=False)
        for reply in (fence, acked):
            if isinstance(reply, Exception):
                raise reply  # the server's own reply, not redis-py's pipeline wording
        return int(acked)


def refused_for_replicas(exc: BaseException) -> bool:
    """True when Redis refused a write because fewer replicas than its `min-replicas-to-write`
    are in sync (`NOREPLICAS ...`): nothing was written, and the same write can succeed once the
    replicas are back. redis-py has no class for this reply, so its code is read here, once
    (after the wording redis-py puts before an error raised from a pipeline)."""
    reply = str(exc).rpartition("caused error: ")[2]
    return isinstance(exc, redis.ResponseError) and reply.startswith("NOREPLICAS")


def failing_over(exc: BaseException) -> bool:
    """True when the same ledger write can succeed in a moment because Redis is changing hands:
    the connection failed or timed out (the primary died, or the sentinels have no primary yet),
    the node is a replica now (READONLY: a demoted primary), or it refuses writes until its
    replicas are back in sync (NOREPLICAS). Only a write that is safe to run twice may be
    retried on the first two: its reply may have been lost after it ran."""
    return isinstance(
        exc, redis.ConnectionError | redis.TimeoutError | redis.exceptions.ReadOnlyError
    ) or refused_for_replicas(exc)
