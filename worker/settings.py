"""Settings: the one reader of the environment (STYLE.md 7).

Every setting is read from an environment variable `JETTI_RELAY_<NAME>` (or a `.env` file in the
working directory), validated once, and handed to adapters as plain values. Secrets are
`SecretStr` so they never render in reprs, logs or errors; call `.get_secret_value()` only at the
one place that sends them (the Jetti client).

`get_settings()` (every process, through `load_settings`) also refuses mistakes before anything
starts: an unknown JETTI_RELAY_* name (with the closest known one), an alias (ENV_ALIASES) that
disagrees with its canonical name, or an invalid value, each as one line naming the variable.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.core.exit_codes import ExitCode
from worker.core.limits import (
    DEFAULT_BODY_TTL_S,
    DEFAULT_MAX_FUTURE_SKEW_S,
    DEFAULT_MAX_LINE_ITEMS,
    DEFAULT_RETRY_AFTER_MAX_S,
    DEFAULT_TOMBSTONE_TTL_S,
    MAX_KEYS_PER_MESSAGE,
)

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
# Deliveries started and never finished before an order is dead-lettered as worker_lost.
DEFAULT_MAX_UNFINISHED_DELIVERIES = 3
# Order keys per Celery message: one lock/begin script and one outcome script serve them all,
# and they are submitted concurrently (README, pipeline section: measured 10, 25, 50).
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

# Pools where Celery enforces no time limits and has no worker-loss handling.
UNSAFE_POOLS = frozenset({"threads", "solo"})
# Pools without a soft time limit (Celery raises none on green threads).
NO_SOFT_LIMIT_POOLS = frozenset({"gevent", "eventlet"})


class Settings(BaseSettings):
    """Every setting of jetti-relay, read from `JETTI_RELAY_*` variables or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    redis_url: str = Field(DEFAULT_REDIS_URL, description="Redis for the ledger, limiter, breaker")
    broker_url: str = Field("", description="Celery broker URL (default: redis_url)")
    redis_connect_timeout_s: float = Field(
        DEFAULT_REDIS_CONNECT_TIMEOUT_S, gt=0, description="Redis connect timeout"
    )
    redis_socket_timeout_s: float = Field(
        DEFAULT_REDIS_SOCKET_TIMEOUT_S, gt=0, description="Longest wait for a Redis reply"
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
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
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


def _plain_http_allowed(host: str | None) -> bool:
    if not host:
        return False
    if host in PLAIN_HTTP_HOSTS or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsError(ValueError):
    """The environment cannot configure the relay. `problems` holds one line per mistake, each
    naming the JETTI_RELAY_* variable (never its value: it may be a secret)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def env_name(field_name: str) -> str:
    """The environment variable of a Settings field: `webhook_hash` -> JETTI_RELAY_WEBHOOK_HASH."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def known_variables() -> frozenset[str]:
    """Every JETTI_RELAY_* name the relay accepts: one per Settings field (so a field added later
    is known at once), the aliases, and the variables read outside Settings."""
    return frozenset(
        {*(env_name(f) for f in Settings.model_fields), *ENV_ALIASES, *EXTERNAL_VARIABLES}
    )


@dataclass(frozen=True)
class EnvReading:
    """The JETTI_RELAY_* variables of the environment and the .env file (environment wins), as
    upper-case name -> value, with where each came from ("environment" or ".env")."""

    values: dict[str, str] = dataclass_field(default_factory=dict)
    origins: dict[str, str] = dataclass_field(default_factory=dict)

    def problems(self) -> list[str]:
        """Unknown names (with the closest known one) and aliases that disagree with the name
        they stand for; empty when the variables are consistent."""
        problems: list[str] = []
        known = sorted(known_variables())
        for name in sorted(self.values):
            if name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f": did you mean {close[0]}?" if close else " (see `jetti-relay config check`)"
            problems.append(f"unknown setting {name} ({self.origins[name]}){hint}")
        for alias, field_name in ENV_ALIASES.items():
            canonical = env_name(field_name)
            if (
                alias in self.values
                and canonical in self.values
                and self.values[alias].strip() != self.values[canonical].strip()
            ):
                problems.append(
                    f"{alias} and {canonical} are both set, to different values; "
                    f"keep one ({alias} is an alias of {canonical})"
                )
        return problems

    def alias_values(self) -> dict[str, str]:
        """Field name -> value for each alias set without its canonical name."""
        return {
            field_name: self.values[alias]
            for alias, field_name in ENV_ALIASES.items()
            if alias in self.values and env_name(field_name) not in self.values
        }

    def source_of(self, field_name: str) -> str:
        """Which variable set `field_name`, as "JETTI_RELAY_KEY_PREFIX (environment)", or
        "default"."""
        for name in (env_name(field_name), *(a for a, f in ENV_ALIASES.items() if f == field_name)):
            if name in self.values:
                return f"{name} ({self.origins[name]})"
        return "default"


def read_environment(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(ENV_FILE)
) -> EnvReading:
    """The JETTI_RELAY_* variables of `environ` (default: os.environ) and `env_file`."""
    reading = EnvReading()
    sources: list[tuple[str, Mapping[str, str | None]]] = []
    if env_file is not None and env_file.is_file():
        sources.append((ENV_FILE, dotenv_values(env_file)))
    sources.append(("environment", os.environ if environ is None else environ))
    for origin, variables in sources:
        for name, value in variables.items():
            # pydantic-settings matches names case-insensitively; so does this check.
            if name.upper().startswith(ENV_PREFIX) and value is not None:
                reading.values[name.upper()] = value
                reading.origins[name.upper()] = origin
    return reading


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per invalid setting, naming its variable; never the value (it may be secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc") or ()
        name = env_name(str(loc[0])) if loc else "settings"
        lines.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def load_settings() -> Settings:
    """Settings from the environment and .env, refusing mistakes before anything starts.

    Raises SettingsError for an unknown JETTI_RELAY_* variable, an alias that disagrees with its
    canonical name, or an invalid value. Aliases are applied below the canonical names.
    """
    reading = read_environment()
    problems = reading.problems()
    try:
        settings = Settings(**reading.alias_values())  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError([*problems, *describe_validation_error(exc)]) from exc
    if problems:
        raise SettingsError(problems)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once and cached (see load_settings)."""
    return load_settings()


def jetti_problems(settings: Settings) -> list[str]:
    """What a process that submits orders to Jetti lacks for `settings.jetti_mode`; empty when
    the secret (async) or token and channel (sync) are there."""
    if settings.jetti_mode == "async":
        if not settings.webhook_hash.get_secret_value().strip():
            return [
                f"{env_name('webhook_hash')} is empty; async mode sends it with every order "
                f"(alias {_alias_of('webhook_hash')})"
            ]
        return []
    problems = []
    if not settings.api_token.get_secret_value().strip():
        problems.append(
            f"{env_name('api_token')} is empty; sync mode sends it with every order "
            f"(alias {_alias_of('api_token')})"
        )
    if settings.channel_id is None:
        problems.append(
            f"{env_name('channel_id')} is not set; sync mode posts to the channel "
            f"(alias {_alias_of('channel_id')})"
        )
    return problems


def _alias_of(field_name: str) -> str:
    return next(a for a, f in ENV_ALIASES.items() if f == field_name)


def check_timeouts(settings: Settings, pool: str) -> list[str]:
    """Problems with the timeout chain for Celery `pool`; empty when safe to start.

    The chain HTTP timeouts < soft limit < hard limit < visibility timeout must hold so a slow
    request fails as an HTTP timeout, then a soft limit, then a kill, all before Redis redelivers
    the message. Each message names the JETTI_RELAY_* variables to change.
    """
    problems: list[str] = []
    pool = pool.lower()
    if pool in UNSAFE_POOLS:
        problems.append(
            f"the {pool} pool enforces no time limits and no worker-loss handling; "
            "run with --pool prefork"
        )
        return problems
    http_total = (
        settings.http_connect_timeout_s
        + settings.http_read_timeout_s
        + settings.http_write_timeout_s
        + settings.http_pool_timeout_s
    )
    if pool in NO_SOFT_LIMIT_POOLS:
        first_limit, first_name = settings.hard_time_limit_s, "HARD_TIME_LIMIT_S"
    else:
        first_limit, first_name = settings.soft_time_limit_s, "SOFT_TIME_LIMIT_S"
        if settings.soft_time_limit_s >= settings.hard_time_limit_s:
            problems.append(
                f"{ENV_PREFIX}SOFT_TIME_LIMIT_S ({settings.soft_time_limit_s:g}) must be below "
                f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({settings.hard_time_limit_s:g})"
            )
    if http_total >= first_limit:
        problems.append(
            f"the HTTP timeouts ({ENV_PREFIX}HTTP_*_TIMEOUT_S, {http_total:g} s in all) must sum "
            f"below {ENV_PREFIX}{first_name} ({first_limit:g})"
        )
    if settings.hard_time_limit_s >= settings.visibility_timeout_s:
        problems.append(
            f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({settings.hard_time_limit_s:g}) must be below "
            f"{ENV_PREFIX}VISIBILITY_TIMEOUT_S ({settings.visibility_timeout_s:g})"
        )
    # The order lock is never extended: a task still running when it expires would let a second
    # worker send the same order (reliability L7).
    if settings.lock_ttl_s <= settings.hard_time_limit_s:
        problems.append(
            f"{ENV_PREFIX}LOCK_TTL_S ({settings.lock_ttl_s:g}) must be above "
            f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({settings.hard_time_limit_s:g})"
        )
    return problems


def settings_table() -> str:
    """A Markdown table of every setting: name, environment variable, default, meaning."""
    rows = ["| Setting | Environment variable | Default | Meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(unset)" if not default.get_secret_value() else "(secret)"
        elif default is None or default == "":
            shown = "(unset)"
        else:
            shown = f"`{default}`"
        rows.append(f"| {name} | `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)
