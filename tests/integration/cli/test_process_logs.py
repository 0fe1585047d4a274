"""Every process logs the same redacted way (issue 12 point 6, reliability #6).

Each kind of process the relay runs is started for real with a webhook hash, an API token and
an order carrying an email in reach, an error is forced in it (Jetti answering garbage, Redis
unreachable, an invalid order), and its whole stdout+stderr is searched: the error must show,
none of the secrets or the email may. A new kind of process adds one entry to PROCESS_KINDS.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis

from ops.harness.ports import free_port
from tests.factories import raw_order
from tests.fixtures.pipeline import FAST_ENV
from worker.core.keys import Keys

pytestmark = pytest.mark.integration

SECRET_HASH = "hash-leakcheck-5f3a91"
SECRET_TOKEN = "token-leakcheck-9c1e77"
EMAIL = "leak.ck@example.com"  # short enough to be echoed whole by a 20-character excerpt
SECRET_INTAKE_TOKEN = "intake-leakcheck-3b7d20"
SECRET_INTAKE_HMAC = "hmac-leakcheck-81c4fe"
# The alert webhooks' URLs are credentials (a Slack URL is its own token): in the path here.
SECRET_NOTIFY_PATH = "/hooks/notify-leakcheck-6e0a13"
SECRET_CONSOLE_TOKEN = "console-leakcheck-47d2c8"
SECRET_CONSOLE_USER_TOKEN = "console-user-leakcheck-0b9e61"
SECRET_CONSOLE_SESSION = "console-session-leakcheck-d4a7f2"
SECRETS = (
    SECRET_CONSOLE_TOKEN,
    SECRET_CONSOLE_USER_TOKEN,
    SECRET_CONSOLE_SESSION,
    SECRET_HASH,
    SECRET_TOKEN,
    SECRET_INTAKE_TOKEN,
    SECRET_INTAKE_HMAC,
    SECRET_NOTIFY_PATH,
    EMAIL,
)
# A long-running process shows its forced error well within this.
ERROR_TIMEOUT_S = 30.0


class _GarbageJetti(BaseHTTPRequestHandler):
    """Answers every request 200 with a body that is not the gzip it claims to be (a proxy or
    WAF mangling the answer): httpx raises DecodingError inside Client.request, whose locals
    hold the Authorization header."""

    def _garbage(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"this is not gzip"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _garbage

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def garbage_jetti() -> Iterator[str]:
    """Base URL of a Jetti that answers garbage."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _GarbageJetti)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Scene:
    """What a process kind is started against."""

    tmp_path: Path
    redis_url: str
    jetti_url: str
    dead_redis_url: str = field(default_factory=lambda: f"redis://127.0.0.1:{free_port()}/0")

    def env(self, *, redis_url: str | None = None, **settings: str) -> dict[str, str]:
        """The relay's environment: secrets set, Jetti = the garbage server, `settings` on top."""
        url = redis_url or self.redis_url
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("JETTI_RELAY_")}
        return {
            **env,
            **FAST_ENV,
            "JETTI_RELAY_REDIS_URL": url,
            "JETTI_RELAY_BROKER_URL": url,
            "JETTI_RELAY_JETTI_ASYNC_URL": f"{self.jetti_url}/webhooks/manual-sale.json",
            "JETTI_RELAY_JETTI_API_URL": self.jetti_url,
            "JETTI_RELAY_WEBHOOK_HASH": SECRET_HASH,
            "JETTI_RELAY_API_TOKEN": SECRET_TOKEN,
            "JETTI_RELAY_CHANNEL_ID": "7",
            "JETTI_RELAY_LOG_FORMAT": "json",
            "JETTI_RELAY_RECONCILE_INTERVAL_S": "0.2",
            "JETTI_RELAY_INTAKE_TOKEN": SECRET_INTAKE_TOKEN,
            "JETTI_RELAY_INTAKE_HMAC_SECRET": SECRET_INTAKE_HMAC,
            **settings,
        }

    def orders_file(self, *extra: str) -> Path:
        """A JSON Lines file: a valid order with the email, then `extra` raw lines."""
        order = raw_order("logs-1")
        order["customer"]["email"] = EMAIL
        path = self.tmp_path / "orders.jsonl"
        path.write_text("\n".join([json.dumps(order), *extra]) + "\n")
        return path


def run_to_end(scene: Scene, args: list[str], env: dict[str, str]) -> str:
    """`jetti-relay ARGS` run to completion; its stdout+stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=scene.tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=ERROR_TIMEOUT_S,
    )
    return result.stdout


def run_until(
    scene: Scene,
    args: list[str],
    env: dict[str, str],
    marker: str,
    poke: Callable[[], object] = lambda: None,
) -> str:
    """Start a long-running `jetti-relay ARGS`, call `poke` until `marker` shows in its
    output (or the deadline passes), stop its whole process group; its stdout+stderr."""
    log_path = scene.tmp_path / f"{args[0]}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", *args],
            env=env,
            cwd=scene.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ERROR_TIMEOUT_S
        while marker not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                break
            poke()
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    return log_path.read_text(errors="replace")


def worker_parent(scene: Scene) -> str:
    # The parent's maintenance thread runs the reconciler, which reads Jetti's garbage.
    return run_until(scene, ["worker", "-c", "1"], scene.env(), "DecodingError")


def celery_pool(scene: Scene) -> str:
    # A pool process posts an order carrying the email to Jetti, which answers garbage.
    env = scene.env()
    enqueued = run_to_end(scene, ["enqueue", str(scene.orders_file())], env)
    return enqueued + run_until(
        scene, ["worker", "-c", "1", "--no-pump"], env, "order_retry_scheduled"
    )


def pump(scene: Scene) -> str:
    return run_until(scene, ["pump"], scene.env(), "DecodingError")


def enqueue(scene: Scene) -> str:
    # An invalid order whose email holds a lone surrogate: the refusal must not quote it.
    bad = json.dumps({**raw_order("logs-2"), "customer": {"email": "X"}}).replace(
        '"X"', f'"{EMAIL}\\ud800"'
    )
    return run_to_end(scene, ["enqueue", str(scene.orders_file(bad))], scene.env())


def dlq(scene: Scene) -> str:
    return run_to_end(scene, ["dlq", "list"], scene.env(redis_url=scene.dead_redis_url))


def order(scene: Scene) -> str:
    return run_to_end(scene, ["order", "show", "logs-1"], scene.env(redis_url=scene.dead_redis_url))


def reconcile(scene: Scene) -> str:
    return run_to_end(scene, ["reconcile", "run"], scene.env())


def health(scene: Scene) -> str:
    return run_to_end(scene, ["health"], scene.env(redis_url=scene.dead_redis_url))


def metrics(scene: Scene) -> str:
    port = free_port()

    def scrape() -> None:
        with contextlib.suppress(httpx.HTTPError):  # not listening yet
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)

    return run_until(
        scene,
        ["metrics", "--port", str(port)],
        scene.env(redis_url=scene.dead_redis_url),
        "metrics_redis_unreachable",
        poke=scrape,
    )


def stream_intake(scene: Scene) -> str:
    # An invalid order carrying the email, appended with XADD: refused into the rejects stream;
    # the log line says so without quoting the order.
    order = raw_order("logs-stream", quantity=0)
    order["customer"]["email"] = EMAIL
    client = redis.Redis.from_url(scene.redis_url)
    client.xadd(Keys().intake_stream(), {"order": json.dumps(order)})
    client.close()
    return run_until(scene, ["intake"], scene.env(), "intake_rejected")


def http_intake(scene: Scene) -> str:
    # Redis is unreachable: an order carrying the email, sent with the token and signed with
    # the HMAC key, is answered 503; the access log and the failure must quote neither.
    port = free_port()
    order = raw_order("logs-http")
    order["customer"]["email"] = EMAIL
    body = json.dumps(order).encode()
    signature = hmac.new(SECRET_INTAKE_HMAC.encode(), body, hashlib.sha256).hexdigest()

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # not listening yet
            for headers in (
                {"Authorization": f"Bearer {SECRET_INTAKE_TOKEN}"},
                {"X-Jetti-Relay-Signature": f"sha256={signature}"},
            ):
                httpx.post(
                    f"http://127.0.0.1:{port}/v1/orders",
                    content=body,
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=5.0,
                )

    return run_until(
        scene,
        ["intake", "--http", "--no-stream", "--port", str(port)],
        scene.env(redis_url=scene.dead_redis_url),
        '"status": 503',
        poke=post,
    )


def notify(scene: Scene) -> str:
    # No worker answers the ping: no_live_worker fires, and both sinks get Jetti's garbage
    # answer (a body that is not the gzip it claims), a failed send the log must not locate.
    env = scene.env(
        JETTI_RELAY_NOTIFY_WEBHOOK_URL=f"{scene.jetti_url}{SECRET_NOTIFY_PATH}/generic",
        JETTI_RELAY_NOTIFY_SLACK_URL=f"{scene.jetti_url}{SECRET_NOTIFY_PATH}/slack",
    )
    return run_until(scene, ["notify"], env, "alert_send_failed")


def console(scene: Scene) -> str:
    # Redis is unreachable: pages requested with each user's token, and a login with a wrong
    # one, are answered 503 / 401; neither the tokens nor the session key may show.
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def request() -> None:
        with contextlib.suppress(httpx.HTTPError):  # not listening yet
            for token in (SECRET_CONSOLE_TOKEN, SECRET_CONSOLE_USER_TOKEN):
                httpx.get(
                    f"{base}/api/overview",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5.0,
                )
            httpx.post(f"{base}/login", data={"token": SECRET_CONSOLE_TOKEN + "x"}, timeout=5.0)

    env = scene.env(
        redis_url=scene.dead_redis_url,
        JETTI_RELAY_CONSOLE_TOKEN=SECRET_CONSOLE_TOKEN,
        JETTI_RELAY_CONSOLE_USERS=f"ann:read-only:{SECRET_CONSOLE_USER_TOKEN}",
        JETTI_RELAY_CONSOLE_SESSION_SECRET=SECRET_CONSOLE_SESSION,
    )
    return run_until(
        scene, ["console", "--port", str(port)], env, "console_redis_unreachable", poke=request
    )


# (kind, start it and force its error, text the error leaves in the output)
PROCESS_KINDS: list[tuple[str, Callable[[Scene], str], str]] = [
    ("worker-parent", worker_parent, "DecodingError"),
    ("celery-pool", celery_pool, "order_retry_scheduled"),
    ("pump", pump, "DecodingError"),
    ("enqueue", enqueue, "lone surrogate"),
    ("dlq", dlq, "cannot reach Redis"),
    ("order", order, "cannot reach Redis"),
    ("reconcile", reconcile, "DecodingError"),
    ("health", health, "Redis unreachable"),
    ("metrics", metrics, "metrics_redis_unreachable"),
    ("stream-intake", stream_intake, "intake_rejected"),
    ("http-intake", http_intake, '"status": 503'),
    ("notify", notify, "alert_send_failed"),
    ("console", console, "console_redis_unreachable"),
]


@pytest.mark.parametrize(
    ("start", "error"), [pytest.param(run, error, id=kind) for kind, run, error in PROCESS_KINDS]
)
def test_no_secret_or_email_in_any_process_output(
    tmp_path: Path, redis_url: str, garbage_jetti: str, start: Callable[[Scene], str], error: str
) -> None:
    """The forced error shows in the process's output; the hash, the token and the email never
    do (no unconfigured logger, no rich traceback with locals, no echoed values)."""
    output = start(Scene(tmp_path=tmp_path, redis_url=redis_url, jetti_url=garbage_jetti))
    leaked = [secret for secret in SECRETS if secret in output]
    assert leaked == [], output[-4000:]
    assert error in output, output[-4000:]
