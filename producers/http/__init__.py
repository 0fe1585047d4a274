"""The HTTP intake (issue 14): being built."""

from __future__ import annotations

from worker.settings import Settings


def serve_http(settings: Settings, *, host: str, port: int) -> None:
    """Serve the HTTP intake on host:port until SIGTERM or SIGINT."""
    raise NotImplementedError
