"""Ports and readiness for the harness: a free loopback port, polling until a service answers,
and the one error every harness helper raises (`ServiceError`, whose message says what to do)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Services start in well under a second here; a loaded machine can take far longer.
START_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    """A service could not be found or did not start; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], object],
    what: str,
    *,
    timeout_s: float = START_TIMEOUT_S,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until it returns a true value; ServiceError after `timeout_s` or when
    `process` exits first (with the tail of `log`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise ServiceError(f"{what} exited with {process.returncode}\n{tail}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not start within {timeout_s:.0f} s")
        time.sleep(0.05)
