"""`jetti-relay metrics`: serve the relay's Prometheus metrics over HTTP (`GET /metrics`).

One exporter per deployment is enough: every figure is fleet-wide and read from Redis at scrape
time, so the exporter keeps no state and any number of them agree. It runs until SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal; 2 usage error (bad option, port in use); 4 the Redis is older
than the oldest supported (an unreachable Redis is not refused: it is exported as redis_up 0).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
import structlog

from ops.options import redis_url_option, settings_from_options
from worker.core.exit_codes import ExitCode

# Next to the exporters Prometheus lists (9100 node, 9121 redis); free in a default install.
DEFAULT_PORT = 9808
# As for every operator command: Redis unusable (here: older than supported).
# Loopback unless asked: the metrics reveal business volumes.
DEFAULT_HOST = "127.0.0.1"


@click.command()
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (0.0.0.0 in a container).",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port for GET /metrics.",
)
@redis_url_option
def metrics(host: str, port: int, redis_url: str | None) -> None:
    """Serve Prometheus metrics: backlog, retries, dead letters, outcomes, latency, breaker."""
    from ops.options import require_extra

    require_extra("monitoring", "prometheus_client")
    import redis
    from prometheus_client import start_http_server

    from ops.monitoring.metrics import Sources, build_registry
    from worker.logconfig import configure_logging
    from worker.redisconn import RedisTooOld, require_supported

    settings = settings_from_options(redis_url=redis_url)
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values)
    log = structlog.get_logger("jetti_relay.metrics")
    sources = Sources.from_settings(settings)
    try:
        require_supported(sources.client)
    except RedisTooOld as exc:
        click.echo(f"jetti-relay: refusing to start: {exc}", err=True)
        raise SystemExit(ExitCode.REDIS_UNREACHABLE) from exc
    except redis.RedisError:
        pass  # exported as jetti_relay_redis_up 0 until Redis answers
    registry = build_registry(sources)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound_port = server.server_address[1]
    log.info("metrics_serving", host=host, port=bound_port, path="/metrics")
    click.echo(f"serving http://{host}:{bound_port}/metrics", err=True)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    log.info("metrics_stopped")
