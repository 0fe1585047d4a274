"""The `jetti-relay` command.

The root group imports each subcommand's module only when that subcommand runs, so that
`jetti-relay preview` never imports Celery or Redis and starts fast.
"""

from __future__ import annotations

import importlib

import click

# Subcommand name -> "module:attribute". One line per subcommand; the module is imported lazily.
LAZY_SUBCOMMANDS: dict[str, str] = {
    "preview": "ops.preview_cli:preview",
    "schema": "ops.preview_cli:schema",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attribute = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=LAZY_SUBCOMMANDS)
@click.version_option(package_name="jetti-relay")
def main() -> None:
    """jetti-relay: import orders into Jetti (Onport), reliably and fast."""
