"""Fleet-wide throttles for Jetti's synchronous API: one Redis token bucket per kind of call.

Jetti documents 2 GET and 1 non-GET per second per token on the sync API (facts §1). The
reconciler's import-log pages and sale lookups share the `read` bucket; cancellations (in async
mode) take the `write` bucket. Each is the fleet limiter's Lua bucket under its own key, so every
worker and every reconciler host share one budget, and a 429 blocks only that kind of call.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from worker.core.keys import Keys
from worker.store.rate_limit import RateLimiter


class ApiThrottle(RateLimiter):
    """A token bucket for one kind (`read` or `write`) of sync-API call, shared by the fleet.

    `burst` defaults to 1: calls are spaced evenly, never bunched into one of Jetti's windows.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        keys: Keys,
        *,
        kind: str,
        rate_per_s: float,
        burst: int = 1,
    ) -> None:
        super().__init__(
            client,
            keys,
            rate_per_s=rate_per_s,
            burst=burst,
            bucket_key=keys.api_bucket(kind),
            blocked_key=keys.api_blocked_until(kind),
        )
        self.kind = kind

    def wait(self, sleep: Callable[[float], None], *, max_wait_s: float | None = None) -> bool:
        """Sleep until a token is taken; False (untaken) when that would exceed `max_wait_s`."""
        waited = 0.0
        while True:
            wait_s = self.acquire()
            if wait_s <= 0:
                return True
            if max_wait_s is not None and waited + wait_s > max_wait_s:
                return False
            sleep(wait_s)
            waited += wait_s
