"""A minimal HTTP/1.1 load generator: `python -m ops.bench.loadgen URL [options]`, prints JSON.

Raw asyncio streams over C keep-alive connections (write the request bytes, read the head to
`\\r\\n\\r\\n`, read the Content-Length or chunked body), on uvloop when installed: a full HTTP
client (httpx) tops out near a few hundred requests/s here and would measure itself, not the
server. Every request is encoded before the clock starts and every connection is open by then.
Times come from `time.perf_counter` (uvloop's `loop.time()` ticks in whole milliseconds).

- closed loop (default): each connection sends its next request as soon as the last answer
  arrived, until the requests run out or `--seconds` passes; latency is send to answer.
- open loop (`--rate R`): request i is due at start + i/R whatever the answers do; a due request
  waits for a free connection, and its latency runs from when it was DUE, not from when it went
  out, so a stalled server shows in the figures instead of slowing the sender down (coordinated
  omission).

Bodies come from `--body-file` (JSON Lines, each line one JSON string: one request body, which
may hold newlines, e.g. an NDJSON batch), taken in order, or one `--body` for every request.
An answer whose status is not `--expect` counts as an error, as does a connection failure (the
connection is then opened again). Headers from `--header-file` (lines `Name: value`) stay out of
the process list, for credentials.

Output (one JSON object): mode, connections, target_rate, sent, ok, errors, statuses (status ->
count), failures (exception name -> count), seconds (first send to last answer), rate (ok / s),
latency_s (p50, p95, p99, max, mean of ok answers), client_cpu_s, loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops.bench.stats import percentiles

# One request may take this long before it counts as failed and its connection is replaced.
REQUEST_TIMEOUT_S = 30.0
# Statuses whose answers carry no body (RFC 9112 6.3).
_NO_BODY = {204, 304}
# A closed loop bound only by --seconds.
UNLIMITED = sys.maxsize


@dataclass(frozen=True)
class Plan:
    """What to send: `count` requests to `host:port` on `connections` connections, closed
    loop or at `rate` per second, for at most `seconds` (closed loop)."""

    host: str
    port: int
    # Request i is requests[i % len(requests)]: one per body, or one repeated.
    requests: Sequence[bytes]
    count: int
    connections: int
    expect: int
    rate: float | None = None
    seconds: float | None = None


@dataclass
class Tally:
    """What came back."""

    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    sent: int = 0
    last_done: float = 0.0


def encode_requests(
    *,
    method: str,
    host: str,
    port: int,
    path: str,
    headers: Sequence[tuple[str, str]],
    bodies: Sequence[bytes] | None,
    count: int,
) -> list[bytes]:
    """`count` HTTP/1.1 keep-alive requests; request i carries `bodies[i]` when bodies are
    given (there must be at least `count`), else no body."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    if bodies is None:
        fixed = (head + ("Content-Length: 0\r\n" if method != "GET" else "") + "\r\n").encode()
        return [fixed] * count
    return [
        (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body for body in bodies[:count]
    ]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response (Content-Length, chunked, or no body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if status in _NO_BODY:
        return status, b"", keep_alive
    if chunked:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # the final CRLF (no trailers are sent to us)
                return status, b"".join(parts), keep_alive
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if length is None:
        # Neither length nor chunked: the body runs to the end of the connection.
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


class Connection:
    """One keep-alive connection that reopens itself after a failure or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> int:
        """Send `request`, return the answer's status; raises on a connection failure."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        status, _body, keep_alive = await asyncio.wait_for(
            read_response(self.reader), REQUEST_TIMEOUT_S
        )
        if not keep_alive:
            self.close()
        return status


async def _one(conn: Connection, request: bytes, since: float, plan: Plan, tally: Tally) -> None:
    """Send one request and count its answer; latency from `since` (`time.perf_counter`)."""
    tally.sent += 1
    try:
        status = await conn.exchange(request)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
        conn.close()
        tally.failures[type(exc).__name__] += 1
        tally.last_done = time.perf_counter()
        return
    done = time.perf_counter()
    tally.last_done = done
    tally.statuses[str(status)] += 1
    if status == plan.expect:
        tally.ok += 1
        tally.latencies.append(done - since)


async def run_plan(plan: Plan) -> dict[str, Any]:
    """Send the plan's requests and return the figures (the module docstring's output)."""
    loop = asyncio.get_running_loop()
    connections = [Connection(plan.host, plan.port) for _ in range(plan.connections)]
    await asyncio.gather(*(c.open() for c in connections))
    tally = Tally()
    cpu_start = time.process_time()
    started_at = time.time()
    start = time.perf_counter()
    deadline = None if plan.seconds is None else start + plan.seconds
    if plan.rate is None:
        await _closed_loop(plan, connections, tally, deadline)
    else:
        await _open_loop(plan, connections, tally, start, plan.rate)
    client_cpu_s = time.process_time() - cpu_start
    for conn in connections:
        conn.close()
    seconds = max(tally.last_done - start, 1e-9)
    latency = percentiles(tally.latencies)
    return {
        "mode": "closed" if plan.rate is None else "open",
        "connections": plan.connections,
        "target_rate": plan.rate,
        "sent": tally.sent,
        "ok": tally.ok,
        "errors": tally.sent - tally.ok,
        "statuses": dict(tally.statuses),
        "failures": dict(tally.failures),
        "started_at": started_at,
        "seconds": seconds,
        "rate": tally.ok / seconds,
        "latency_s": {
            **latency,
            "max": max(tally.latencies, default=None),
            "mean": sum(tally.latencies) / len(tally.latencies) if tally.latencies else None,
        },
        "client_cpu_s": client_cpu_s,
        "loop": type(loop).__module__.split(".")[0],
    }


async def _closed_loop(
    plan: Plan, connections: list[Connection], tally: Tally, deadline: float | None
) -> None:
    next_index = 0

    async def drive(conn: Connection) -> None:
        nonlocal next_index
        while next_index < plan.count:
            if deadline is not None and time.perf_counter() >= deadline:
                return
            request = plan.requests[next_index % len(plan.requests)]
            next_index += 1
            await _one(conn, request, time.perf_counter(), plan, tally)

    await asyncio.gather(*(drive(c) for c in connections))


async def _open_loop(
    plan: Plan, connections: list[Connection], tally: Tally, start: float, rate: float
) -> None:
    due: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()

    async def schedule() -> None:
        for i in range(plan.count):
            request = plan.requests[i % len(plan.requests)]
            at = start + i / rate
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            due.put_nowait((request, at))
        for _ in connections:
            due.put_nowait(None)

    async def drive(conn: Connection) -> None:
        while (item := await due.get()) is not None:
            request, at = item
            await _one(conn, request, at, plan, tally)

    await asyncio.gather(schedule(), *(drive(c) for c in connections))


def read_bodies(path: Path) -> list[bytes]:
    """The bodies of a `--body-file`: JSON Lines, one JSON string per line."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line).encode() for line in lines if line.strip()]


def write_bodies(path: Path, bodies: Sequence[bytes]) -> None:
    """Write `bodies` (UTF-8) as a `--body-file`."""
    with path.open("w", encoding="utf-8") as out:
        for body in bodies:
            out.write(json.dumps(body.decode()) + "\n")


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"not a header (Name: value): {text!r}")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.loadgen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("url", help="http://host:port/path")
    parser.add_argument("--method", default=None, help="GET, or POST when bodies are given")
    parser.add_argument("--header", type=_header, action="append", default=[])
    parser.add_argument("--header-file", type=Path, help="lines `Name: value` (credentials)")
    bodies = parser.add_mutually_exclusive_group()
    bodies.add_argument("--body-file", type=Path, help="JSON Lines of body strings, in order")
    bodies.add_argument("--body", help="the one body of every request")
    parser.add_argument("--requests", type=int, help="default: every body, or unlimited")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, help="open loop at this many requests/s")
    parser.add_argument(
        "--seconds", type=float, help="closed loop: stop sending after this; open: run this long"
    )
    parser.add_argument("--expect", type=int, default=200, help="the status that counts as ok")
    parser.add_argument("--no-uvloop", action="store_true", help="the standard asyncio loop")
    return parser


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The plan the command line asks for; SystemExit (2) with a message when it is unsound."""
    parser = _parser()
    url = urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        parser.error(f"only http://host:port/... URLs: {args.url}")
    headers = list(args.header)
    if args.header_file is not None:
        for number, line in enumerate(args.header_file.read_text().splitlines(), 1):
            if line.strip():
                try:
                    headers.append(_header(line))
                except argparse.ArgumentTypeError:
                    # Never echo the line: it may hold a credential.
                    parser.error(f"line {number} of {args.header_file} is not `Name: value`")
    bodies: list[bytes] | None = None
    if args.body_file is not None:
        bodies = read_bodies(args.body_file)
    elif args.body is not None:
        bodies = [args.body.encode()]
    count = _count(parser, args, bodies)
    if args.connections < 1 or count < 1 or (args.rate is not None and args.rate <= 0):
        parser.error("--connections, --requests and --rate must be positive")
    method = args.method or ("POST" if bodies is not None else "GET")
    port = url.port or 80
    # A body file: request i carries body i. One --body or none: one request, sent `count` times.
    requests = encode_requests(
        method=method,
        host=url.hostname,
        port=port,
        path=(url.path or "/") + (f"?{url.query}" if url.query else ""),
        headers=headers,
        bodies=bodies,
        count=count if args.body_file is not None else 1,
    )
    return Plan(
        host=url.hostname,
        port=port,
        requests=requests,
        count=count,
        connections=args.connections,
        expect=args.expect,
        rate=args.rate,
        seconds=args.seconds,
    )


def _count(parser: argparse.ArgumentParser, args: argparse.Namespace, bodies: Any) -> int:
    """How many requests to send: --requests; else every body of --body-file; else what
    --rate x --seconds makes (open loop); else as many as --seconds allows (closed loop)."""
    if args.body_file is not None:
        available = len(bodies)
        count = available if args.requests is None else args.requests
        if args.rate is not None and args.seconds is not None and args.requests is None:
            count = min(available, max(1, round(args.rate * args.seconds)))
        if count > available:
            parser.error(f"--requests {count} but {available} bodies in {args.body_file}")
        return int(count)
    if args.requests is not None:
        return int(args.requests)
    if args.rate is not None and args.seconds is not None:
        return max(1, round(float(args.rate) * float(args.seconds)))
    if args.rate is None and args.seconds is not None:
        return UNLIMITED
    parser.error("say how much to send: --body-file, --requests, or --seconds (with --rate)")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, send, print the figures as one JSON object."""
    args = _parser().parse_args(argv)
    plan = plan_from_args(args)
    runner: Any = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    result = runner(run_plan(plan))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
