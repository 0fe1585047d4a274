"""Traces from the producer through the worker: real Redis, the real processor in this process,
the Jetti sandbox over HTTP, and the SDK's InMemorySpanExporter installed with
`worker.tracing.install_exporter` (what `JETTI_RELAY_OTLP_ENDPOINT` would export over OTLP).

Each order's producer span and its worker spans share one trace, whichever message delivers the
order; the batch span links to each order's stored context; no attribute carries order data;
with tracing off nothing is recorded and the ledger keeps no context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from producers import enqueue
from tests.factories import EMAIL, raw_order
from worker import tracing
from worker.core import tracing as names
from worker.core.privacy import find_emails
from worker.core.tracing import NOOP_TRACER
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings
from worker.store.ledger_schema import OrderField

pytestmark = pytest.mark.integration

KEYS = ("tr-1", "tr-2", "tr-3")
PERSONAL = ("Ada", "Lovelace", "1 Main St", "London", EMAIL)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Every span of this process goes to an in-memory exporter for the test."""
    memory = InMemorySpanExporter()
    tracing.install_exporter(memory, instance_id="test-worker")
    yield memory
    tracing.uninstall()


def make_runtime(redis_url: str, sandbox: Any) -> Runtime:
    return build_runtime(
        Settings(
            redis_url=redis_url,
            broker_url=redis_url,
            key_prefix="traces",
            webhook_hash=sandbox.webhook_hash,
            jetti_async_url=sandbox.webhook_url,
            # A 503 is retried within a tenth of a second, so the retry runs in this test.
            backoff_base_s=0.05,
            backoff_max_s=0.1,
        )
    )


@pytest.fixture
def runtime(redis_url: str, sandbox: Any, exporter: InMemorySpanExporter) -> Iterator[Runtime]:
    rt = make_runtime(redis_url, sandbox)
    yield rt
    rt.close()


def produce(rt: Runtime, *keys: str) -> None:
    """Enqueue raw orders with the producers library (its configured tracer)."""
    enqueue(
        [json.dumps(raw_order(key)).encode() for key in keys],
        client=rt.redis,
        publisher=rt.publisher,
        keys=rt.keys,
        source="shop",
    )


def named(spans: tuple[ReadableSpan, ...], name: str, key: str | None = None) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.name == name and (key is None or (s.attributes or {}).get(names.ORDER_KEY) == key)
    ]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def test_each_orders_worker_spans_continue_its_producer_trace(
    runtime: Runtime, exporter: InMemorySpanExporter, sandbox: Any
) -> None:
    """The `jetti_relay.order` span of each order is a child of its `jetti_relay.enqueue` span
    (the context the ledger kept), with its Jetti call under it and the outcome on it."""
    produce(runtime, *KEYS)
    runtime.processor.handle_batch(list(KEYS), task_id="task-1")
    spans = exporter.get_finished_spans()
    for key in KEYS:
        (produced,) = named(spans, names.ENQUEUE_SPAN, key)
        (order,) = named(spans, names.ORDER_SPAN, key)
        (call,) = named(spans, names.JETTI_CALL_SPAN, key)
        assert produced.context is not None and order.parent is not None
        assert order.parent.span_id == produced.context.span_id
        assert trace_id(order) == trace_id(produced) == trace_id(call)
        assert call.parent is not None and order.context is not None
        assert call.parent.span_id == order.context.span_id
        assert (call.attributes or {})[names.HTTP_STATUS] == 200
        assert (order.attributes or {})[names.OUTCOME] == "accepted"
        assert (produced.attributes or {})[names.OUTCOME] == "accepted"
        entry = runtime.ledger.get(key)
        assert entry is not None and entry.trace is not None
        assert entry.trace.split("-")[1] == f"{trace_id(produced):032x}"


def test_the_batch_span_links_to_each_orders_context(
    runtime: Runtime, exporter: InMemorySpanExporter, sandbox: Any
) -> None:
    """One `jetti_relay.import_orders` span per message, with the task id and key count, and a
    link (carrying the order key) to each order's producer span."""
    produce(runtime, *KEYS)
    runtime.processor.handle_batch(list(KEYS), task_id="task-links")
    spans = exporter.get_finished_spans()
    (batch,) = named(spans, names.BATCH_SPAN)
    attributes = batch.attributes or {}
    assert attributes[names.TASK_ID] == "task-links"
    assert attributes[names.KEY_COUNT] == len(KEYS)
    linked = {
        (link.attributes or {})[names.ORDER_KEY]: link.context.span_id for link in batch.links
    }
    produced = {}
    for key in KEYS:
        (span,) = named(spans, names.ENQUEUE_SPAN, key)
        assert span.context is not None
        produced[key] = span.context.span_id
    assert linked == produced


def test_a_retried_orders_second_attempt_is_in_the_same_trace(
    runtime: Runtime, exporter: InMemorySpanExporter, sandbox: Any
) -> None:
    """A 503 then an acceptance: two deliveries in two messages, both `jetti_relay.order`
    spans in the producer's trace; the first says retry with the 503 on its Jetti call."""
    produce(runtime, "tr-retry")
    sandbox.set_faults(fail_next=1, fail_next_status=503)
    runtime.processor.handle_batch(["tr-retry"], task_id="first")
    time.sleep(0.2)  # past the backoff (at most 0.1 s)
    runtime.processor.handle_batch(["tr-retry"], task_id="second")
    spans = exporter.get_finished_spans()
    (produced,) = named(spans, names.ENQUEUE_SPAN, "tr-retry")
    first, second = sorted(named(spans, names.ORDER_SPAN, "tr-retry"), key=lambda s: s.start_time)
    assert trace_id(first) == trace_id(second) == trace_id(produced)
    assert (first.attributes or {})[names.OUTCOME] == "retry"
    assert (first.attributes or {})[names.ATTEMPT] == 1
    assert (second.attributes or {})[names.OUTCOME] == "accepted"
    assert (second.attributes or {})[names.ATTEMPT] == 2
    failed, accepted = sorted(
        named(spans, names.JETTI_CALL_SPAN, "tr-retry"), key=lambda s: s.start_time
    )
    assert (failed.attributes or {})[names.HTTP_STATUS] == 503
    assert (accepted.attributes or {})[names.HTTP_STATUS] == 200


def test_no_span_carries_personal_data(
    runtime: Runtime, exporter: InMemorySpanExporter, sandbox: Any
) -> None:
    """Attributes of spans, events and links hold keys, counts and outcomes: no email, name
    or address of the raw order, and no URL (the webhook hash is in it)."""
    produce(runtime, *KEYS)
    runtime.processor.handle_batch(list(KEYS), task_id="task-pii")
    texts: list[str] = []
    for span in exporter.get_finished_spans():
        texts += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            texts += [str(v) for v in (event.attributes or {}).values()]
        for link in span.links:
            texts += [str(v) for v in (link.attributes or {}).values()]
    assert texts
    joined = "\n".join(texts)
    assert find_emails(joined.encode()) == set()
    for personal in PERSONAL:
        assert personal not in joined
    assert sandbox.webhook_hash not in joined
    assert "http" not in joined.replace("http.response", "")


def test_with_tracing_off_nothing_is_recorded_and_no_context_is_stored(
    redis_url: str, sandbox: Any
) -> None:
    """No endpoint and no exporter installed: the runtime's tracer is the no-op one, an
    exporter uninstalled beforehand receives nothing, and the order hash has no `trace`."""
    memory = InMemorySpanExporter()
    tracing.install_exporter(memory)
    tracing.uninstall()
    assert tracing.process_tracer(None, instance_id="w") is NOOP_TRACER
    rt = make_runtime(redis_url, sandbox)
    try:
        produce(rt, "tr-off")
        rt.processor.handle_batch(["tr-off"], task_id="off")
        entry = rt.ledger.get("tr-off")
        assert entry is not None and entry.trace is None
        assert not rt.redis.hexists(rt.keys.order("tr-off"), OrderField.TRACE)
        assert len(sandbox.history("tr-off")) == 1
    finally:
        rt.close()
    assert memory.get_finished_spans() == ()
