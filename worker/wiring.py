"""Settings -> adapters: the clients and stores every process builds, in one place.

The composition root is this module and `worker.runtime`: they are the only code that maps
`Settings` onto constructors (STYLE.md 7 and 16). This half builds the adapters (Redis clients,
the Jetti client, the stores, the publisher) and imports no service, so producers and operator
commands use it without loading `worker.pipeline` or the worker's Celery app; `worker.runtime`
assembles the services over these adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import redis

from worker.broker import BrokerOptions, broker_kind
from worker.core.build import BuildOptions
from worker.core.keys import Keys
from worker.core.limits import HEARTBEAT_KEPT_S
from worker.core.policy import RetryPolicy
from worker.core.replication import ReplicationState
from worker.core.rules import Rules, load_rules
from worker.jetti.client import JettiClient
from worker.redisconn import SentinelTarget, require_supported, sentinel_clients
from worker.redisconn import redis_client as plain_redis_client
from worker.settings import Settings
from worker.settings.sentinels import parse_sentinels
from worker.store.audit import AuditLog
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.heartbeats import Heartbeats
from worker.store.intake import IntakeStream
from worker.store.ledger import Ledger
from worker.store.rate_limit import ApiThrottle, RateLimiter
from worker.store.reconcile_state import ReconcileState
from worker.store.replication_info import read_state
from worker.store.stats import Stats

if TYPE_CHECKING:  # Celery loads only when a command publishes (`publisher`)
    from worker.publisher import Publisher

# A breaker built only to read its state never probes; any positive value will do.
READ_ONLY_PROBE_S = 1.0


def sentinel_target(settings: Settings) -> SentinelTarget | None:
    """The sentinels that run the ledger's primary (`JETTI_RELAY_REDIS_SENTINELS`), or None."""
    if not settings.redis_sentinels:
        return None
    return SentinelTarget(
        tuple(parse_sentinels(settings.redis_sentinels)),
        settings.redis_sentinel_master,
        settings.redis_sentinel_password.get_secret_value(),
    )


def redis_client(settings: Settings, url: str | None = None) -> redis.Redis[bytes]:
    """A client on `url` (default: the ledger's Redis, through the sentinels when they are
    configured) with the settings' timeouts."""
    target = url or settings.redis_url
    return plain_redis_client(
        target,
        connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        sentinel=sentinel_target(settings) if target == settings.redis_url else None,
    )


def connect_supported(settings: Settings, url: str | None = None) -> redis.Redis[bytes]:
    """`redis_client(settings, url)` after `require_supported` passed on it: what every command
    that starts work on the ledger calls first. Raises RedisTooOld, or redis.ConnectionError /
    redis.TimeoutError when the server cannot be reached within the timeouts."""
    client = redis_client(settings, url)
    try:
        require_supported(client)
    except BaseException:
        client.close()
        raise
    return client


def replication_state(settings: Settings, client: redis.Redis[bytes]) -> ReplicationState:
    """What the primary (`client`, the ledger's) and the configured sentinels say about the
    replication now; reads only, within the settings' Redis timeouts per server."""
    target = sentinel_target(settings)
    sentinels = (
        []
        if target is None
        else sentinel_clients(
            target,
            connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
        )
    )
    try:
        return read_state(client, sentinels, settings.redis_sentinel_master)
    finally:
        for _, sentinel in sentinels:
            sentinel.close()


def keys(settings: Settings) -> Keys:
    """The key builder under the configured prefix (`JETTI_RELAY_KEY_PREFIX`)."""
    return Keys(settings.key_prefix)


def broker_client(settings: Settings, client: redis.Redis[bytes]) -> redis.Redis[bytes]:
    """A client on the broker's Redis: `client` itself when the broker is the ledger's server
    (the same URL, or the URL derived from the sentinels)."""
    if settings.broker_url == settings.redis_url or settings.broker_url.startswith("sentinel://"):
        return client
    return redis_client(settings, settings.broker_url)


def broker_options(settings: Settings) -> BrokerOptions:
    """The options of the broker `settings` configure. ValueError for an unsupported scheme."""
    kind = broker_kind(settings.broker_url)
    if kind is None:
        raise ValueError(
            "JETTI_RELAY_BROKER_URL must be redis://, rediss://, sentinel:// or amqp:// "
            f"(got {settings.broker_url.partition('://')[0] or 'no scheme'})"
        )
    return BrokerOptions(
        kind=kind,
        sentinel_master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password.get_secret_value(),
        delivery_limit=settings.broker_delivery_limit,
    )


def build_http_client(settings: Settings) -> httpx.Client:
    """An httpx.Client with the configured timeouts and a pool sized for the submit threads."""
    return httpx.Client(
        timeout=httpx.Timeout(
            connect=settings.http_connect_timeout_s,
            read=settings.http_read_timeout_s,
            write=settings.http_write_timeout_s,
            pool=settings.http_pool_timeout_s,
        ),
        limits=httpx.Limits(
            max_connections=settings.submit_concurrency * 2,
            max_keepalive_connections=settings.submit_concurrency,
        ),
    )


def build_jetti_client(settings: Settings, http: httpx.Client) -> JettiClient:
    """The Jetti client for `settings`, sending over `http`."""
    return JettiClient(
        http,
        mode=settings.jetti_mode,
        async_url=settings.jetti_async_url,
        api_url=settings.jetti_api_url,
        channel_id=settings.channel_id,
        webhook_hash=settings.webhook_hash.get_secret_value(),
        api_token=settings.api_token.get_secret_value(),
        retry_after_max_s=settings.retry_after_max_s,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy configured by `settings`."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        backoff_max_s=settings.backoff_max_s,
        retry_deadline_s=settings.retry_deadline_s,
        blocked_default_s=settings.blocked_default_s,
    )


def build_options(settings: Settings) -> BuildOptions:
    """The transform's knobs configured by `settings` (worker, reconciler and preview alike)."""
    return BuildOptions(
        max_units_per_line=settings.max_units_per_line,
        max_line_items=settings.max_line_items,
        auto_connect_default=settings.auto_connect_default,
    )


def rules(settings: Settings) -> Rules:
    """The routing and split rules of `JETTI_RELAY_RULES_FILE` (none: no rules)."""
    return load_rules(settings.rules_file) if settings.rules_file else Rules.empty()


def ledger(client: redis.Redis[bytes], keys: Keys, settings: Settings) -> Ledger:
    """The ledger with the configured body and tombstone retention."""
    return Ledger(
        client, keys, body_ttl_s=settings.body_ttl_s, tombstone_ttl_s=settings.tombstone_ttl_s
    )


def limiter(client: redis.Redis[bytes], keys: Keys, settings: Settings) -> RateLimiter:
    """The fleet's import limiter at the mode's effective rate and burst."""
    return RateLimiter(
        client,
        keys,
        rate_per_s=settings.effective_rate_per_s,
        burst=settings.effective_rate_burst,
    )


def api_throttle(
    client: redis.Redis[bytes], keys: Keys, settings: Settings, kind: str
) -> ApiThrottle:
    """The fleet's budget of sync-API calls of `kind` ("read" or "write")."""
    rate = settings.jetti_read_rate_per_s if kind == "read" else settings.jetti_write_rate_per_s
    return ApiThrottle(client, keys, kind=kind, rate_per_s=rate)


def breaker(client: redis.Redis[bytes], keys: Keys, settings: Settings) -> Breaker:
    """The fleet's circuit breaker with the configured probe interval."""
    return Breaker(client, keys, probe_s=settings.breaker_probe_s)


def heartbeats(client: redis.Redis[bytes], keys: Keys, *, holder: str) -> Heartbeats:
    """The heartbeats `holder` writes for the periodic roles it runs."""
    return Heartbeats(client, keys, holder=holder, kept_s=HEARTBEAT_KEPT_S)


def publisher(settings: Settings, *, batch_size: int | None = None) -> Publisher:
    """A publisher on the configured broker, `batch_size` keys a message (default: the
    configured batch size). Never loads the worker's Celery app."""
    from worker.publisher import Publisher

    return Publisher.from_broker_url(
        settings.broker_url,
        broker=broker_options(settings),
        batch_size=batch_size or settings.batch_size,
        connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        visibility_timeout_s=settings.visibility_timeout_s,
        queue=keys(settings).orders_queue(),
    )


@dataclass
class Stores:
    """The Redis-backed stores of one deployment, as the operator commands use them."""

    settings: Settings
    client: redis.Redis[bytes]
    keys: Keys
    ledger: Ledger
    dead: DeadLetters
    audit: AuditLog
    stats: Stats
    breaker: Breaker
    reconcile: ReconcileState
    intake: IntakeStream


def build_stores(settings: Settings, client: redis.Redis[bytes]) -> Stores:
    """Every store of the deployment `settings` describe, on `client`."""
    on = keys(settings)
    return Stores(
        settings=settings,
        client=client,
        keys=on,
        ledger=ledger(client, on, settings),
        dead=DeadLetters(client, on),
        audit=AuditLog(client, on),
        stats=Stats(client, on),
        # Commands read the breaker's state, never probe through it.
        breaker=Breaker(client, on, probe_s=READ_ONLY_PROBE_S),
        reconcile=ReconcileState(client, on),
        intake=IntakeStream(client, on),
    )


def connect_stores(settings: Settings) -> Stores:
    """`build_stores` on a client that passed the server-version check (`connect_supported`):
    raises RedisTooOld, or redis.ConnectionError / TimeoutError within the settings' timeouts."""
    return build_stores(settings, connect_supported(settings))
