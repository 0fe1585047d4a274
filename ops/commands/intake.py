"""`jetti-relay intake`: feed orders from any language, by Redis Stream and (with --http) HTTP.

The stream intake reads `<prefix>:intake` in one consumer group (`producers.stream`); start as
many as you like, each entry is read by one. `--http` also serves `POST /v1/orders` in this
process (`producers.http`). Both validate, record and publish through the producer library's
one code path (`producers.enqueue`), and acknowledge only after the ledger holds the order.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType

import click

from ops.options import redis_url_option, refuse_to_start, require_extra, settings_from_options

HTTP_MODULES = ("starlette", "uvicorn")


def default_consumer() -> str:
    """This process's name in the consumer group: host and pid, unique on a fleet."""
    return f"{socket.gethostname()}-{os.getpid()}"


@click.command()
@redis_url_option
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="Read the intake stream (<key prefix>:intake).",
)
@click.option("--http", "http", is_flag=True, help="Also serve POST /v1/orders (HTTP intake).")
@click.option(
    "--host",
    default=None,
    help="HTTP intake interface (default: JETTI_RELAY_INTAKE_HOST, loopback).",
)
@click.option(
    "--port", type=int, default=None, help="HTTP intake port (default: JETTI_RELAY_INTAKE_PORT)."
)
@click.option(
    "--consumer",
    default=None,
    help="Name in the stream's consumer group (default: HOST-PID).",
)
def intake(
    redis_url: str | None,
    stream: bool,
    http: bool,
    host: str | None,
    port: int | None,
    consumer: str | None,
) -> None:
    """Take orders from the Redis Stream intake and, with --http, over HTTP.

    Runs until SIGTERM or SIGINT. Exits 2 with one line per problem when the settings are
    wrong, or when --http is asked without any credential configured; 78 when Redis is older
    than supported.
    """
    if not stream and not http:
        refuse_to_start(["nothing to run: --no-stream without --http"])
    if http:
        require_extra("intake", *HTTP_MODULES)
    settings = settings_from_options(redis_url=redis_url)
    app = None
    if http:
        from producers.http import IntakeConfigError, build_http_app

        try:  # before the stream reader starts: a refusal leaves nothing running
            app = build_http_app(settings)
        except IntakeConfigError as exc:
            refuse_to_start(exc.problems)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    reader: threading.Thread | None = None
    if stream:
        from ops.commands.worker import refuse_unsupported_redis
        from producers.stream import start_stream_intake

        refuse_unsupported_redis(settings)
        reader = start_stream_intake(settings, consumer=consumer or default_consumer(), stop=stop)
    if app is not None:
        from producers.http import serve_app

        # uvicorn installs its own SIGTERM/SIGINT handlers and returns when one arrives.
        serve_app(app, host=host or settings.intake_host, port=port or settings.intake_port)
        stop.set()
    else:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(0.5):
            if reader is not None and not reader.is_alive():
                break
    if reader is not None:
        reader.join(timeout=10)
