"""Options shared by the operator commands: `--redis-url` is checked before any command runs."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ops.cli import main
from ops.options import redis_url_option


@click.command()
@redis_url_option
def _probe(redis_url: str | None) -> None:
    click.echo(f"url {redis_url}")


@pytest.mark.parametrize("url", ["foo", "http://127.0.0.1:7000/0", "redis://h:notaport/0"])
@pytest.mark.parametrize(
    "args",
    [
        ["dlq", "list"],
        ["dlq", "show", "k"],
        ["order", "show", "k"],
        ["reconcile", "status"],
        ["enqueue", "-"],
    ],
)
def test_a_malformed_redis_url_is_a_usage_error(args: list[str], url: str) -> None:
    """Every command taking `--redis-url` refuses a malformed one before touching Redis: exit 2,
    one line on stderr naming the option, no traceback."""
    result = CliRunner().invoke(main, [*args, "--redis-url", url], input="{}")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--redis-url" in result.stderr and "not a Redis URL" in result.stderr
    assert "Traceback" not in result.output


def test_a_good_redis_url_passes() -> None:
    """A well-formed URL reaches the command as given."""
    result = CliRunner().invoke(_probe, ["--redis-url", "redis://127.0.0.1:7000/2"])
    assert result.exit_code == 0 and "url redis://127.0.0.1:7000/2" in result.stdout
