"""This process's tracer: off (`NOOP_TRACER`) unless an OTLP endpoint is configured.

`process_tracer(endpoint, instance_id=...)` is what the composition root (`worker.runtime`) and
the producers (`producers.enqueue`) call: with no endpoint it answers the no-op tracer without
importing opentelemetry, so tracing off costs one no-op call per span; with one it builds, once
per process, an OpenTelemetry tracer (`worker.tracing_otel`) exporting in batches over OTLP/HTTP,
flushed by `shutdown()`. An endpoint without the `tracing` extra installed raises
`TracingUnavailable` (the commands refuse to start earlier, with `tracing_problem`'s line).

Tests install an exporter of their own (`install_exporter`, e.g. the SDK's
InMemorySpanExporter) before building a runtime or enqueueing: it wins over the settings until
`uninstall()`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from typing import TYPE_CHECKING

from worker.core.tracing import NOOP_TRACER, Tracer

if TYPE_CHECKING:  # opentelemetry loads only when tracing is on
    from opentelemetry.sdk.trace.export import SpanExporter

TRACING_EXTRA = "tracing"
# What the `tracing` extra installs that the tracer imports.
TRACING_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")

_lock = threading.Lock()
_tracer: Tracer | None = None  # built from an endpoint, once per process
_installed: Tracer | None = None  # a test's exporter; wins over the endpoint


class TracingUnavailable(RuntimeError):
    """An OTLP endpoint is configured but the `tracing` extra is not installed."""


def instance_id() -> str:
    """host:pid, this process's service.instance.id (the worker id the ledger records)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _missing_modules() -> list[str]:
    missing = []
    for module in TRACING_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package itself is absent
            found = False
        if not found:
            missing.append(module)
    return missing


def tracing_problem(otlp_endpoint: str | None) -> str | None:
    """One line saying why tracing cannot start (the endpoint is set, the extra is missing),
    or None when it can or is off. Names the extra, never the endpoint (it may carry a token)."""
    if not otlp_endpoint:
        return None
    missing = _missing_modules()
    if not missing:
        return None
    return (
        f"JETTI_RELAY_OTLP_ENDPOINT is set but the '{TRACING_EXTRA}' extra is not installed "
        f"({', '.join(missing)} missing): pip install 'jetti-relay[{TRACING_EXTRA}]'"
    )


def process_tracer(otlp_endpoint: str | None, *, instance_id: str) -> Tracer:
    """The tracer this process uses: a test's installed one, else the no-op one when
    `otlp_endpoint` is unset, else the OTLP tracer (built on first call, service.instance.id
    `instance_id`). Raises TracingUnavailable when the endpoint is set without the extra."""
    global _tracer
    if _installed is not None:
        return _installed
    if not otlp_endpoint:
        return NOOP_TRACER
    with _lock:
        if _tracer is None:
            if problem := tracing_problem(otlp_endpoint):
                raise TracingUnavailable(problem)
            from worker.tracing_otel import build_tracer

            _tracer = build_tracer(instance_id=instance_id, endpoint=otlp_endpoint)
        return _tracer


def install_exporter(exporter: SpanExporter, *, instance_id: str = "test") -> Tracer:
    """Make every span of this process go to `exporter` as it ends (tests): `process_tracer`
    answers this tracer whatever the endpoint until `uninstall()`."""
    global _installed
    from worker.tracing_otel import build_tracer

    with _lock:
        _installed = build_tracer(instance_id=instance_id, exporter=exporter)
        return _installed


def uninstall() -> None:
    """Forget an installed exporter's tracer (flushing it); tracing follows the endpoint again."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
    if installed is not None:
        installed.shutdown()


def shutdown() -> None:
    """Export the spans still buffered and stop the OTLP tracer (process exit); a later
    `process_tracer` builds a new one."""
    global _tracer
    with _lock:
        tracer, _tracer = _tracer, None
    if tracer is not None:
        tracer.shutdown()
