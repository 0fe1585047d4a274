"""Options shared by the operator commands (connection settings with environment fallback)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from worker.settings import Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])


def _check_redis_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A URL Redis can connect to, else a usage error (exit 2) saying what is wrong."""
    if value is None:
        return None
    from redis.connection import parse_url  # on use only: `--help` stays fast

    try:
        parse_url(value)
    except ValueError as exc:
        # Name the problem, not the value: the URL may carry a password.
        raise click.BadParameter(
            "not a Redis URL (redis://[[user]:password@]host[:port][/db], rediss://... or "
            f"unix://...): {str(exc).split(' (')[0]}",
            ctx=ctx, param=param,
        ) from exc
    return value


def check_id_prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An `--id-prefix` the worker can take (worker.limits), else a usage error (exit 2)."""
    from worker.limits import MAX_ID_PREFIX_CHARS

    if len(value) > MAX_ID_PREFIX_CHARS:
        raise click.BadParameter(f"{len(value)} characters, at most {MAX_ID_PREFIX_CHARS}",
                                 ctx=ctx, param=param)
    return value


redis_url_option: Callable[[F], F] = click.option(
    "--redis-url",
    default=None,
    callback=_check_redis_url,
    help="Redis holding the ledger (default: JETTI_RELAY_REDIS_URL, else redis://127.0.0.1:6379/0).",
)


def settings_from_options(*, redis_url: str | None = None) -> Settings:
    """Settings from the environment, with command-line overrides applied to it for children too."""
    if redis_url:
        os.environ["JETTI_RELAY_REDIS_URL"] = redis_url
        get_settings.cache_clear()
    return get_settings()
