"""An upstream that feeds the stream intake: `python -m ops.bench.streamfeed URL STREAM FILE`.

Appends each line of FILE (NDJSON: one raw order per line) as one entry of STREAM with plain
pipelined `XADD STREAM * order <line>`, as any upstream in any language would, then prints one
JSON object: entries, first_at (epoch seconds when the first XADD went out), last_at (when the
last was answered), seconds, rate and last_id. It runs as its own process so the intake's
benchmark measures an intake fed from outside, not one sharing a process with its feeder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# XADDs per pipelined round trip: large enough that the feeder outruns any one intake.
DEFAULT_PIPELINE = 1000


def feed(url: str, stream: str, lines: Sequence[bytes], pipeline: int) -> dict[str, Any]:
    """XADD every line to `stream` at `url`, `pipeline` per round trip; the figures."""
    import redis

    client: redis.Redis[bytes] = redis.Redis.from_url(url)
    client.ping()  # connect before the clock starts
    last_id = b""
    first_at = time.time()
    started = time.perf_counter()
    for start in range(0, len(lines), pipeline):
        pipe = client.pipeline(transaction=False)
        for line in lines[start : start + pipeline]:
            pipe.xadd(stream, {"order": line})
        last_id = pipe.execute()[-1]
    seconds = time.perf_counter() - started
    client.close()
    return {
        "entries": len(lines),
        "first_at": first_at,
        "last_at": first_at + seconds,
        "seconds": seconds,
        "rate": len(lines) / seconds if seconds > 0 else 0.0,
        "last_id": last_id.decode(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, feed, print the figures as one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m ops.bench.streamfeed", description=__doc__)
    parser.add_argument("url", help="redis://host:port/db")
    parser.add_argument("stream", help="the intake stream, e.g. jr:intake")
    parser.add_argument("file", type=Path, help="NDJSON: one raw order per line")
    parser.add_argument("--pipeline", type=int, default=DEFAULT_PIPELINE)
    args = parser.parse_args(argv)
    lines = [line for line in args.file.read_bytes().splitlines() if line.strip()]
    if not lines or args.pipeline < 1:
        parser.error("nothing to feed (an empty file or --pipeline below 1)")
    json.dump(feed(args.url, args.stream, lines, args.pipeline), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
