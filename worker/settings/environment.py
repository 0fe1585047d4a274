"""Reading the environment and `.env`, refusing mistakes before anything starts.

An unknown JETTI_RELAY_* name (with the closest known one), an alias (ENV_ALIASES) that disagrees
with its canonical name, or an invalid value each become one line naming the variable, never its
value (it may be a secret); `load_settings` raises them together as `SettingsError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values
from pydantic import ValidationError

from worker.settings.defaults import (
    CHILD_RESTART_VARIABLE,
    ENV_ALIASES,
    ENV_FILE,
    ENV_PREFIX,
    EXTERNAL_VARIABLES,
)
from worker.settings.model import Settings, env_name


class SettingsError(ValueError):
    """The environment cannot configure the relay. `problems` holds one line per mistake, each
    naming the JETTI_RELAY_* variable (never its value: it may be a secret)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


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


def child_restart(environ: Mapping[str, str] | None = None) -> int:
    """Which restart of `jetti-relay worker`'s Celery child this process is, from
    CHILD_RESTART_VARIABLE in `environ` (default: os.environ): 1 for the first restart, 0 for
    the first child or a Celery worker started any other way (also for a value that is not a
    positive whole number: only the parent writes it)."""
    value = (os.environ if environ is None else environ).get(CHILD_RESTART_VARIABLE, "")
    return int(value) if value.isdigit() else 0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once and cached (see load_settings)."""
    return load_settings()
