"""`jetti-relay console [--host H] [--port P]`: serve the operator console;
`jetti-relay console screenshots --out DIR`: a PNG of each page over a seeded throwaway Redis.

The console refuses to start (exit 2, one line naming the variable) without a token
(`JETTI_RELAY_CONSOLE_TOKEN` or `JETTI_RELAY_CONSOLE_USERS`) or with a malformed users entry,
and warns when it listens beyond the loopback interface: the pages show orders and the actions
change them, so put TLS in front of it there (the session cookie is `Secure` over https).

Exit codes: 0 stopped; 2 misconfigured (or the `console` extra missing); 4 Redis unreachable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click
import structlog

from ops.options import redis_url_option, refuse_to_start, require_extra, settings_from_options

CONSOLE_MODULES = ("starlette", "jinja2", "uvicorn", "multipart")

log = structlog.get_logger("jetti_relay.console")


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Listen address [default: JETTI_RELAY_CONSOLE_HOST].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: CONSOLE_PORT]")
@redis_url_option
@click.pass_context
def console(ctx: click.Context, host: str | None, port: int | None, redis_url: str | None) -> None:
    """Serve the operator console: overview, orders, retries and backlog, dead letters (with
    edit-and-replay) and alerts, each page with a JSON twin under /api/ (docs/console.md).

    \b
    Examples:
      JETTI_RELAY_CONSOLE_TOKEN=... jetti-relay console --port 8090
      jetti-relay console screenshots --out docs/console
    """
    if ctx.invoked_subcommand is not None:
        return
    require_extra("console", *CONSOLE_MODULES)
    import uvicorn

    from ops.console.app import build_app
    from ops.console.auth import Authenticator, ConsoleConfigError, parse_users
    from ops.monitoring.sources import Sources

    settings = settings_from_options(redis_url=redis_url)
    try:
        users = parse_users(
            settings.console_token.get_secret_value(), settings.console_users.get_secret_value()
        )
    except ConsoleConfigError as exc:
        refuse_to_start([str(exc)])
    auth = Authenticator(
        users,
        session_key=settings.console_session_secret.get_secret_value().encode(),
        session_ttl_s=settings.console_session_ttl_s,
    )
    host = host or settings.console_host
    port = port or settings.console_port
    if not is_loopback(host):
        click.echo(
            f"jetti-relay: warning: the console listens on {host}, beyond this machine: "
            "serve it behind TLS and keep its tokens secret",
            err=True,
        )
        log.warning("console_not_loopback", host=host)
    app = build_app(Sources.from_settings(settings), auth)
    log.info("console_starting", host=host, port=port, users=len(users))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # Our logging (worker.logconfig) only: no uvicorn handlers, no access log of tokens.
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
    log.info("console_stopped", host=host, port=port)


@console.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PNGs (created).",
)
@click.option("--orders", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option("--dead", type=click.IntRange(min=1), default=200, show_default=True)
def screenshots(out: Path, orders: int, dead: int) -> None:
    """A PNG of each page, taken by headless chromium over a throwaway Redis seeded with
    `--orders` orders and `--dead` dead letters (needs Debian's chromium and chromium-driver,
    and selenium from the `test` extra)."""
    require_extra("console", *CONSOLE_MODULES)
    require_extra("test", "selenium")
    from ops.console.shots import take_screenshots

    written = take_screenshots(out, orders=orders, dead=dead)
    for path in written:
        click.echo(str(path))
    click.echo(f"{len(written)} screenshots in {out}", err=True)
