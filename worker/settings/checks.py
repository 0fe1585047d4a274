"""Checks of a valid `Settings` against what a process is about to do, and the settings table.

`jetti_problems` (a process that submits needs its credentials), `check_timeouts` (the timeout
chain of a Celery pool), and `settings_table` (the Markdown table docs/settings.md holds).
"""

from __future__ import annotations

from pydantic import SecretStr

from worker.broker import broker_kind
from worker.settings.defaults import ENV_ALIASES, ENV_PREFIX, NO_SOFT_LIMIT_POOLS, UNSAFE_POOLS
from worker.settings.model import Settings, env_name


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

    The chain HTTP timeouts < soft limit < hard limit < broker redelivery (the visibility
    timeout on a Redis broker, RabbitMQ's consumer timeout on amqp) must hold so a slow request
    fails as an HTTP timeout, then a soft limit, then a kill, all before the broker redelivers
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
    http_total = settings.http_total_s
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
    problems.extend(_broker_timeout_problems(settings))
    # The order lock is never extended: a task still running when it expires would let a second
    # worker send the same order (reliability L7).
    if settings.lock_ttl_s <= settings.hard_time_limit_s:
        problems.append(
            f"{ENV_PREFIX}LOCK_TTL_S ({settings.lock_ttl_s:g}) must be above "
            f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({settings.hard_time_limit_s:g})"
        )
    return problems


def _broker_timeout_problems(settings: Settings) -> list[str]:
    """The hard time limit against the broker's own redelivery timer.

    Redis brokers (kombu's Redis transport, also through Sentinel) redeliver a message still
    unacknowledged after `visibility_timeout_s`; RabbitMQ has no visibility timeout and instead
    closes the channel of a consumer holding a delivery past its `consumer_timeout`
    (`broker_consumer_timeout_s` states what the broker runs with), which requeues the message.
    Either way a task still running then is sent a second time by another worker: the hard
    limit must end it first. Each check applies to its broker only, so a RabbitMQ deployment is
    not refused for a visibility timeout nothing uses.
    """
    hard = settings.hard_time_limit_s
    if broker_kind(settings.broker_url) == "amqp":
        if hard >= settings.broker_consumer_timeout_s:
            return [
                f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({hard:g}) must be below "
                f"{ENV_PREFIX}BROKER_CONSUMER_TIMEOUT_S ({settings.broker_consumer_timeout_s:g}), "
                "RabbitMQ's consumer_timeout"
            ]
        return []
    if hard >= settings.visibility_timeout_s:
        return [
            f"{ENV_PREFIX}HARD_TIME_LIMIT_S ({hard:g}) must be below "
            f"{ENV_PREFIX}VISIBILITY_TIMEOUT_S ({settings.visibility_timeout_s:g})"
        ]
    return []


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
