"""Fixtures of the notifier tests: a local HTTP receiver that records what it is sent, and
notifiers built from Settings (as `jetti-relay notify` builds them) against the test Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from ops.harness.ports import free_port
from ops.notify.build import build_notifier
from ops.notify.notifier import Notifier
from worker.core.keys import Keys
from worker.settings import Settings

# The secret part of the receiver's URL: it must never show in a log line or an error.
SECRET_PATH = "/hooks/T000/B000/secret-notify-4d2c"
PREFIX = "nt"


class Receiver:
    """A webhook receiver: records each request's path and JSON body; answers `statuses` in
    turn (200 once they run out)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status < 300:
                        receiver.bodies.append(json.loads(body))
                        receiver.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{SECRET_PATH}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def accepted(self, alert: str | None = None) -> list[tuple[str, str]]:
        """(alert, status) of every accepted generic-webhook body, in order."""
        with self._lock:
            return [
                (b["alert"], b["status"])
                for b in self.bodies
                if "alert" in b and (alert is None or b["alert"] == alert)
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(PREFIX)


def workers_alive(timeout_s: float) -> list[str]:
    """A broker ping that a worker answers (the notifier tests run no Celery worker)."""
    return ["celery@test"]


MakeNotifier = Callable[..., Notifier]


@pytest.fixture
def make_notifier(
    redis_url: str, receiver: Receiver, make_settings: Callable[..., Settings]
) -> MakeNotifier:
    """`make_notifier(holder="a", ping=workers_alive, **settings)`: a notifier on the test Redis
    sending to `receiver` (webhook) unless the settings say otherwise."""

    def make(
        holder: str = "host-a:1",
        ping: Callable[[float], list[str]] = workers_alive,
        **overrides: Any,
    ) -> Notifier:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "broker_url": redis_url,
            "key_prefix": PREFIX,
            "notify_webhook_url": receiver.url,
            "notify_interval_s": 0.05,
            **overrides,
        }
        settings = make_settings(**values)
        return build_notifier(settings, holder=holder, ping=ping)

    return make


@pytest.fixture
def client(redis_client: redis.Redis[bytes]) -> redis.Redis[bytes]:
    return redis_client
