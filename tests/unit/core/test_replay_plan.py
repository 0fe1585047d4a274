"""`worker.core.replay_plan.plan`: what a replay does with an entry, from the state a previous run
left.

The decision table is what makes a killed replay safe to run again, so every row is a test.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.factories import order_entry
from worker.core.dead_entry import DeadEntry
from worker.core.replay_plan import (
    Action,
    CorrectedRaw,
    ReplayInputError,
    ReplayMode,
    parse_corrected_raw,
    plan,
    stored_built,
)
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.ledger import Version, raw_hash

RAW = b'{"id": "o-1", "lines": [{"sku": "A", "name": "Mug", "quantity": 1, "unit_price": "1"}]}'

DEAD = DeadEntry(
    order_key="o-1",
    reason=DeadReason.REJECTED,
    status=DeadStatus.DEAD,
    error="422",
    http_status=422,
    source=None,
    raw=RAW,
    payload=b'{"lineItems": []}',
    first_dead_at=1.0,
    last_dead_at=1.0,
    status_since=1.0,
    replay_count=0,
    attempts=(),
    history=(),
    payload_version=Version(0, 1),
)

ORDER = order_entry(
    RAW,
    state=OrderState.DEAD,
    deliveries_started=1,
    deliveries_finished=1,
    dead_reason=DeadReason.REJECTED,
)


@pytest.mark.parametrize(
    ("status", "state", "action"),
    [
        (DeadStatus.DEAD, OrderState.DEAD, Action.REPLAY),
        (DeadStatus.REPLAYED, OrderState.DEAD, Action.REPLAY),
        (DeadStatus.DEAD, OrderState.PENDING, Action.REPUBLISH),  # armed, killed before publish
        (
            DeadStatus.REPLAYED,
            OrderState.PENDING,
            Action.REPUBLISH,
        ),  # marked, killed before publish
        (DeadStatus.REPLAYED, OrderState.SUBMITTING, Action.IN_FLIGHT),
        (DeadStatus.DEAD, OrderState.RETRY_WAIT, Action.IN_FLIGHT),
        (DeadStatus.REPLAYED, OrderState.SUBMITTED, Action.SUBMITTED),
        (DeadStatus.RESOLVED, OrderState.SUBMITTED, Action.RESOLVED),
        (DeadStatus.RESOLVED, OrderState.DEAD, Action.RESOLVED),
    ],
)
def test_plan_follows_the_state_a_previous_run_left(
    status: DeadStatus, state: OrderState, action: Action
) -> None:
    """Only a DEAD order is armed; an armed one is re-published; anything else is left alone."""
    step = plan(
        replace(DEAD, status=status), replace(ORDER, state=state), mode=ReplayMode.RETRANSFORM
    )
    assert step.action is action


def test_plan_refuses_what_cannot_be_sent() -> None:
    """No ledger entry, an erased entry, or --resend-stored without a stored payload."""
    assert plan(DEAD, None, mode=ReplayMode.RETRANSFORM).action is Action.NOT_REPLAYABLE
    erased = replace(DEAD, erased_at=5.0)
    assert plan(erased, ORDER, mode=ReplayMode.RETRANSFORM).action is Action.NOT_REPLAYABLE
    no_payload = replace(DEAD, payload=None)
    assert plan(no_payload, ORDER, mode=ReplayMode.RESEND_STORED).action is Action.NOT_REPLAYABLE
    assert plan(no_payload, ORDER, mode=ReplayMode.RETRANSFORM).action is Action.REPLAY


def test_resend_stored_refuses_a_payload_that_is_not_of_the_latest_version() -> None:
    """A stored payload built from an older version than the ledger's latest, or of unknown
    version (stored before versions were kept), is never resent (reliability #13)."""
    newer = replace(ORDER, version=Version(0, 2))
    step = plan(DEAD, newer, mode=ReplayMode.RESEND_STORED)
    assert step.action is Action.NOT_REPLAYABLE
    assert "older version" in step.why and "without --resend-stored" in step.why
    unknown = replace(DEAD, payload_version=None)
    assert plan(unknown, ORDER, mode=ReplayMode.RESEND_STORED).action is Action.NOT_REPLAYABLE
    assert plan(DEAD, ORDER, mode=ReplayMode.RESEND_STORED).action is Action.REPLAY
    assert plan(DEAD, newer, mode=ReplayMode.RETRANSFORM).action is Action.REPLAY


def test_a_correction_only_republishes_an_order_armed_with_that_same_correction() -> None:
    """A pending order carrying the corrected raw is re-published; one carrying another raw
    order is refused (the correction would be lost)."""
    fixed = CorrectedRaw(b'{"id": "o-1", "fixed": true}', None)
    armed = replace(ORDER, state=OrderState.PENDING, raw_hash=raw_hash(fixed.body))
    other = replace(ORDER, state=OrderState.PENDING)
    mode = ReplayMode.CORRECTED_RAW
    assert plan(DEAD, armed, mode=mode, corrected=fixed).action is Action.REPUBLISH
    assert plan(DEAD, other, mode=mode, corrected=fixed).action is Action.NOT_REPLAYABLE
    erased = replace(DEAD, erased_at=5.0)
    assert plan(erased, ORDER, mode=mode, corrected=fixed).action is Action.REPLAY


def test_parse_corrected_raw_names_file_and_path_of_each_problem() -> None:
    """Every contract problem is reported as `where: path: message`; a foreign id is refused."""
    with pytest.raises(ReplayInputError) as bad:
        parse_corrected_raw(
            b'{"id": "o-1", "lines": [{"sku": "A", "name": "M", "quantity": 0,'
            b' "unit_price": "1"}]}',
            order_key="shop:o-1",
            where="fix.json",
        )
    assert "fix.json: lines[0].quantity" in str(bad.value)
    with pytest.raises(ReplayInputError, match="not the id of order"):
        parse_corrected_raw(RAW, order_key="shop:o-2", where="fix.json")
    assert parse_corrected_raw(RAW, order_key="shop:o-1", where="fix.json").updated_at is None


def test_stored_built_sends_the_bytes_unchanged_and_refuses_a_non_payload() -> None:
    """The stored payload is sent byte for byte with its line ids; garbage is refused."""
    body = b'{"externalId": "o-1", "lineItems": [{"externalId": "l1"}, {"externalId": "l2"}]}'
    built = stored_built(body)
    assert (built.body, built.line_ids) == (body, ("l1", "l2"))
    with pytest.raises(ReplayInputError):
        stored_built(b'{"externalId": "o-1"}')


def test_parse_corrected_raw_refuses_a_far_future_updated_at() -> None:
    """Reliability review #3: a typo'd year in `dlq replay --raw-file` would freeze the order
    (every later copy stale); with the caller's clock it is refused, naming the limit."""
    doc = {**json.loads(RAW), "updated_at": "2099-01-01T00:00:00Z"}
    with pytest.raises(ReplayInputError, match=r"fix\.json: updated_at: 2099-01-01T00:00:00"):
        parse_corrected_raw(
            json.dumps(doc).encode(),
            order_key="shop:o-1",
            where="fix.json",
            now_s=1_800_000_000.0,
            max_future_skew_s=86400.0,
        )


def _raw(order_id: str) -> bytes:
    return (
        b'{"id": "'
        + order_id.encode()
        + b'", "lines": [{"sku": "A", "name": "Mug", "quantity": 1, "unit_price": "1"}]}'
    )


def test_a_corrected_order_must_carry_the_stored_orders_id() -> None:
    """Key `shop-a:1001` is order 1001: a correction with id `1` (a suffix of the key) or
    `a:1001` is refused; with the stored id 1001 it is taken."""
    stored = _raw("1001")
    for wrong in ("1", "01", "a:1001"):
        with pytest.raises(ReplayInputError, match="is not the id of order"):
            parse_corrected_raw(
                _raw(wrong), order_key="shop-a:1001", where="fix.json", stored_raw=stored
            )
    assert parse_corrected_raw(
        _raw("1001"), order_key="shop-a:1001", where="fix.json", stored_raw=stored
    ).body


def test_without_a_stored_order_the_id_must_follow_a_prefix_separator() -> None:
    """With no stored order to compare, the id must be the key or the part after a `:`."""
    with pytest.raises(ReplayInputError):
        parse_corrected_raw(_raw("1"), order_key="shop-a:1001", where="fix.json")
    assert parse_corrected_raw(_raw("1001"), order_key="shop-a:1001", where="fix.json").body
    assert parse_corrected_raw(_raw("1001"), order_key="1001", where="fix.json").body
