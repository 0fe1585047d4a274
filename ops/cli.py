"""The `jetti-relay` command.

The root group imports each subcommand's module only when that subcommand runs (its one-line
help for `--help` lives here), so `jetti-relay preview` never imports Celery or Redis and starts
fast.
"""

from __future__ import annotations

import importlib

import click

from worker.core.exit_codes import table as exit_code_table

# Subcommand name -> ("module:attribute", one-line help). One line per subcommand.
LAZY_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "preview": ("ops.commands.preview:preview", "Print the Jetti payloads the worker would send."),
    "schema": ("ops.commands.preview:schema", "Print the raw-order contract as JSON Schema."),
    "worker": (
        "ops.commands.worker:worker",
        "Start a Celery worker with the retry pump and sweeper.",
    ),
    "demo": (
        "ops.demo.cli:demo",
        "Run the whole pipeline on embedded defaults with sample orders.",
    ),
    "bench": (
        "ops.bench.cli:bench",
        "Benchmark the pipeline (default) or one part of it.",
    ),
    "pump": (
        "ops.commands.worker:pump",
        "Run only the retry pump and the sweeper (leader-elected).",
    ),
    "sandbox": ("ops.sandbox.cli:sandbox", "Run a local Jetti with fault injection."),
    "pause": ("ops.commands.fleet:pause", "Pause submission to Jetti for the whole fleet."),
    "resume": (
        "ops.commands.fleet:resume",
        "Resume submission after a pause or a tripped breaker.",
    ),
    "enqueue": (
        "ops.commands.enqueue:enqueue",
        "Validate raw orders and enqueue them for the worker.",
    ),
    "intake": (
        "ops.commands.intake:intake",
        "Take orders from the Redis Stream intake (and over HTTP with --http).",
    ),
    "reconcile": ("ops.commands.reconcile:reconcile", "Reconciler: status, or one pass now."),
    "chaos": ("ops.chaos.cli:chaos", "Break the pipeline on purpose and check nothing is lost."),
    "dlq": ("ops.dlq.cli:dlq", "Dead letters: list, show, replay, export, purge, erase, audit."),
    "order": (
        "ops.commands.order:order",
        "Where is order X (show); retry it now or discard it.",
    ),
    "orders": ("ops.commands.orders:orders", "Find orders by state, key prefix and time."),
    "reindex": ("ops.commands.reindex:reindex", "Add older orders to the order search indexes."),
    "metrics": (
        "ops.commands.metrics:metrics",
        "Serve Prometheus metrics (backlog, dead letters...).",
    ),
    "health": ("ops.commands.health:health", "Check Redis, workers, pump, breaker and backlog."),
    "migrate-keys": ("ops.commands.migrate:migrate_keys", "Move Redis keys to the encoded names."),
    "console": ("ops.console.cli:console", "Serve the operator console (web pages and JSON API)."),
    "config": ("ops.commands.config:config", "Check the JETTI_RELAY_* settings (secrets masked)."),
    "notify": ("ops.notify.cli:notify", "Run the alert notifier alone (leader-elected)."),
    "alerts": ("ops.notify.cli:alerts", "Alerts: list, ack, silence, unsilence."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            target = self._lazy[cmd_name][0]
            module_name, attribute = target.split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every subcommand (and with them Celery and Redis).
        rows = [(name, self._lazy[name][1]) for name in sorted(self._lazy)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# `\b` keeps click from rewrapping the table.
EPILOG = "\b\nExit codes (the same numbers in every command):\n" + exit_code_table()


@click.group(cls=LazyGroup, lazy=LAZY_SUBCOMMANDS, epilog=EPILOG)
@click.version_option(package_name="jetti-relay")
def main() -> None:
    """jetti-relay: import orders into Jetti (Onport), reliably and fast."""


if __name__ == "__main__":
    main()
