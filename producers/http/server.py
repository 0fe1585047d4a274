"""Settings -> the HTTP intake, and uvicorn serving it: the HTTP intake's composition root.

`build_http_app(settings)` is the one place its objects are built from Settings (through
`producers.connect` and `worker.wiring`, as every producer does); the other modules receive
plain values. `serve_http` runs it under uvicorn in this thread until SIGTERM or SIGINT;
`start_http_intake` runs it on a background thread of this process (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import structlog
import uvicorn
from starlette.types import ASGIApp

from producers.connect import connect
from producers.enqueue import Candidate, EnqueueSummary, OnResult, enqueue_candidates
from producers.http.app import IntakeServices, build_app
from producers.http.auth import Authenticator, Credential, IntakeConfigError, load_credentials
from producers.http.auth import secrets_of as credential_secrets
from producers.http.lookup import order_status
from producers.http.openapi import openapi_document
from producers.http.writer import DEFAULT_GROUP_MAX_ORDERS, GroupCommitWriter, MemoryGuard
from worker.core.rules import RulesError
from worker.logconfig import register_secrets
from worker.settings import Settings
from worker.store.dead_reads import DeadLetterReads
from worker.wiring import ledger

log = structlog.get_logger("jetti_relay.intake.http")

# Requests still in flight when a stop is asked get this long to finish before uvicorn cancels
# them (their orders are then either in the ledger or not acknowledged: never half).
GRACEFUL_SHUTDOWN_S = 10.0
# How long `start_http_intake` waits for the server to listen.
START_TIMEOUT_S = 30.0


def check_http_settings(settings: Settings) -> list[Credential]:
    """The credentials the intake would accept: raises IntakeConfigError (one line per
    problem) for bad or missing ones. Every credential secret is registered for log redaction.
    (`build_http_app` runs this and the rules-file check; call it alone to check only.)"""
    credentials = load_credentials(
        token=settings.intake_token.get_secret_value(),
        hmac_secret=settings.intake_hmac_secret.get_secret_value(),
        file=settings.intake_credentials_file,
    )
    register_secrets(*credential_secrets(credentials))
    return credentials


def build_http_app(settings: Settings) -> ASGIApp:
    """The HTTP intake's ASGI app for `settings` (the writer thread starts with the app's
    lifespan; nothing connects before that). Raises IntakeConfigError for bad or missing
    credentials (`check_http_settings`) and an unreadable rules file."""
    credentials = check_http_settings(settings)
    try:
        # The producer library's line-item check reads the worker's rules: a file the worker
        # cannot read either is a start-up error, not a weaker check at the edge.
        relay = connect(settings)
    except RulesError as exc:
        raise IntakeConfigError([f"JETTI_RELAY_RULES_FILE: {exc}"]) from exc
    client = relay.client

    def enqueue(candidates: list[Candidate], on_result: OnResult) -> EnqueueSummary:
        return enqueue_candidates(
            candidates,
            client=client,
            publisher=relay.publisher,
            keys=relay.keys,
            rules=relay.rules,
            max_future_skew_s=settings.max_future_skew_s,
            max_line_items=settings.max_line_items,
            chunk_size=DEFAULT_GROUP_MAX_ORDERS,
            on_result=on_result,
            min_replicas_ack=relay.min_replicas_ack,
            min_replicas_ack_timeout_s=relay.min_replicas_ack_timeout_s,
        )

    writer = GroupCommitWriter(
        enqueue,
        guard=MemoryGuard(client, limit=settings.intake_memory_limit),
        max_orders=DEFAULT_GROUP_MAX_ORDERS,
    )
    services = IntakeServices(
        authenticator=Authenticator(credentials),
        writer=writer,
        read_order=functools.partial(
            order_status,
            ledger(client, relay.keys, settings),
            DeadLetterReads(client, relay.keys),
        ),
        ping=client.ping,
        max_body_bytes=settings.intake_max_body_bytes,
        openapi=openapi_document(),
        close=relay.close,
    )
    return build_app(services)


def _uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    # uvicorn[standard]'s C parser and event loop when installed (the `intake` extra has them).
    has = importlib.util.find_spec
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools" if has("httptools") else "h11",
        loop="uvloop" if has("uvloop") else "asyncio",
        lifespan="on",
        # Our logging (worker.logconfig) and our access log (producers.http.access) only.
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
    )


class _Server(uvicorn.Server):
    """uvicorn's server, except that after a graceful stop on SIGTERM/SIGINT it returns instead
    of raising the signal again (which, under the default handlers, would kill the process
    before `jetti-relay intake` joins its stream reader)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stop_signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stop_signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_http(settings: Settings, *, host: str, port: int) -> None:
    """Serve the HTTP intake on host:port in this thread until SIGTERM or SIGINT, then let the
    requests in flight finish, drain the writer and return. Raises IntakeConfigError before
    listening when the settings cannot work (`build_http_app`)."""
    serve_app(build_http_app(settings), host=host, port=port)


def serve_app(app: ASGIApp, *, host: str, port: int) -> None:
    """`serve_http` for an app already built (`build_http_app`), so a command can refuse bad
    settings before it starts anything else, and build only once."""
    config = _uvicorn_config(app, host, port)
    log.info("http_intake_starting", host=host, port=port, http=config.http, loop=config.loop)
    _Server(config).run()
    log.info("http_intake_stopped", host=host, port=port)


@dataclass
class RunningIntake:
    """An HTTP intake served on a background thread of this process (`start_http_intake`)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout_s: float = GRACEFUL_SHUTDOWN_S + 5) -> None:
        """Ask for a graceful stop (requests in flight finish, the writer drains) and wait."""
        self.server.should_exit = True
        self.thread.join(timeout_s)


def start_http_intake(settings: Settings, *, host: str = "127.0.0.1", port: int) -> RunningIntake:
    """Serve the HTTP intake on a daemon thread; returns once it listens. Raises
    IntakeConfigError as `serve_http`, RuntimeError when it does not start listening."""
    server = _Server(_uvicorn_config(build_http_app(settings), host, port))
    thread = threading.Thread(target=server.run, name="http-intake", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the HTTP intake did not start listening on {host}:{port}")
        time.sleep(0.01)
    return RunningIntake(f"http://{host}:{port}", server, thread)
