"""The notifier's decisions as plain functions: when a record fires or resolves, and which
message a sink is due (ops/notify/notifier.py `advance`, `due`)."""

from __future__ import annotations

import pytest

from ops.notify.notifier import advance, due
from ops.notify.rules import Reading
from worker.store.alerts import Ack, AlertRecord, AlertState, Delivery, Silence

T0 = 1_000_000.0
REPEAT_S = 60.0


def reading(holds: bool) -> Reading:
    return Reading("breaker_open", holds, 1.0, 0.0, "critical", "summary")


def state(
    record: AlertRecord, ack: Ack | None = None, silence: Silence | None = None
) -> AlertState:
    return AlertState("breaker_open", record, ack, silence)


def test_a_holding_rule_starts_a_firing_and_keeps_its_since() -> None:
    """ok -> firing at now; a later pass keeps the firing's start."""
    fired = advance(AlertRecord(), reading(True), T0)
    assert (fired.status, fired.since) == ("firing", T0)
    assert advance(fired, reading(True), T0 + 5).since == T0


def test_a_rule_that_stops_holding_resolves_the_firing() -> None:
    """firing -> resolved, keeping `since` (the firing the resolution belongs to)."""
    fired = advance(AlertRecord(), reading(True), T0)
    resolved = advance(fired, reading(False), T0 + 9)
    assert (resolved.status, resolved.since, resolved.resolved_at) == ("resolved", T0, T0 + 9)


@pytest.mark.parametrize(
    ("delivered", "now", "expected"),
    [
        (None, T0, "firing"),  # never told
        (Delivery("firing", T0, T0), T0 + REPEAT_S - 1, None),  # told, repeat not yet due
        (Delivery("firing", T0, T0), T0 + REPEAT_S, "firing"),  # repeat due
        (Delivery("resolved", T0 - 5, T0 - 50), T0, "firing"),  # told of an earlier firing
    ],
)
def test_a_firing_is_due_once_then_every_repeat(
    delivered: Delivery | None, now: float, expected: str | None
) -> None:
    record = AlertRecord(
        status="firing", since=T0, delivered={"webhook": delivered} if delivered else {}
    )
    assert due(state(record), record, "webhook", now, REPEAT_S) == expected


def test_an_ack_of_this_firing_stops_repeats_and_an_older_ack_does_not() -> None:
    record = AlertRecord(status="firing", since=T0, delivered={"w": Delivery("firing", T0, T0)})
    later = T0 + 10 * REPEAT_S
    assert due(state(record, Ack("a", T0, T0)), record, "w", later, REPEAT_S) is None
    assert due(state(record, Ack("a", T0, T0 - 99)), record, "w", later, REPEAT_S) == "firing"


def test_a_resolution_is_due_only_to_a_sink_told_of_the_firing() -> None:
    told = {"w": Delivery("firing", T0, T0)}
    record = AlertRecord(status="resolved", since=T0, resolved_at=T0 + 5, delivered=told)
    assert due(state(record), record, "w", T0 + 6, REPEAT_S) == "resolved"
    assert due(state(record), record, "slack", T0 + 6, REPEAT_S) is None


def test_nothing_is_due_while_silenced() -> None:
    record = AlertRecord(status="firing", since=T0)
    silenced = state(record, silence=Silence("b", T0, T0 + 100))
    assert due(silenced, record, "w", T0 + 1, REPEAT_S) is None
    assert due(silenced, record, "w", T0 + 100, REPEAT_S) == "firing"
