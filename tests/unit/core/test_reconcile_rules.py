"""The reconciler's pure verdicts (worker.core.reconcile_rules): payload matching, sale
comparison, whether an error row is about the payload last sent, a missing dead letter, and the
stored status's reading."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from worker.core.answers import ImportRow, Sale
from worker.core.dead_entry import DeadEntry
from worker.core.jsonio import dumps_canonical, payload_hash
from worker.core.reconcile_rules import (
    ConfirmCandidate,
    ReconcileStatus,
    canonical_hash,
    lacks_letter,
    refers_to_last_sent,
    sale_matches,
)
from worker.core.records import OrderEntry, Version
from worker.core.states import DeadReason, DeadStatus, OrderState

PAYLOAD = {
    "externalId": "A-1",
    "lineItems": [{"externalId": "l1", "name": "Mug", "quantity": 2, "price": Decimal("12.1")}],
}


def test_a_logged_payload_hashes_like_the_body_we_sent() -> None:
    """A payload parsed back from Jetti's log hashes like the bytes sent; a changed quantity
    does not."""
    body = dumps_canonical(PAYLOAD)
    logged = json.loads(body, parse_float=Decimal)  # as the client parses Jetti's answer
    assert canonical_hash(logged) == payload_hash(body)
    changed = json.loads(body.replace(b'"quantity":2', b'"quantity":3'), parse_float=Decimal)
    assert canonical_hash(changed) != payload_hash(body)


def test_sale_matches_differs_only_on_a_missing_line_or_quantity() -> None:
    """reliability #5a: only line ids and quantities decide; a price or name Jetti shows
    differently, or a sale without lines to compare, is not a difference."""

    def sale(quantity: int, price: str) -> Sale:
        return Sale(
            id=1,
            external_id="A-1",
            cancelled_flag=False,
            line_items=(
                {
                    "id": 9,
                    "externalId": "l1",
                    "name": "Mug",
                    "quantity": quantity,
                    "price": Decimal(price),
                },
            ),
        )

    assert sale_matches(sale(2, "12.10"), PAYLOAD)
    assert not sale_matches(sale(1, "12.1"), PAYLOAD)
    assert sale_matches(sale(2, "12.11"), PAYLOAD)
    assert sale_matches(Sale(1, "A-1", False, (), has_lines=False), PAYLOAD)
    assert not sale_matches(Sale(1, "A-1", False, ({"externalId": "l9", "quantity": 2},)), PAYLOAD)


def test_status_is_behind_after_three_intervals_without_success() -> None:
    """The reconciler is behind once three intervals (or the grace, if longer) pass without
    success."""
    status = ReconcileStatus(
        checkpoint=100.0,
        last_run_at=100.0,
        last_ok_at=100.0,
        last_error=None,
        holder="h",
        interval_s=30.0,
        grace_s=60.0,
        counts={},
    )
    assert not status.behind(189.0) and status.behind(191.0)
    assert status.lag_s(130.0) == 30.0


SENT = dumps_canonical(PAYLOAD)
ENTRY = OrderEntry(
    order_key="A-1",
    raw=b"{}",
    raw_hash="r",
    version=Version(0, 1),
    state=OrderState.SUBMITTED,
    state_since=1000.0,
    first_seen_at=900.0,
    enqueued_at=900.0,
    submitted_at=1000.0,
    source=None,
    payload_hash=payload_hash(SENT),
    sent_version=Version(0, 1),
    line_ids=("l1",),
    sale_id=None,
    attempts=1,
    first_failure_at=None,
    next_attempt_at=None,
    deliveries_started=1,
    deliveries_finished=1,
    dead_reason=None,
    last_error=None,
    stale_arrivals=0,
)


def row(created_at: float, payload: object = None) -> ImportRow:
    return ImportRow(
        id=7,
        created_at=created_at,
        status="error",
        external_id="A-1",
        sale_id=None,
        problem="bad",
        payload=payload,
    )


def test_an_error_row_with_a_payload_refers_to_the_last_sent_by_its_hash() -> None:
    """A logged payload decides by its canonical hash, whatever the row's time."""
    logged = json.loads(SENT, parse_float=Decimal)
    assert refers_to_last_sent(row(0.0, logged), ENTRY, tolerance_s=60.0) is True
    logged["externalId"] = "A-2"
    assert refers_to_last_sent(row(2000.0, logged), ENTRY, tolerance_s=60.0) is False


def test_an_error_row_without_a_payload_refers_to_the_last_sent_by_its_time() -> None:
    """Without a payload, the row must be no older than the submission minus the tolerance."""
    assert refers_to_last_sent(row(940.0), ENTRY, tolerance_s=60.0) is True
    assert refers_to_last_sent(row(939.0), ENTRY, tolerance_s=60.0) is False


def test_an_order_not_waiting_on_jettis_verdict_has_nothing_to_decide() -> None:
    """A PENDING order, or one without a payload hash, gets no verdict (None)."""
    assert (
        refers_to_last_sent(row(2000.0), replace(ENTRY, state=OrderState.PENDING), tolerance_s=0)
        is None
    )
    assert (
        refers_to_last_sent(row(2000.0), replace(ENTRY, payload_hash=None), tolerance_s=0) is None
    )


def test_a_rejected_order_lacks_its_letter_until_one_is_written_after_it_died() -> None:
    """DEAD by an import-log rejection no later than the row, with no letter since: a pass
    crashed between the ledger write and the dead letter."""
    dead = replace(
        ENTRY, state=OrderState.DEAD, state_since=1500.0, dead_reason=DeadReason.REJECTED_BY_JETTI
    )
    letter = DeadEntry(
        order_key="A-1",
        reason=DeadReason.REJECTED_BY_JETTI,
        status=DeadStatus.DEAD,
        error="e",
        http_status=None,
        source=None,
        raw=None,
        payload=None,
        first_dead_at=1500.0,
        last_dead_at=1500.0,
        status_since=1500.0,
        replay_count=0,
        attempts=(),
        history=(),
    )
    assert lacks_letter(dead, row(1400.0), None)
    assert lacks_letter(dead, row(1400.0), replace(letter, last_dead_at=1000.0))
    assert not lacks_letter(dead, row(1400.0), letter)
    assert not lacks_letter(dead, row(1600.0), None)  # the row is newer than the death
    assert not lacks_letter(replace(dead, dead_reason=DeadReason.REJECTED), row(1400.0), None)


def test_a_confirm_candidate_needs_its_state_and_hash_and_flags_several_versions() -> None:
    """Only a SUBMITTED member with a payload hash is confirmable; one enqueued again after it
    was first seen had several versions (its sale is checked first)."""
    candidate = ConfirmCandidate("A-1", "submitted", "h", enqueued_at=5.0, first_seen_at=5.0)
    assert candidate.confirmable and not candidate.had_versions
    assert not replace(candidate, state="confirmed").confirmable
    assert not replace(candidate, payload_hash=None).confirmable
    assert replace(candidate, enqueued_at=6.0).had_versions
