"""`Settings`: every setting of the relay as one validated, frozen pydantic model.

Secrets are `SecretStr` so they never render in reprs, logs or errors; call `.get_secret_value()`
only at the one place that sends them (the Jetti client).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.broker import broker_kind, supported_schemes
from worker.core.limits import (
    DEFAULT_BODY_TTL_S,
    DEFAULT_MAX_FUTURE_SKEW_S,
    DEFAULT_MAX_LINE_ITEMS,
    DEFAULT_RETRY_AFTER_MAX_S,
    DEFAULT_TOMBSTONE_TTL_S,
    MAX_KEYS_PER_MESSAGE,
)
from worker.settings.defaults import (
    DEFAULT_ALERT_DEAD_LETTERS_PER_HOUR,
    DEFAULT_ALERT_OLDEST_PENDING_S,
    DEFAULT_ALERT_RECONCILER_LAG_S,
    DEFAULT_ALERT_REPEAT_S,
    DEFAULT_ALLOW_LINE_CHANGES,
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BLOCKED_DEFAULT_S,
    DEFAULT_BREAKER_PROBE_S,
    DEFAULT_BROKER_CONSUMER_TIMEOUT_S,
    DEFAULT_BROKER_DELIVERY_LIMIT,
    DEFAULT_CONSOLE_HOST,
    DEFAULT_CONSOLE_PORT,
    DEFAULT_CONSOLE_SESSION_TTL_S,
    DEFAULT_FAILOVER_RETRY_S,
    DEFAULT_HARD_TIME_LIMIT_S,
    DEFAULT_HTTP_CONNECT_TIMEOUT_S,
    DEFAULT_HTTP_POOL_TIMEOUT_S,
    DEFAULT_HTTP_READ_TIMEOUT_S,
    DEFAULT_HTTP_WRITE_TIMEOUT_S,
    DEFAULT_INTAKE_BATCH_SIZE,
    DEFAULT_INTAKE_HOST,
    DEFAULT_INTAKE_MAX_BODY_BYTES,
    DEFAULT_INTAKE_MAX_DELIVERIES,
    DEFAULT_INTAKE_MEMORY_LIMIT,
    DEFAULT_INTAKE_PORT,
    DEFAULT_INTAKE_RECLAIM_IDLE_S,
    DEFAULT_INTAKE_REJECTS_MAX,
    DEFAULT_JETTI_API_URL,
    DEFAULT_JETTI_ASYNC_URL,
    DEFAULT_JETTI_MODE,
    DEFAULT_JETTI_READ_RATE_PER_S,
    DEFAULT_JETTI_WRITE_RATE_PER_S,
    DEFAULT_KEY_PREFIX,
    DEFAULT_LOCK_TTL_S,
    DEFAULT_LOG_FORMAT,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_TOKEN_WAIT_S,
    DEFAULT_MAX_UNFINISHED_DELIVERIES,
    DEFAULT_MAX_UNITS_PER_LINE,
    DEFAULT_MIN_REPLICAS_ACK,
    DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S,
    DEFAULT_NOTIFY_INTERVAL_S,
    DEFAULT_PREFETCH_MULTIPLIER,
    DEFAULT_PUMP_INTERVAL_S,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_S,
    DEFAULT_RECONCILE_GRACE_S,
    DEFAULT_RECONCILE_INTERVAL_S,
    DEFAULT_REDIS_CONNECT_TIMEOUT_S,
    DEFAULT_REDIS_SOCKET_TIMEOUT_S,
    DEFAULT_REDIS_URL,
    DEFAULT_REPLAY_BACKLOG_LIMIT,
    DEFAULT_REPLAY_RATE_SHARE,
    DEFAULT_RETRY_DEADLINE_S,
    DEFAULT_SENTINEL_MASTER,
    DEFAULT_SOFT_TIME_LIMIT_S,
    DEFAULT_STUCK_AFTER_S,
    DEFAULT_SUBMIT_CONCURRENCY,
    DEFAULT_SWEEP_INTERVAL_S,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    DEFAULT_WORKER_CONCURRENCY,
    ENV_PREFIX,
    LOG_LEVELS,
    PLAIN_HTTP_HOSTS,
    SYNC_RATE_BURST,
    SYNC_RATE_PER_S,
)
from worker.settings.sentinels import parse_sentinels, sentinel_broker_url


class Settings(BaseSettings):
    """Every setting of jetti-relay, read from `JETTI_RELAY_*` variables or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str = Field(DEFAULT_REDIS_URL, description="Redis for the ledger, limiter, breaker")
    broker_url: str = Field("", description="Celery broker URL (default: redis_url)")
    redis_connect_timeout_s: float = Field(
        DEFAULT_REDIS_CONNECT_TIMEOUT_S,
        gt=0,
        description="Redis and broker connect timeout (RabbitMQ's handshake included)",
    )
    redis_socket_timeout_s: float = Field(
        DEFAULT_REDIS_SOCKET_TIMEOUT_S,
        gt=0,
        description="Longest wait for a Redis reply, or a publisher's read or write on RabbitMQ",
    )
    key_prefix: str = Field(DEFAULT_KEY_PREFIX, description="Prefix of every Redis key")
    jetti_mode: Literal["async", "sync"] = Field(
        DEFAULT_JETTI_MODE, description="async webhook (hash) or sync API (bearer token)"
    )
    jetti_async_url: str = Field(DEFAULT_JETTI_ASYNC_URL, description="Async import endpoint")
    jetti_api_url: str = Field(DEFAULT_JETTI_API_URL, description="Jetti API root (sync mode)")
    webhook_hash: SecretStr = Field(SecretStr(""), description="Secret for the async endpoint")
    api_token: SecretStr = Field(SecretStr(""), description="Bearer token for the sync API")
    channel_id: int | None = Field(None, description="Jetti channel id (sync mode)")
    rules_file: Path | None = Field(None, description="TOML routing/split rules")
    max_units_per_line: int = Field(
        DEFAULT_MAX_UNITS_PER_LINE, gt=0, description="Largest quantity a split line may have"
    )
    # Amplification cap (reliability #12): the default lives in worker/core/limits.py.
    max_line_items: int = Field(
        DEFAULT_MAX_LINE_ITEMS, gt=0, description="Most line items one order may become"
    )
    auto_connect_default: bool | None = Field(
        None, description="Default of options.findOrCreateChannelVariant (unset: omit it)"
    )
    allow_line_changes: bool = Field(
        DEFAULT_ALLOW_LINE_CHANGES, description="Send updates that drop/rename sent lines"
    )
    # Producers refuse an updated_at further ahead than this: it would freeze the order.
    max_future_skew_s: float = Field(
        DEFAULT_MAX_FUTURE_SKEW_S, gt=0, description="Largest updated_at ahead of the clock"
    )
    http_connect_timeout_s: float = Field(
        DEFAULT_HTTP_CONNECT_TIMEOUT_S, gt=0, description="HTTP connect timeout"
    )
    http_read_timeout_s: float = Field(
        DEFAULT_HTTP_READ_TIMEOUT_S, gt=0, description="HTTP read timeout"
    )
    http_write_timeout_s: float = Field(
        DEFAULT_HTTP_WRITE_TIMEOUT_S, gt=0, description="HTTP write timeout"
    )
    http_pool_timeout_s: float = Field(
        DEFAULT_HTTP_POOL_TIMEOUT_S, gt=0, description="Wait for a pooled connection"
    )
    soft_time_limit_s: float = Field(
        DEFAULT_SOFT_TIME_LIMIT_S, gt=0, description="Celery soft time limit per task"
    )
    hard_time_limit_s: float = Field(
        DEFAULT_HARD_TIME_LIMIT_S, gt=0, description="Celery hard time limit per task"
    )
    visibility_timeout_s: float = Field(
        DEFAULT_VISIBILITY_TIMEOUT_S, gt=0, description="Redis broker visibility timeout"
    )
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, gt=0, description="Attempts before dead letter")
    backoff_base_s: float = Field(DEFAULT_BACKOFF_BASE_S, gt=0, description="First backoff cap")
    backoff_max_s: float = Field(DEFAULT_BACKOFF_MAX_S, gt=0, description="Largest backoff")
    retry_deadline_s: float = Field(
        DEFAULT_RETRY_DEADLINE_S, gt=0, description="Give up this long after the first failure"
    )
    rate_per_s: float | None = Field(
        None, gt=0, description="Fleet submissions per second (default: 10 async, 1 sync)"
    )
    rate_burst: int | None = Field(
        None, gt=0, description="Token bucket size (default: 20 async, 1 sync)"
    )
    max_token_wait_s: float = Field(
        DEFAULT_MAX_TOKEN_WAIT_S, ge=0, description="Longest wait for a token before rescheduling"
    )
    blocked_default_s: float = Field(
        DEFAULT_BLOCKED_DEFAULT_S, gt=0, description="Fleet pause after a 429 without Retry-After"
    )
    # Larger values are clamped and inf/NaN/garbage ignored: a proxy's absurd header must not
    # pause the fleet for a year (reliability #8).
    retry_after_max_s: float = Field(
        DEFAULT_RETRY_AFTER_MAX_S,
        gt=0,
        allow_inf_nan=False,
        description="Longest Retry-After obeyed (longer: clamped, counted)",
    )
    lock_ttl_s: float = Field(DEFAULT_LOCK_TTL_S, gt=0, description="Per-order lock lifetime")
    failover_retry_s: float = Field(
        DEFAULT_FAILOVER_RETRY_S,
        ge=0,
        description="How long a batch's claim and last write are retried through a Redis"
        " failover (connection lost, READONLY, NOREPLICAS); 0: not retried",
    )
    max_unfinished_deliveries: int = Field(
        DEFAULT_MAX_UNFINISHED_DELIVERIES, gt=0, description="Crash loops before worker_lost"
    )
    batch_size: int = Field(
        DEFAULT_BATCH_SIZE, gt=0, description="Order keys per message (at most 1000)"
    )
    submit_concurrency: int = Field(
        DEFAULT_SUBMIT_CONCURRENCY, gt=0, description="In-flight submissions per process"
    )
    worker_concurrency: int | None = Field(
        DEFAULT_WORKER_CONCURRENCY, gt=0, description="Worker processes (default: CPU count)"
    )
    prefetch_multiplier: int = Field(
        DEFAULT_PREFETCH_MULTIPLIER, gt=0, description="Celery prefetch multiplier"
    )
    pump_interval_s: float = Field(DEFAULT_PUMP_INTERVAL_S, gt=0, description="Pump period")
    sweep_interval_s: float = Field(DEFAULT_SWEEP_INTERVAL_S, gt=0, description="Sweeper period")
    stuck_after_s: float = Field(
        DEFAULT_STUCK_AFTER_S, gt=0, description="Age at which a working order is re-published"
    )
    body_ttl_s: float = Field(DEFAULT_BODY_TTL_S, gt=0, description="Settled body lifetime")
    tombstone_ttl_s: float = Field(DEFAULT_TOMBSTONE_TTL_S, gt=0, description="Tombstone lifetime")
    breaker_probe_s: float = Field(
        DEFAULT_BREAKER_PROBE_S, gt=0, description="Open breaker lets a probe through after this"
    )
    reconcile_enabled: bool = Field(
        True, description="Run the reconciler (only when api_token is set)"
    )
    reconcile_interval_s: float = Field(
        DEFAULT_RECONCILE_INTERVAL_S, gt=0, description="Reconciler period"
    )
    reconcile_grace_s: float = Field(
        DEFAULT_RECONCILE_GRACE_S,
        gt=0,
        description="No import-log error this long after sending: confirmed",
    )
    jetti_read_rate_per_s: float = Field(
        DEFAULT_JETTI_READ_RATE_PER_S, gt=0, description="Fleet sync-API reads per second"
    )
    jetti_write_rate_per_s: float = Field(
        DEFAULT_JETTI_WRITE_RATE_PER_S,
        gt=0,
        description="Fleet sync-API writes per second (cancellations)",
    )
    log_format: Literal["json", "console"] = Field(DEFAULT_LOG_FORMAT, description="Log renderer")
    log_level: str = Field(DEFAULT_LOG_LEVEL, description="Log level name")
    ready_file: Path | None = Field(
        None, description="File the worker writes once it consumes (a readiness probe)"
    )
    intake_host: str = Field(DEFAULT_INTAKE_HOST, description="HTTP intake listen address")
    intake_port: int = Field(DEFAULT_INTAKE_PORT, gt=0, lt=65536, description="HTTP intake port")
    intake_token: SecretStr = Field(SecretStr(""), description="Bearer token of the HTTP intake")
    intake_hmac_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of signed HTTP intake bodies"
    )
    intake_credentials_file: Path | None = Field(
        None, description="TOML per-source HTTP intake credentials (docs/intake.md)"
    )
    intake_max_body_bytes: int = Field(
        DEFAULT_INTAKE_MAX_BODY_BYTES, gt=0, description="Largest HTTP intake body (413 above)"
    )
    intake_batch_size: int = Field(
        DEFAULT_INTAKE_BATCH_SIZE, gt=0, description="Stream entries the intake reads at once"
    )
    intake_reclaim_idle_s: float = Field(
        DEFAULT_INTAKE_RECLAIM_IDLE_S,
        gt=0,
        description="Pending stream entry idle this long: reclaimed",
    )
    intake_max_deliveries: int = Field(
        DEFAULT_INTAKE_MAX_DELIVERIES,
        gt=0,
        description="Reads of a stream entry before it is rejected",
    )
    intake_rejects_max: int = Field(
        DEFAULT_INTAKE_REJECTS_MAX, gt=0, description="Entries the intake rejects stream keeps"
    )
    intake_memory_limit: float = Field(
        DEFAULT_INTAKE_MEMORY_LIMIT,
        gt=0,
        le=1,
        description="Redis used/maxmemory above which HTTP intake answers 503",
    )

    redis_sentinels: str = Field(
        "",
        description="Sentinels as host:port,host:port: the ledger and a Redis broker follow "
        "failovers (REDIS_URL then gives only the database and the data nodes' password)",
    )
    redis_sentinel_master: str = Field(
        DEFAULT_SENTINEL_MASTER, min_length=1, description="Master name the sentinels monitor"
    )
    redis_sentinel_password: SecretStr = Field(
        SecretStr(""), description="Password of the sentinels themselves"
    )
    min_replicas_ack: int = Field(
        DEFAULT_MIN_REPLICAS_ACK,
        ge=0,
        description="Replicas that must hold an order before upstream is told it is accepted",
    )
    min_replicas_ack_timeout_s: float = Field(
        DEFAULT_MIN_REPLICAS_ACK_TIMEOUT_S,
        gt=0,
        description="How long to wait for them before 'replication unconfirmed: send again'",
    )
    broker_delivery_limit: int = Field(
        DEFAULT_BROKER_DELIVERY_LIMIT, gt=0, description="RabbitMQ quorum queue x-delivery-limit"
    )
    broker_consumer_timeout_s: float = Field(
        DEFAULT_BROKER_CONSUMER_TIMEOUT_S,
        gt=0,
        description="RabbitMQ consumer_timeout the broker runs with (above the hard limit)",
    )
    # --- operator console, replay jobs, notifications, traces (docs/settings.md) ----------
    console_host: str = Field(DEFAULT_CONSOLE_HOST, description="Console listen address")
    console_port: int = Field(DEFAULT_CONSOLE_PORT, ge=1, le=65535, description="Console port")
    console_token: SecretStr = Field(
        SecretStr(""), description="Token of the console's one operator (user `operator`)"
    )
    console_users: SecretStr = Field(
        SecretStr(""),
        description="Named console users as name:role:token,... (role: read-only or operator)",
    )
    console_session_secret: SecretStr = Field(
        SecretStr(""),
        description="Key signing console session cookies (unset: a new one per start)",
    )
    console_session_ttl_s: float = Field(
        DEFAULT_CONSOLE_SESSION_TTL_S, gt=0, description="Console session lifetime"
    )
    replay_rate_share: float = Field(
        DEFAULT_REPLAY_RATE_SHARE,
        gt=0,
        le=1,
        description="Share of JETTI_RELAY_RATE_PER_S a bulk replay job may use",
    )
    replay_backlog_limit: int = Field(
        DEFAULT_REPLAY_BACKLOG_LIMIT,
        ge=0,
        description="A replay job waits while more orders than this are pending (0: never)",
    )
    notify_webhook_url: SecretStr = Field(
        SecretStr(""), description="Generic JSON webhook that receives alerts"
    )
    notify_slack_url: SecretStr = Field(
        SecretStr(""), description="Slack incoming-webhook URL that receives alerts"
    )
    notify_interval_s: float = Field(
        DEFAULT_NOTIFY_INTERVAL_S, gt=0, description="How often the notifier checks"
    )
    alert_repeat_s: float = Field(
        DEFAULT_ALERT_REPEAT_S, gt=0, description="An alert that holds is sent again after this"
    )
    alert_dead_letters_per_hour: int = Field(
        DEFAULT_ALERT_DEAD_LETTERS_PER_HOUR,
        ge=1,
        description="Dead letters in the last hour that raise an alert",
    )
    alert_oldest_pending_s: float = Field(
        DEFAULT_ALERT_OLDEST_PENDING_S,
        gt=0,
        description="Age of the oldest unsettled order that raises an alert",
    )
    alert_reconciler_lag_s: float = Field(
        DEFAULT_ALERT_RECONCILER_LAG_S,
        gt=0,
        description="Reconciler lag behind Jetti's import log that raises an alert",
    )
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint (e.g. http://collector:4318); unset: off"
    )

    @field_validator("broker_url")
    @classmethod
    def _supported_broker(cls, url: str) -> str:
        # Refused here, not when Celery first connects: kombu would accept e.g. sqs:// or
        # memory:// and the relay's quorum-queue, confirm and timeout guarantees would not hold.
        url = url.strip()
        if url and broker_kind(url) is None:
            scheme = url.partition("://")[0] if "://" in url else "no scheme"
            raise ValueError(
                f"unsupported broker scheme ({scheme}); use one of {supported_schemes()} "
                "(empty: the ledger's Redis)"
            )
        return url

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: str) -> str:
        parse_sentinels(value)  # raises ValueError naming the bad entry
        return value.strip()

    @field_validator("batch_size")
    @classmethod
    def _batch_fits_a_message(cls, value: int) -> int:
        # The worker refuses a message with more keys (reliability #9): refuse the setting here.
        if value > MAX_KEYS_PER_MESSAGE:
            raise ValueError(
                f"JETTI_RELAY_BATCH_SIZE is {value}; at most {MAX_KEYS_PER_MESSAGE} order keys fit "
                "in one message (worker.core.limits.MAX_KEYS_PER_MESSAGE)"
            )
        return value

    @field_validator("jetti_async_url", "jetti_api_url")
    @classmethod
    def _https_only(cls, url: str) -> str:
        # The hash or token travels with every request (reliability L2).
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and _plain_http_allowed(parts.hostname):
            return url
        raise ValueError(
            "must be an https:// URL (http:// only for localhost, loopback or the sandbox)"
        )

    @field_validator("jetti_api_url")
    @classmethod
    def _api_root(cls, url: str) -> str:
        # The client appends /api itself; the sandbox and Jetti's docs print the root with it.
        root = url.rstrip("/")
        return root[: -len("/api")].rstrip("/") if root.endswith("/api") else root

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        if level.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level.strip().upper()

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        # Frozen model: derived defaults are written once here, before anyone reads them.
        if self.min_replicas_ack and self.min_replicas_ack_timeout_s >= self.redis_socket_timeout_s:
            # WAIT would outlast the socket: a slow replica would read as Redis unreachable.
            raise ValueError(
                f"JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S ({self.min_replicas_ack_timeout_s:g}) "
                "must be below JETTI_RELAY_REDIS_SOCKET_TIMEOUT_S "
                f"({self.redis_socket_timeout_s:g})"
            )
        if not self.broker_url:
            # Through the sentinels when they are configured, so the broker follows failovers.
            broker = (
                sentinel_broker_url(parse_sentinels(self.redis_sentinels), self.redis_url)
                if self.redis_sentinels
                else self.redis_url
            )
            object.__setattr__(self, "broker_url", broker)
        sync = self.jetti_mode == "sync"
        if self.rate_per_s is None:
            object.__setattr__(self, "rate_per_s", SYNC_RATE_PER_S if sync else DEFAULT_RATE_PER_S)
        if self.rate_burst is None:
            object.__setattr__(self, "rate_burst", SYNC_RATE_BURST if sync else DEFAULT_RATE_BURST)
        return self

    @property
    def effective_rate_per_s(self) -> float:
        """Fleet tokens per second after the mode default applied (never None)."""
        return self.rate_per_s or DEFAULT_RATE_PER_S

    @property
    def reconcile_active(self) -> bool:
        """The reconciler runs: enabled and a Bearer token to read Jetti's import log with."""
        return self.reconcile_enabled and bool(self.api_token.get_secret_value())

    @property
    def effective_rate_burst(self) -> int:
        """Token bucket size after the mode default applied (never None)."""
        return self.rate_burst or DEFAULT_RATE_BURST

    @property
    def http_total_s(self) -> float:
        """The longest one HTTP exchange may take: the four httpx timeouts added up (what
        `check_timeouts` holds below the soft time limit, and the reconciler's tolerance)."""
        return (
            self.http_connect_timeout_s
            + self.http_read_timeout_s
            + self.http_write_timeout_s
            + self.http_pool_timeout_s
        )

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secrets' plain values (webhook hash, API token, intake token and HMAC key, the
        sentinels' password, the console's tokens and session key, the notification webhook
        URLs), for the log redaction only."""
        users = self.console_users.get_secret_value()
        # Each named console user's token (name:role:token), besides the whole setting.
        tokens = tuple(e.rsplit(":", 1)[-1].strip() for e in users.split(",") if ":" in e)
        return tokens + tuple(
            secret.get_secret_value()
            for secret in (
                self.webhook_hash,
                self.api_token,
                self.intake_token,
                self.intake_hmac_secret,
                self.redis_sentinel_password,
                self.console_token,
                self.console_users,
                self.console_session_secret,
                self.notify_webhook_url,
                self.notify_slack_url,
            )
        )


def _plain_http_allowed(host: str | None) -> bool:
    if not host:
        return False
    if host in PLAIN_HTTP_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_name(field_name: str) -> str:
    """The environment variable of a Settings field: `webhook_hash` -> JETTI_RELAY_WEBHOOK_HASH."""
    return f"{ENV_PREFIX}{field_name.upper()}"
