"""Every default and fixed name of the settings, each with its unit and intent.

`worker.settings.model.Settings` takes its defaults from here; the producers and tools that need a
default without a `Settings` (the key prefix, the Redis timeouts) import it from here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from worker.core.exit_codes import ExitCode

ENV_PREFIX = "JETTI_RELAY_"
# The file read besides the environment (relative to the working directory, as pydantic reads it).
ENV_FILE = ".env"
# Names the pipeline issue promised, accepted as aliases of today's names (issue 12 point 8).
# Setting both spellings to different values is refused.
ENV_ALIASES: Mapping[str, str] = {
    "JETTI_RELAY_JETTI_WEBHOOK_HASH": "webhook_hash",
    "JETTI_RELAY_JETTI_API_TOKEN": "api_token",
    "JETTI_RELAY_JETTI_CHANNEL_ID": "channel_id",
    "JETTI_RELAY_RATE_LIMIT_PER_S": "rate_per_s",
}
# The one list of JETTI_RELAY_* variables read outside Settings, with their reader; every other
# unknown JETTI_RELAY_* variable stops the start (tests/unit/test_settings_env.py greps the repo).
EXTERNAL_VARIABLES: Mapping[str, str] = {
    "JETTI_RELAY_VENV": "./run and .ci/run: the virtual environment to use",
    "JETTI_RELAY_BENCH_BROKER_URL": "ops/bench/naive.py: the naive baseline's broker",
    "JETTI_RELAY_BENCH_TARGET_URL": "ops/bench/naive.py: the naive baseline's Jetti URL",
    "JETTI_RELAY_BENCH_WEBHOOK_HASH": "ops/bench/naive.py: the naive baseline's hash",
    "JETTI_RELAY_BENCH_READY_FILE": "ops/bench/naive.py: the naive baseline's readiness file",
}
# Set by `jetti-relay worker` in the environment of a Celery child it starts again, to the
# restart's number (1 for the first restart): a restarted child rides a replication outage out
# instead of refusing to start (worker/startup_replication.py). Not JETTI_RELAY_*: no operator
# sets it, and the unknown-setting check would refuse it.
CHILD_RESTART_VARIABLE = "JR_WORKER_CHILD_RESTART"
# Hosts a Jetti URL may reach over plain http: this machine, and the compose sandbox service.
PLAIN_HTTP_HOSTS = frozenset({"localhost", "sandbox"})
# Exit codes of a refusal to start (worker/core/exit_codes.py), shared by every process: a config
# mistake (the same code as click's usage error), and a Redis older than supported (EX_CONFIG).
EXIT_CONFIG = ExitCode.CONFIG
EXIT_OLD_REDIS = ExitCode.REDIS_TOO_OLD
# Log level names the stdlib knows (JETTI_RELAY_LOG_LEVEL and `worker --loglevel`).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Local Redis, database 0: what a developer machine and the test fixtures run.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Connecting to Redis takes well under this; past it the call fails instead of hanging.
DEFAULT_REDIS_CONNECT_TIMEOUT_S = 5.0
# Longest wait for any Redis reply (the longest ledger script runs in milliseconds). No relay
# call blocks server-side (no BLPOP, no WAIT), so this bounds every call, the pump's included.
DEFAULT_REDIS_SOCKET_TIMEOUT_S = 10.0
# Every Redis key starts with this, so several deployments can share one Redis.
DEFAULT_KEY_PREFIX = "jr"
# The async webhook is Jetti's documented bulk-import path (DESIGN.md §2).
DEFAULT_JETTI_MODE: Literal["async", "sync"] = "async"
# Jetti's documented async import endpoint.
DEFAULT_JETTI_ASYNC_URL = "https://inbound.jetti.io/webhooks/custom-channels/manual-sale.json"
# Jetti's documented API root for the sync endpoint.
DEFAULT_JETTI_API_URL = "https://api.jetti.io"
# Guards against a typo'd quantity producing thousands of split lines.
DEFAULT_MAX_UNITS_PER_LINE = 1000
# Updates that drop or rename a line already sent are held for review (DESIGN.md principle 3).
DEFAULT_ALLOW_LINE_CHANGES = False
# Establishing a TCP+TLS connection to Jetti should take well under this.
DEFAULT_HTTP_CONNECT_TIMEOUT_S = 5.0
# Longest wait for Jetti's answer once the request is sent.
DEFAULT_HTTP_READ_TIMEOUT_S = 30.0
# Longest wait to send the body.
DEFAULT_HTTP_WRITE_TIMEOUT_S = 10.0
# Longest wait for a free keep-alive connection from the pool.
DEFAULT_HTTP_POOL_TIMEOUT_S = 5.0
# Above the sum of the HTTP timeouts, so a slow request fails as an HTTP timeout first.
DEFAULT_SOFT_TIME_LIMIT_S = 120.0
# Celery kills the task this long after start; above the soft limit.
DEFAULT_HARD_TIME_LIMIT_S = 150.0
# Minutes, not Redis's 1 h default: a lost message comes back soon; above the hard limit.
DEFAULT_VISIBILITY_TIMEOUT_S = 300.0
# Attempts (429s and lock waits excluded) before an order is dead-lettered.
DEFAULT_MAX_ATTEMPTS = 10
# First retry waits up to this (full jitter doubles the cap each attempt).
DEFAULT_BACKOFF_BASE_S = 2.0
# No single retry waits longer than this.
DEFAULT_BACKOFF_MAX_S = 600.0
# An order failing for longer than this since its first failure is dead-lettered.
DEFAULT_RETRY_DEADLINE_S = 6 * 3600.0
# Async endpoint: Jetti documents no throttle for it; a modest fleet-wide rate.
DEFAULT_RATE_PER_S = 10.0
# Async endpoint: tokens that may be spent at once after an idle spell.
DEFAULT_RATE_BURST = 20
# Sync endpoint: Jetti documents 1 write per second (429 over it).
SYNC_RATE_PER_S = 1.0
# Sync endpoint: no burst over the documented write throttle.
SYNC_RATE_BURST = 1
# A task waits at most this long for a token, else it reschedules the order.
DEFAULT_MAX_TOKEN_WAIT_S = 2.0
# Fleet pause after a 429 without Retry-After (Jetti does not document the header).
DEFAULT_BLOCKED_DEFAULT_S = 30.0
# Per-order lock lifetime; above the hard time limit so a live task never loses its lock.
DEFAULT_LOCK_TTL_S = 180.0
# How long a batch's claim and last write ride out a Redis failover (worker/pipeline/processor.py):
# a Sentinel failover with the compose profile's 5 s down-after time several times over, and
# inside the 30 s between the default soft and hard time limits.
DEFAULT_FAILOVER_RETRY_S = 20.0
# Deliveries started and never finished before an order is dead-lettered as worker_lost.
DEFAULT_MAX_UNFINISHED_DELIVERIES = 3
# Order keys per Celery message: one lock/begin script and one outcome script serve them all,
# and they are submitted concurrently (docs/benchmark.md: measured 10, 25, 50).
DEFAULT_BATCH_SIZE = 25
# In-flight submissions per worker process; at least the batch size, so a message's orders all
# go out at once (a 50 ms Jetti then costs one wave per message, not several).
DEFAULT_SUBMIT_CONCURRENCY = 25
# Prefork processes per worker; None lets Celery use the CPU count.
DEFAULT_WORKER_CONCURRENCY: int | None = None
# One message reserved per process: acks_late with a low prefetch (DESIGN.md principle 4).
DEFAULT_PREFETCH_MULTIPLIER = 1
# How often the pump moves due retries back onto the queue.
DEFAULT_PUMP_INTERVAL_S = 1.0
# How often the sweeper looks for stuck orders.
DEFAULT_SWEEP_INTERVAL_S = 60.0
# An order in a working state longer than this is re-published by the sweeper.
DEFAULT_STUCK_AFTER_S = 900.0
# Retention of settled bodies and of tombstones: one constant each, in worker/core/limits.py.
# An open breaker lets one probe through after this long.
DEFAULT_BREAKER_PROBE_S = 300.0
# The reconciler reads Jetti's import log this often (when an API token is set).
DEFAULT_RECONCILE_INTERVAL_S = 30.0
# An accepted import with no error in Jetti's log this long after it was sent is confirmed.
DEFAULT_RECONCILE_GRACE_S = 300.0
# Below Jetti's documented 2 GET/s, so network jitter never lands three reads in one window.
DEFAULT_JETTI_READ_RATE_PER_S = 1.8
# Jetti documents 1 non-GET/s on the sync API (cancellations in async mode use their own bucket).
DEFAULT_JETTI_WRITE_RATE_PER_S = 1.0
# JSON lines for machines; "console" for people.
DEFAULT_LOG_FORMAT: Literal["json", "console"] = "json"
# Standard logging level name.
DEFAULT_LOG_LEVEL = "INFO"

# The HTTP intake listens on loopback unless told otherwise (it accepts orders).
DEFAULT_INTAKE_HOST = "127.0.0.1"
DEFAULT_INTAKE_PORT = 8090
# Largest HTTP intake request body (an NDJSON batch); larger answers 413.
DEFAULT_INTAKE_MAX_BODY_BYTES = 8 * 1024 * 1024
# Stream entries one intake read takes (XREADGROUP COUNT): one ledger pipeline per read.
DEFAULT_INTAKE_BATCH_SIZE = 500
# A stream entry pending this long (its consumer died) is claimed by another consumer.
DEFAULT_INTAKE_RECLAIM_IDLE_S = 60.0
# A stream entry read this many times without being acknowledged goes to the rejects stream.
DEFAULT_INTAKE_MAX_DELIVERIES = 5
# Entries the rejects stream keeps; older ones are trimmed (an alert fires before it fills).
DEFAULT_INTAKE_REJECTS_MAX = 100_000
# Redis used_memory / maxmemory above which the HTTP intake answers 503 instead of writing.
DEFAULT_INTAKE_MEMORY_LIMIT = 0.95

# High availability (docs/high-availability.md). The master name Sentinel's own examples use.
DEFAULT_SENTINEL_MASTER = "mymaster"
# Replicas that must hold an order before it is acknowledged to upstream (0: the primary alone).
DEFAULT_MIN_REPLICAS_ACK = 0
# How long WAIT waits for them before answering "recorded on the primary, replication
# unconfirmed" (a replica on the same network acknowledges in about a millisecond).
DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S = 1.0
# RabbitMQ quorum queue `x-delivery-limit`: deliveries of one message before the broker drops
# it. Above the ledger's crash-loop bound (max_unfinished_deliveries), which acts first; a
# message the broker drops is re-published by the sweeper.
DEFAULT_BROKER_DELIVERY_LIMIT = 20
# Operator console and notifications (docs/settings.md). The console listens on loopback unless
# told otherwise; a session cookie lasts a working day.
DEFAULT_CONSOLE_HOST = "127.0.0.1"
DEFAULT_CONSOLE_PORT = 8642
DEFAULT_CONSOLE_SESSION_TTL_S = 12 * 3600.0
# A bulk replay job re-arms dead letters at most at this share of the fleet's submit rate
# (JETTI_RELAY_RATE_PER_S), so new orders keep the rest; and it waits while more than
# DEFAULT_REPLAY_BACKLOG_LIMIT orders are pending.
DEFAULT_REPLAY_RATE_SHARE = 0.25
DEFAULT_REPLAY_BACKLOG_LIMIT = 200
# The notifier checks every this many seconds; an alert that holds is sent again after
# DEFAULT_ALERT_REPEAT_S.
DEFAULT_NOTIFY_INTERVAL_S = 15.0
DEFAULT_ALERT_REPEAT_S = 3600.0
# Alert thresholds: dead letters in the last hour, the oldest pending order's age, the
# reconciler's lag behind Jetti's import log.
DEFAULT_ALERT_DEAD_LETTERS_PER_HOUR = 50
DEFAULT_ALERT_OLDEST_PENDING_S = 900.0
DEFAULT_ALERT_RECONCILER_LAG_S = 1800.0
# RabbitMQ's `consumer_timeout` (its default, 30 min): a delivery unacknowledged this long
# closes the channel and is redelivered. The hard time limit must stay below it.
DEFAULT_BROKER_CONSUMER_TIMEOUT_S = 1800.0

# Pools where Celery enforces no time limits and has no worker-loss handling.
UNSAFE_POOLS = frozenset({"threads", "solo"})
# Pools without a soft time limit (Celery raises none on green threads).
NO_SOFT_LIMIT_POOLS = frozenset({"gevent", "eventlet"})

__all__ = [
    "CHILD_RESTART_VARIABLE",
    "DEFAULT_ALERT_DEAD_LETTERS_PER_HOUR",
    "DEFAULT_ALERT_OLDEST_PENDING_S",
    "DEFAULT_ALERT_RECONCILER_LAG_S",
    "DEFAULT_ALERT_REPEAT_S",
    "DEFAULT_ALLOW_LINE_CHANGES",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BLOCKED_DEFAULT_S",
    "DEFAULT_BREAKER_PROBE_S",
    "DEFAULT_BROKER_CONSUMER_TIMEOUT_S",
    "DEFAULT_BROKER_DELIVERY_LIMIT",
    "DEFAULT_CONSOLE_HOST",
    "DEFAULT_CONSOLE_PORT",
    "DEFAULT_CONSOLE_SESSION_TTL_S",
    "DEFAULT_FAILOVER_RETRY_S",
    "DEFAULT_HARD_TIME_LIMIT_S",
    "DEFAULT_HTTP_CONNECT_TIMEOUT_S",
    "DEFAULT_HTTP_POOL_TIMEOUT_S",
    "DEFAULT_HTTP_READ_TIMEOUT_S",
    "DEFAULT_HTTP_WRITE_TIMEOUT_S",
    "DEFAULT_INTAKE_BATCH_SIZE",
    "DEFAULT_INTAKE_HOST",
    "DEFAULT_INTAKE_MAX_BODY_BYTES",
    "DEFAULT_INTAKE_MAX_DELIVERIES",
    "DEFAULT_INTAKE_MEMORY_LIMIT",
    "DEFAULT_INTAKE_PORT",
    "DEFAULT_INTAKE_RECLAIM_IDLE_S",
    "DEFAULT_INTAKE_REJECTS_MAX",
    "DEFAULT_JETTI_API_URL",
    "DEFAULT_JETTI_ASYNC_URL",
    "DEFAULT_JETTI_MODE",
    "DEFAULT_JETTI_READ_RATE_PER_S",
    "DEFAULT_JETTI_WRITE_RATE_PER_S",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_LOCK_TTL_S",
    "DEFAULT_LOG_FORMAT",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_TOKEN_WAIT_S",
    "DEFAULT_MAX_UNFINISHED_DELIVERIES",
    "DEFAULT_MAX_UNITS_PER_LINE",
    "DEFAULT_MIN_REPLICAS_ACK",
    "DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S",
    "DEFAULT_NOTIFY_INTERVAL_S",
    "DEFAULT_PREFETCH_MULTIPLIER",
    "DEFAULT_PUMP_INTERVAL_S",
    "DEFAULT_RATE_BURST",
    "DEFAULT_RATE_PER_S",
    "DEFAULT_RECONCILE_GRACE_S",
    "DEFAULT_RECONCILE_INTERVAL_S",
    "DEFAULT_REDIS_CONNECT_TIMEOUT_S",
    "DEFAULT_REDIS_SOCKET_TIMEOUT_S",
    "DEFAULT_REDIS_URL",
    "DEFAULT_REPLAY_BACKLOG_LIMIT",
    "DEFAULT_REPLAY_RATE_SHARE",
    "DEFAULT_RETRY_DEADLINE_S",
    "DEFAULT_SENTINEL_MASTER",
    "DEFAULT_SOFT_TIME_LIMIT_S",
    "DEFAULT_STUCK_AFTER_S",
    "DEFAULT_SUBMIT_CONCURRENCY",
    "DEFAULT_SWEEP_INTERVAL_S",
    "DEFAULT_VISIBILITY_TIMEOUT_S",
    "DEFAULT_WORKER_CONCURRENCY",
    "ENV_ALIASES",
    "ENV_FILE",
    "ENV_PREFIX",
    "EXIT_CONFIG",
    "EXIT_OLD_REDIS",
    "EXTERNAL_VARIABLES",
    "LOG_LEVELS",
    "NO_SOFT_LIMIT_POOLS",
    "PLAIN_HTTP_HOSTS",
    "SYNC_RATE_BURST",
    "SYNC_RATE_PER_S",
    "UNSAFE_POOLS",
]
