"""Options shared by the operator commands (connection settings with environment fallback)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import click

from worker.core.exit_codes import ExitCode
from worker.settings import (
    Settings,
    SettingsError,
    get_settings,
    jetti_problems,
)

F = TypeVar("F", bound=Callable[..., Any])
# What the sandbox server needs (uvicorn[standard]: its event loop and HTTP parser).
SANDBOX_MODULES = ("uvicorn", "uvloop", "httptools")


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
            ctx=ctx,
            param=param,
        ) from exc
    return value


def check_id_prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An `--id-prefix` the worker can take (worker.core.limits), else a usage error (exit 2)."""
    from worker.core.limits import MAX_ID_PREFIX_CHARS

    if len(value) > MAX_ID_PREFIX_CHARS:
        raise click.BadParameter(
            f"{len(value)} characters, at most {MAX_ID_PREFIX_CHARS}", ctx=ctx, param=param
        )
    return value


redis_url_option: Callable[[F], F] = click.option(
    "--redis-url",
    default=None,
    callback=_check_redis_url,
    help="Redis holding the ledger (default: JETTI_RELAY_REDIS_URL, else redis://127.0.0.1:6379/0).",
)


def refuse_to_start(problems: Iterable[str]) -> NoReturn:
    """One stderr line per configuration problem, then exit 2, CONFIG (issue 12 point 8)."""
    for problem in problems:
        click.echo(f"jetti-relay: refusing to start: {problem}", err=True)
    raise SystemExit(ExitCode.CONFIG)


def settings_from_options(
    *, redis_url: str | None = None, log_level: str | None = None, sends_to_jetti: bool = False
) -> Settings:
    """Settings from the environment, with command-line overrides applied to it for children
    too, and this process's logging configured from them (every command calls this, so every
    process logs the same redacted way: reliability #6).

    Exits 2 (ExitCode.CONFIG) with one line per problem when the settings are wrong, or when
    `sends_to_jetti` and the Jetti secret of the mode is missing.
    """
    if redis_url:
        os.environ["JETTI_RELAY_REDIS_URL"] = redis_url
    if log_level:
        os.environ["JETTI_RELAY_LOG_LEVEL"] = log_level
    get_settings.cache_clear()
    try:
        settings = get_settings()
    except SettingsError as exc:
        refuse_to_start(exc.problems)
    if sends_to_jetti and (problems := jetti_problems(settings)):
        refuse_to_start(problems)
    from worker.tracing import tracing_problem

    if tracing_line := tracing_problem(settings.otlp_endpoint):  # the `tracing` extra missing
        refuse_to_start([tracing_line])
    from worker.logconfig import configure_logging  # on use only: `--help` stays fast

    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values)
    return settings


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require_extra(extra: str, *modules: str) -> None:
    """Exit 2 (MISSING_EXTRA) with an install hint, not a traceback, when a module of the
    optional dependency group `extra` (pyproject.toml [project.optional-dependencies]) is not
    installed; as httpx's CLI does for `httpx[cli]`."""
    missing = [module for module in modules if not _installed(module)]
    if not missing:
        return
    # The subcommand names below the root (none under `python -m ops.sandbox`).
    words: list[str] = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    # `./run jetti-relay <top-level command>` installs the extra that command needs.
    top = words[0] if words else extra
    click.echo(
        f"jetti-relay {' '.join(words) or extra} needs the optional '{extra}' dependencies "
        f"({', '.join(missing)} not installed): pip install 'jetti-relay[{extra}]', or in a "
        f"checkout run it as `./run jetti-relay {top} ...`, which installs them",
        err=True,
    )
    raise SystemExit(ExitCode.MISSING_EXTRA)
