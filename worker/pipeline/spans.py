"""The spans of one message's orders: the batch span, one span per order, one per Jetti call.

The batch span (`jetti_relay.import_orders`) links to each order's stored context; each order's
span (`jetti_relay.order`) continues that context, so whichever message delivers an order (the
producer's, the pump's after a retry, the sweeper's re-publish) its deliveries join the trace the
producer started. An order without a stored context (recorded with tracing off) gets its span
under the batch span. The order span ends after the flush with the outcome written
(`jetti_relay.outcome`: accepted, retry, dead, cancelled or none, and its reason).

With tracing off (`NOOP_TRACER`) nothing here reads or allocates beyond the check of
`tracer.enabled`. Attributes carry order keys, counts, statuses and outcomes, never order data.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.core.records import Dead, Retry, Submitted
from worker.core.tracing import (
    ATTEMPT,
    BATCH_SPAN,
    DELIVERY,
    ERROR_TYPE,
    HTTP_STATUS,
    JETTI_CALL_SPAN,
    KEY_COUNT,
    NOOP_SPAN,
    ORDER_COUNT,
    ORDER_KEY,
    ORDER_SPAN,
    OUTCOME,
    OUTCOME_REASON,
    RETRY_AFTER_S,
    TASK_ID,
    Span,
    Tracer,
)
from worker.pipeline.ports import JettiSubmit, SubmitAnswer
from worker.pipeline.recorder import Batch, LockedOrder

OUTCOME_EVENT = "jetti_relay.outcome"


def open_spans(
    tracer: Tracer, batch: Batch, orders: Sequence[LockedOrder], *, keys: int, started_s: float
) -> Span:
    """Start the batch span (linked to every order's stored context) and each order's span
    (`order.span`), both from `started_s` (epoch s, before the claim); the batch span returned."""
    if not tracer.enabled:
        return NOOP_SPAN
    batch_span = tracer.start(
        BATCH_SPAN,
        {TASK_ID: batch.task_id, KEY_COUNT: keys, ORDER_COUNT: len(orders)},
        links=[(o.entry.trace, {ORDER_KEY: o.order_key}) for o in orders if o.entry.trace],
        start_s=started_s,
    )
    batch_link = batch_span.traceparent
    for order in orders:
        entry = order.entry
        order.span = tracer.start(
            ORDER_SPAN,
            {
                ORDER_KEY: order.order_key,
                TASK_ID: batch.task_id,
                ATTEMPT: entry.attempts + 1,
                DELIVERY: entry.deliveries_started,
            },
            # The producer's context when stored; else under this batch's span.
            parent=entry.trace or batch_link,
            links=[(batch_link, {})] if entry.trace and batch_link else (),
            start_s=started_s,
        )
    return batch_span


def close_spans(batch_span: Span, orders: Sequence[LockedOrder]) -> None:
    """End every order's span with its outcome, then the batch span (after the flush)."""
    for order in orders:
        span = order.span
        if span is NOOP_SPAN:
            continue
        label, reason = outcome_of(order)
        span.set_attribute(OUTCOME, label)
        span.set_attribute(OUTCOME_REASON, reason)
        span.add_event(OUTCOME_EVENT, {OUTCOME: label, OUTCOME_REASON: reason})
        if label == "none":
            span.set_error("delivery ended without an outcome")
        span.end()
    batch_span.end()


def outcome_of(order: LockedOrder) -> tuple[str, str]:
    """(outcome, reason) of an order's delivery as the flush wrote it."""
    outcome = order.outcome
    if isinstance(outcome, Submitted):
        return "accepted", "sent" if outcome.attempt is not None else "same_payload"
    if isinstance(outcome, Retry):
        if outcome.attempt is not None and outcome.attempt.error_class:
            return "retry", outcome.attempt.error_class
        return "retry", "backoff" if outcome.spend_attempt else "wait"
    if isinstance(outcome, Dead):
        return "dead", str(outcome.reason)
    if order.outcome_written:
        return "cancelled", "cancelled_upstream"
    return "none", "started" if order.started else "not_started"


def traced_submit(jetti: JettiSubmit, order: LockedOrder, body: bytes) -> SubmitAnswer:
    """`jetti.submit(body)` inside a `jetti_relay.jetti_call` span under the order's span:
    the HTTP status, the attempt, Jetti's Retry-After and the error class; never the URL (it
    holds the webhook hash) nor the body."""
    span = order.span
    if span is NOOP_SPAN:
        return jetti.submit(body)
    call = span.child(
        JETTI_CALL_SPAN, {ORDER_KEY: order.order_key, ATTEMPT: order.entry.attempts + 1}
    )
    try:
        answer = jetti.submit(body)
    except Exception as exc:
        # The errors of worker.core.errors carry Jetti's answer as attributes (STYLE 2).
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            call.set_attribute(HTTP_STATUS, status)
        retry_after_s = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after_s, int | float):
            call.set_attribute(RETRY_AFTER_S, float(retry_after_s))
        call.set_attribute(ERROR_TYPE, type(exc).__name__)
        call.set_error(type(exc).__name__)
        raise
    else:
        call.set_attribute(HTTP_STATUS, answer.status)
        return answer
    finally:
        call.end()
