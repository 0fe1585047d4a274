"""The `jetti-relay dlq` group: inspect, replay, export, purge and erase dead letters.

Every subcommand takes `--redis-url` (default: JETTI_RELAY_REDIS_URL) and has `--help` with
examples. Exit codes: `worker/core/exit_codes.py` (also printed under every command's help).
"""

from __future__ import annotations

import click

from ops.dlq.common import EXIT_CODES_HELP, StoreGroup
from ops.dlq.destructive import erase, export, purge
from ops.dlq.jobs_cli import jobs
from ops.dlq.replay import replay
from ops.dlq.views import audit, list_command, show, stats


@click.group(cls=StoreGroup, epilog=EXIT_CODES_HELP)
def dlq() -> None:
    """Dead letters: orders that could not go through, kept until an engineer acts.

    \b
    Typical session:
      jetti-relay dlq stats
      jetti-relay dlq list --reason rejected --since 24h
      jetti-relay dlq show shop-a:1001
      jetti-relay dlq replay --reason rejected --since 24h --dry-run
      jetti-relay dlq replay --reason rejected --since 24h --rate 5
      jetti-relay dlq replay --job --reason rejected --since 24h
      jetti-relay dlq jobs
      jetti-relay dlq audit
    """


for command in (list_command, stats, show, replay, jobs, export, purge, erase, audit):
    dlq.add_command(command)
