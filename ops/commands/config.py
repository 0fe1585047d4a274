"""`jetti-relay config check`: the effective settings, where each came from, and every mistake.

Prints each setting with its value (secrets and URL passwords masked) and the variable that set
it (`JETTI_RELAY_WEBHOOK_HASH (environment)`, an alias, `.env`, or `default`; an unset broker
URL says it is derived from JETTI_RELAY_REDIS_URL or, with sentinels, from
JETTI_RELAY_REDIS_SENTINELS: one `sentinel://` URL per sentinel), then every problem
a worker would refuse to start with: unknown JETTI_RELAY_* names, aliases that disagree, invalid
values, a missing Jetti secret for the mode, and a broken timeout chain.

Exit codes: 0 no problem; 2 at least one problem (one line each on stderr, or in `--json`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import orjson
from pydantic import SecretStr, ValidationError

from worker.core.exit_codes import ExitCode
from worker.settings import (
    EnvReading,
    Settings,
    SettingsError,
    check_timeouts,
    env_name,
    jetti_problems,
    load_settings,
    read_environment,
)

# Replaces a secret (and a password inside a URL) in the output.
MASK = "***"
# Settings whose value is a URL that may carry a password.
_URL_FIELDS = frozenset({"redis_url", "broker_url"})


def shown(name: str, value: Any) -> str | int | float | bool | None:
    """A setting's value as printed: secrets masked, passwords in URLs masked, paths as text."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else None
    if name in _URL_FIELDS and isinstance(value, str):
        # A broker behind Sentinel is one URL per sentinel, `;`-separated, each with a password.
        return ";".join(_mask_password(url) for url in value.split(";"))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}{MASK}@{host}"))


def _source(reading: EnvReading, settings: Settings, name: str) -> str:
    """Where a setting came from; a broker URL left unset says what it was derived from."""
    source = reading.source_of(name)
    if name == "broker_url" and source == "default":
        derived = "REDIS_SENTINELS" if settings.redis_sentinels else "REDIS_URL"
        return f"derived from JETTI_RELAY_{derived}"
    return source


@click.group()
def config() -> None:
    """Configuration: check the JETTI_RELAY_* variables before starting anything."""


@config.command(epilog="Exit codes: 0 no problem; 2 at least one problem.")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
@click.option(
    "--pool",
    default="prefork",
    show_default=True,
    help="Celery pool the worker will run (the timeout chain depends on it).",
)
def check(as_json: bool, pool: str) -> None:
    """Print the effective settings (secrets masked) and every problem; exit 2 on any."""
    reading = read_environment()
    problems: list[str] = []
    try:
        settings: Settings | None = load_settings()
    except SettingsError as exc:
        problems += exc.problems
        try:  # still show what the valid variables give
            settings = Settings(**reading.alias_values())  # type: ignore[arg-type]
        except ValidationError:
            settings = None
    if settings is not None:
        problems += jetti_problems(settings) + check_timeouts(settings, pool)
    rows = (
        []
        if settings is None
        else [
            (name, shown(name, getattr(settings, name)), _source(reading, settings, name))
            for name in Settings.model_fields
        ]
    )
    if as_json:
        doc = {
            "ok": not problems,
            "problems": problems,
            "settings": {
                name: {"value": value, "variable": env_name(name), "source": source}
                for name, value, source in rows
            },
        }
        click.echo(orjson.dumps(doc).decode())
    else:
        width = max((len(name) for name, _, _ in rows), default=0)
        for name, value, source in rows:
            text = "(unset)" if value is None else str(value)
            click.echo(f"{name:<{width}}  {text}  [{source}]")
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo(f"{len(problems)} problem(s)" if problems else "configuration OK")
    raise SystemExit(ExitCode.CONFIG if problems else ExitCode.OK)
