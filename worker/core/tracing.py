"""The tracing port: spans the producer and the pipeline open, and the no-op they use when off.

Tracing is off unless `JETTI_RELAY_OTLP_ENDPOINT` is set; then `worker.tracing` builds an
OpenTelemetry-backed `Tracer`. Everything else (the producers, `worker.pipeline`) takes a
`Tracer` and never imports opentelemetry, so with tracing off a span costs one no-op call and
the core, stores and pipeline need no tracing package at all (an import-linter contract).

A span's context travels as a W3C traceparent string (`00-<trace id>-<span id>-<flags>`): the
producer stores its span's traceparent with each order (`NewVersion.trace`, the order hash's
`trace` field), and every delivery of that order, whichever message carries it (the producer's,
the pump's, the sweeper's re-publish), opens its `jetti_relay.order` span under it.

Attributes carry order keys, counts, statuses and outcomes, never personal data (names,
emails, addresses: see `worker.core.privacy`), never a URL (the webhook hash is in it), never a
body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

# Span names (docs/tracing.md lists them with their attributes).
ENQUEUE_SPAN = "jetti_relay.enqueue"  # producer: one order recorded and published
BATCH_SPAN = "jetti_relay.import_orders"  # worker: one message's orders
ORDER_SPAN = "jetti_relay.order"  # worker: one delivery of one order, under its stored context
JETTI_CALL_SPAN = "jetti_relay.jetti_call"  # worker: one POST to Jetti's import endpoint

# Attribute names.
ORDER_KEY = "jetti_relay.order_key"
OUTCOME = "jetti_relay.outcome"  # producer: accepted/updated/...; worker: accepted/retry/dead
OUTCOME_REASON = "jetti_relay.outcome.reason"  # dead reason, retry error class, wait
TASK_ID = "jetti_relay.task_id"
KEY_COUNT = "jetti_relay.key_count"
ORDER_COUNT = "jetti_relay.order_count"  # orders claimed (fill orders included)
ATTEMPT = "jetti_relay.attempt"  # 1-based attempt number of this delivery
DELIVERY = "jetti_relay.delivery"  # deliveries started for this order, this one included
SOURCE = "jetti_relay.source"  # the producer's source label (an operator's name for a feed)
HTTP_STATUS = "http.response.status_code"  # OpenTelemetry's semantic convention name
RETRY_AFTER_S = "jetti_relay.retry_after_s"
ERROR_TYPE = "error.type"  # OpenTelemetry's semantic convention name: an exception class

AttributeValue = str | int | float | bool


class Span(Protocol):
    """One started span; `end` it exactly once. Safe to use from another thread than the one
    that started it (the processor's Jetti calls run on its submit threads)."""

    @property
    def traceparent(self) -> str | None:
        """This span's W3C traceparent, or None when tracing is off."""
        ...

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set one attribute (a key from this module)."""
        ...

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        """Record a named event now."""
        ...

    def set_error(self, description: str) -> None:
        """Mark the span failed; `description` names what failed, never personal data."""
        ...

    def child(self, name: str, attributes: Mapping[str, AttributeValue]) -> Span:
        """A span started now whose parent is this one."""
        ...

    def end(self) -> None:
        """End the span now."""
        ...


class Tracer(Protocol):
    """Starts spans (`worker.tracing.OtelTracer`, or `NOOP_TRACER` when tracing is off)."""

    @property
    def enabled(self) -> bool:
        """True when spans are recorded; callers skip work only tracing needs when False."""
        ...

    def start(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        parent: str | None = None,
        links: Sequence[tuple[str, Mapping[str, AttributeValue]]] = (),
        start_s: float | None = None,
    ) -> Span:
        """Start a span. `parent`: a traceparent to continue (None or unreadable: the caller's
        current context, else a new trace); `links`: (traceparent, attributes) of spans this
        one relates to; `start_s`: the start time, epoch seconds (default: now)."""
        ...

    def shutdown(self) -> None:
        """Export what is buffered and stop exporting (process exit)."""
        ...


class NoopSpan:
    """The span of a tracer that is off: every call does nothing."""

    traceparent: str | None = None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        return None

    def set_error(self, description: str) -> None:
        return None

    def child(self, name: str, attributes: Mapping[str, AttributeValue]) -> Span:
        return self

    def end(self) -> None:
        return None


NOOP_SPAN = NoopSpan()


class NoopTracer:
    """Tracing off: no span is recorded and no traceparent is produced."""

    enabled = False

    def start(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        parent: str | None = None,
        links: Sequence[tuple[str, Mapping[str, AttributeValue]]] = (),
        start_s: float | None = None,
    ) -> Span:
        return NOOP_SPAN

    def shutdown(self) -> None:
        return None


NOOP_TRACER = NoopTracer()
