"""The OpenTelemetry side of tracing: `worker.core.tracing`'s ports over the OpenTelemetry SDK.

Imported only by `worker.tracing` once tracing is on (the `tracing` extra), so a process with
tracing off never loads opentelemetry. The tracer has its own `TracerProvider` (service
`jetti-relay`) and does not replace the process's global one: a producer embedded in an
application that traces itself keeps its provider, and its current span still becomes the
parent of each order's `jetti_relay.enqueue` span.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanContext, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from worker.core.tracing import AttributeValue, Span

SERVICE_NAME = "jetti-relay"
INSTRUMENTATION_NAME = "jetti_relay"
# OTLP/HTTP's traces path: appended when the configured endpoint is the collector's base URL.
OTLP_TRACES_PATH = "/v1/traces"

_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent_of(context: SpanContext) -> str | None:
    """The W3C traceparent of `context`, or None for an invalid context."""
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span context a stored traceparent names, or None when it is absent or not
    a valid W3C traceparent (an order recorded by another tool, a corrupted field)."""
    if not traceparent:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return span_context if span_context.is_valid else None


class OtelSpan:
    """`worker.core.tracing.Span` over an SDK span."""

    def __init__(self, tracer: trace.Tracer, span: trace.Span) -> None:
        self._tracer = tracer
        self._span = span

    @property
    def traceparent(self) -> str | None:
        return traceparent_of(self._span.get_span_context())

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self._span.add_event(name, dict(attributes))

    def set_error(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))

    def child(self, name: str, attributes: Mapping[str, AttributeValue]) -> Span:
        context = trace.set_span_in_context(self._span)
        return OtelSpan(
            self._tracer, self._tracer.start_span(name, context, attributes=dict(attributes))
        )

    def end(self) -> None:
        self._span.end()


class OtelTracer:
    """`worker.core.tracing.Tracer` over an SDK `TracerProvider`; `shutdown` flushes it."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)

    def start(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        parent: str | None = None,
        links: Sequence[tuple[str, Mapping[str, AttributeValue]]] = (),
        start_s: float | None = None,
    ) -> Span:
        parent_context = span_context_of(parent)
        # No stored parent: the caller's current context (None), e.g. a producer's request span.
        context = (
            None
            if parent_context is None
            else trace.set_span_in_context(trace.NonRecordingSpan(parent_context))
        )
        span_links = [
            Link(linked, dict(link_attributes))
            for traceparent, link_attributes in links
            if (linked := span_context_of(traceparent)) is not None
        ]
        span = self._tracer.start_span(
            name,
            context,
            attributes=dict(attributes),
            links=span_links,
            start_time=None if start_s is None else int(start_s * 1e9),
        )
        return OtelSpan(self._tracer, span)

    def shutdown(self) -> None:
        self.provider.shutdown()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for `endpoint`: a collector's base URL
    (http://collector:4318) gets `/v1/traces`; a URL with a path is used as given."""
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return endpoint.rstrip("/") + OTLP_TRACES_PATH


def build_tracer(
    *, instance_id: str, endpoint: str | None = None, exporter: SpanExporter | None = None
) -> OtelTracer:
    """A tracer exporting to `exporter` span by span (tests), else in batches over OTLP/HTTP
    to `endpoint`. Resource: service.name `jetti-relay`, service.instance.id `instance_id`."""
    resource = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": instance_id})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif endpoint:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(traces_url(endpoint))))
    else:
        raise ValueError("build_tracer needs an OTLP endpoint or an exporter")
    return OtelTracer(provider)
