"""The producer's spans: one `jetti_relay.enqueue` span per recorded order, whose context the
ledger keeps with the order (`NewVersion.trace`) so the worker's spans continue its trace.

Each span starts under the caller's current OpenTelemetry context when there is one (a traced
HTTP handler, say), else it starts a trace of its own. It carries the order key and what the
ledger did with the copy (`jetti_relay.outcome`: accepted, updated, unchanged, stale,
after_cancel), never the order's content. With tracing off (`NOOP_TRACER`) no span is started
and no `trace` field is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from worker.core.records import NewVersion, RecordResult
from worker.core.tracing import ENQUEUE_SPAN, ORDER_KEY, OUTCOME, SOURCE, Span, Tracer

PUBLISHED = "jetti_relay.published"  # True when this copy's key was published to the queue


def configured_tracer() -> Tracer:
    """The tracer the configured `JETTI_RELAY_OTLP_ENDPOINT` asks for (the no-op one when it is
    unset): what `enqueue` uses when the caller passes none. Raises
    `worker.tracing.TracingUnavailable` when it is set and the `tracing` extra is missing."""
    from worker.settings import get_settings  # the settings load only when they are needed
    from worker.tracing import instance_id, process_tracer

    return process_tracer(get_settings().otlp_endpoint, instance_id=instance_id())


def start_spans(tracer: Tracer, items: Sequence[NewVersion]) -> tuple[list[NewVersion], list[Span]]:
    """One started span per item and the items carrying their span's traceparent; with tracing
    off, `items` as they are and no spans."""
    if not tracer.enabled:
        return list(items), []
    spans = [
        tracer.start(
            ENQUEUE_SPAN,
            {ORDER_KEY: item.order_key, SOURCE: item.source or ""},
        )
        for item in items
    ]
    traced = [
        replace(item, trace=span.traceparent) for item, span in zip(items, spans, strict=True)
    ]
    return traced, spans


def end_spans(spans: Sequence[Span], results: Sequence[RecordResult], due: set[str]) -> None:
    """End each span with what the ledger did with its copy and whether its key was published."""
    for span, result in zip(spans, results, strict=True):
        span.set_attribute(OUTCOME, str(result.outcome))
        span.set_attribute(PUBLISHED, result.order_key in due)
        span.end()


def fail_spans(spans: Sequence[Span], exc: BaseException) -> None:
    """End each span as failed (Redis or the broker failed part-way) with the error's class."""
    for span in spans:
        span.set_error(type(exc).__name__)
        span.end()
