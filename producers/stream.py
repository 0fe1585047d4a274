"""The Redis Stream intake (issue 14): `start_stream_intake`, what `jetti-relay intake` and
`jetti-relay worker --intake` run.

Upstream, in any language, appends one raw order per entry to `<key prefix>:intake`
(`XADD jr:intake * order '<json>' [source S] [id_prefix P]`); every intake process is one
consumer of one group, so each entry is handled by one of them (docs/intake.md). The consumer
itself is `producers.stream_intake.StreamIntake`, built from the settings by
`producers.connect.stream_intake`.
"""

from __future__ import annotations

import threading

from producers.connect import stream_intake
from worker.settings import Settings


def start_stream_intake(
    settings: Settings, *, consumer: str, stop: threading.Event
) -> threading.Thread:
    """Start reading the intake stream as `consumer` in a daemon thread that ends when `stop`
    is set (within about a second), closing its Redis connection. Redis need not be reachable
    yet: the thread waits for it."""
    intake = stream_intake(settings, consumer)

    def run() -> None:
        try:
            intake.run(stop)
        finally:
            intake.client.close()

    thread = threading.Thread(target=run, name="intake", daemon=True)
    thread.start()
    return thread
