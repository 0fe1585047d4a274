"""Settings: the one reader of the environment (STYLE.md 7).

Every setting is read from an environment variable `JETTI_RELAY_<NAME>` (or a `.env` file in the
working directory), validated once, and handed to adapters as plain values. Secrets are
`SecretStr` so they never render in reprs, logs or errors; call `.get_secret_value()` only at the
one place that sends them (the Jetti client).

`get_settings()` (every process, through `load_settings`) also refuses mistakes before anything
starts: an unknown JETTI_RELAY_* name (with the closest known one), an alias (ENV_ALIASES) that
disagrees with its canonical name, or an invalid value, each as one line naming the variable.
"""

from worker.settings.checks import check_timeouts, jetti_problems, settings_table
from worker.settings.defaults import *  # noqa: F403
from worker.settings.defaults import __all__ as _defaults
from worker.settings.environment import (
    EnvReading,
    SettingsError,
    child_restart,
    describe_validation_error,
    get_settings,
    known_variables,
    load_settings,
    read_environment,
)
from worker.settings.model import Settings, env_name

__all__ = [
    *_defaults,
    "EnvReading",
    "Settings",
    "SettingsError",
    "check_timeouts",
    "child_restart",
    "describe_validation_error",
    "env_name",
    "get_settings",
    "jetti_problems",
    "known_variables",
    "load_settings",
    "read_environment",
    "settings_table",
]
