"""The benchmark's load generator (`python -m ops.bench.loadgen`) against a tiny local HTTP/1.1
server: it sends what it was given over keep-alive connections, counts every answer by status,
counts a wrong status as an error, and reports sane latency figures, in closed and open loop."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ops.bench.loadgen import write_bodies

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


class _Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections = 0
        self.bodies: list[bytes] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    """202 for a POST, 500 when its body holds `bad`; GET /chunked answers chunked when the
    bearer token is right (401 otherwise); any other GET 200 with a Content-Length body."""

    protocol_version = "HTTP/1.1"  # keep-alive
    seen: _Seen

    def setup(self) -> None:
        super().setup()
        with self.seen.lock:
            self.seen.connections += 1

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.seen.lock:
            self.seen.bodies.append(body)
        self._answer(500 if b"bad" in body else 202, b'{"outcome": "accepted"}')

    def do_GET(self) -> None:
        with self.seen.lock:
            self.seen.paths.append(self.path)
        if self.path != "/chunked":
            self._answer(200, b"ok")
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, b"no")
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"hello ", b"chunked world"):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def server() -> Iterator[tuple[str, _Seen]]:
    """(base URL, what it saw) of a threaded HTTP/1.1 server on a free loopback port."""
    seen = _Seen()
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _loadgen(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "ops.bench.loadgen", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _sane_latency(result: dict[str, Any]) -> None:
    latency = result["latency_s"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert 0 < latency["mean"] <= latency["max"]
    assert result["seconds"] > 0
    assert result["rate"] == pytest.approx(result["ok"] / result["seconds"])


def test_closed_loop_sends_every_body_once_and_counts_a_wrong_status_as_an_error(
    server: tuple[str, _Seen], tmp_path: Path
) -> None:
    """40 bodies (3 of them answered 500, one an NDJSON batch with newlines) over 4 keep-alive
    connections: each body arrives once, 37 count as ok, the 3 others as errors by status."""
    url, seen = server
    bodies = [b'{"id": "%d"}' % i for i in range(40)]
    bodies[5] = b'{"id": "a"}\n{"id": "b"}\n'
    for i in (3, 17, 30):
        bodies[i] = b'{"id": "bad-%d"}' % i
    write_bodies(tmp_path / "bodies.jsonl", bodies)
    result = _loadgen(
        f"{url}/v1/orders",
        "--body-file",
        str(tmp_path / "bodies.jsonl"),
        "--header",
        "Content-Type: application/json",
        "--connections",
        "4",
        "--expect",
        "202",
    )
    assert result["mode"] == "closed" and result["connections"] == 4
    assert result["sent"] == 40 and result["ok"] == 37 and result["errors"] == 3
    assert result["statuses"] == {"202": 37, "500": 3}
    assert result["failures"] == {}
    assert sorted(seen.bodies) == sorted(bodies)
    assert seen.connections == 4  # keep-alive: no connection per request
    _sane_latency(result)
    assert result["client_cpu_s"] > 0


def test_open_loop_sends_rate_times_seconds_requests(server: tuple[str, _Seen]) -> None:
    """`--rate 200 --seconds 0.25` sends 50 requests (GET, no body) and reports the latency of
    each from its scheduled time."""
    url, seen = server
    result = _loadgen(f"{url}/health", "--rate", "200", "--seconds", "0.25", "--connections", "2")
    assert result["mode"] == "open" and result["target_rate"] == 200
    assert result["sent"] == result["ok"] == 50 and result["errors"] == 0
    assert seen.paths == ["/health"] * 50
    _sane_latency(result)


def test_a_closed_loop_bound_by_seconds_stops(server: tuple[str, _Seen]) -> None:
    """`--seconds` alone: one repeated GET until the time is up, every answer counted."""
    url, seen = server
    result = _loadgen(f"{url}/health", "--seconds", "0.3", "--connections", "2")
    assert result["sent"] == result["ok"] == len(seen.paths) > 0


def test_chunked_answers_and_headers_from_a_file(server: tuple[str, _Seen], tmp_path: Path) -> None:
    """Headers from `--header-file` are sent (the bearer token passes) and chunked answers are
    read whole (the next request on the connection still works)."""
    url, _seen = server
    headers = tmp_path / "headers"
    headers.write_text(f"Authorization: Bearer {TOKEN}\n")
    result = _loadgen(
        f"{url}/chunked", "--requests", "6", "--connections", "2", "--header-file", str(headers)
    )
    assert result["statuses"] == {"200": 6} and result["ok"] == 6
    unauthenticated = _loadgen(f"{url}/chunked", "--requests", "3", "--connections", "1")
    assert unauthenticated["statuses"] == {"401": 3} and unauthenticated["errors"] == 3


def test_a_bad_header_file_line_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A line that is not `Name: value` exits 2 naming the line number, never its text (it
    may hold a credential)."""
    headers = tmp_path / "headers"
    headers.write_text("Authorization: Bearer x\nBearer-only-secret-value\n")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "ops.bench.loadgen", "http://127.0.0.1:9/"),
            *("--requests", "1", "--header-file", str(headers)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "line 2" in done.stderr and "secret-value" not in done.stderr
