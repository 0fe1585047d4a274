"""Options shared by the operator commands (connection settings with environment fallback)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from worker.settings import Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])

redis_url_option: Callable[[F], F] = click.option(
    "--redis-url",
    default=None,
    help="Redis holding the ledger (default: JETTI_RELAY_REDIS_URL, else redis://127.0.0.1:6379/0).",
)


def settings_from_options(*, redis_url: str | None = None) -> Settings:
    """Settings from the environment, with command-line overrides applied to it for children too."""
    if redis_url:
        os.environ["JETTI_RELAY_REDIS_URL"] = redis_url
        get_settings.cache_clear()
    return get_settings()
