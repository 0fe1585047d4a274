"""The Redis Stream intake (issue 14): being built."""

from __future__ import annotations

import threading

from worker.settings import Settings


def start_stream_intake(
    settings: Settings, *, consumer: str, stop: threading.Event
) -> threading.Thread:
    """Start reading the intake stream as `consumer` in a thread that ends when `stop` is set."""
    raise NotImplementedError
