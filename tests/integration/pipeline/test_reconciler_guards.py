"""The reconciler against a sandbox that answers the way Jetti might where its API is
undocumented (reliability #5, #16): page caps, an ignored offset, sales without lines or with
catalogue names and rounded prices, import-log rows that show up late. Each test switches one
sandbox behaviour on and drives a `Reconciler` in this process over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.factories import raw_order
from tests.fixtures.ledger import deliver, submit
from tests.fixtures.reconciler import ReconcilerHarness
from worker.core.jsonio import dumps_canonical
from worker.core.states import DeadReason, OrderState
from worker.runtime import build_rebuild
from worker.store.ledger import DeliveryAction, NewVersion
from worker.store.ledger_schema import OrderField
from worker.store.stats import Stats

pytestmark = pytest.mark.integration


@pytest.fixture
def books(redis_url: str, sandbox: Any) -> Iterator[ReconcilerHarness]:
    b = ReconcilerHarness(redis_url, sandbox)
    yield b
    b.close()


def send(books: ReconcilerHarness, order: dict[str, Any], *, post: bool = True) -> None:
    """Record a version, deliver it as the worker would (POST to the async endpoint unless
    `post` is False) and mark it SUBMITTED with the payload the reconciler rebuilds."""
    key = order["id"]
    raw = dumps_canonical(order)
    books.ledger.record(
        NewVersion(key, raw, datetime.fromisoformat(order["updated_at"]), None), now=time.time()
    )
    delivery = deliver(
        books.ledger,
        books.keys,
        key,
        task_id="t",
        worker="test:1",
        now=time.time(),
        max_unfinished=5,
    )
    assert delivery.action is DeliveryAction.PROCEED and delivery.entry is not None
    built = build_rebuild(books.settings)(key, raw)
    assert built is not None
    if post:
        with httpx.Client() as http:
            http.post(
                books.sandbox.webhook_url,
                content=built.body,
                headers={"jetti-webhook-hash": books.sandbox.webhook_hash},
            ).raise_for_status()
        books.sandbox.wait_applied()
    submit(
        books.ledger,
        books.keys,
        key,
        sent=delivery.entry.version,
        payload_hash=built.payload_hash,
        line_ids=tuple(built.line_ids),
        sale_id=None,
        now=time.time() - 1,
    )


def junk_errors(sandbox: Any, count: int) -> None:
    """`count` error rows in the import log, older than anything the test sends next."""
    with httpx.Client() as http:
        for n in range(count):
            http.post(
                sandbox.webhook_url,
                content=b'{"externalId": "junk-%d"}' % n,
                headers={"jetti-webhook-hash": sandbox.webhook_hash},
            )
    sandbox.wait_applied()


def surprises(books: ReconcilerHarness) -> dict[str, int]:
    return Stats(books.client, books.keys).surprises()


def test_a_page_cap_below_the_limit_still_reads_every_error(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """Jetti caps pages at 100 while the reconciler asks 1,000: the rejection on row 151 is
    still read (the order is dead-lettered, not confirmed) and the cap is counted."""
    junk_errors(sandbox, 150)
    sandbox.set_faults(reject_matching=['"externalId":"cap-1"'], imports_page_cap=100)
    send(books, raw_order("cap-1"))
    report = books.reconciler(grace_s=0.0).run_once()
    assert report.error is None and report.rows_read == 151
    assert books.state("cap-1") is OrderState.DEAD
    assert books.dead.get("cap-1").reason is DeadReason.REJECTED_BY_JETTI  # type: ignore[union-attr]
    assert surprises(books)["page_short"] == 1


def test_an_ignored_offset_ends_the_pass_without_confirming(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """Jetti ignores `offset` (every page is page one): the pass stops at the first repeated
    page instead of looping, confirms nothing (a rejection may be on a page it cannot reach),
    keeps its checkpoint, records the run as not finished and counts `offset_ignored`."""
    junk_errors(sandbox, 150)
    sandbox.set_faults(
        reject_matching=['"externalId":"off-1"'], imports_page_cap=100, imports_ignore_offset=True
    )
    send(books, raw_order("off-1"))
    send(books, raw_order("off-2"))
    report = books.reconciler(grace_s=0.0).run_once()
    assert report.error is not None and "incomplete" in report.error
    assert report.confirmed == 0
    assert books.state("off-1") is OrderState.SUBMITTED
    assert books.state("off-2") is OrderState.SUBMITTED
    assert surprises(books)["offset_ignored"] == 1
    assert len(sandbox.requests("/api/sale-imports.json")) <= 3  # two pages, plus the trailing read


@pytest.mark.parametrize(
    ("fault", "assumption"),
    [
        ("sales_without_lines", "sale_without_lines"),
        ("sales_catalogue_fields", "sale_fields_differ"),
    ],
)
def test_a_sale_shown_differently_is_confirmed_not_resent(
    books: ReconcilerHarness, sandbox: Any, fault: str, assumption: str
) -> None:
    """An order with two versions is checked against its sale. A sale answer without lineItems,
    or with the catalogue's names and prices rounded to cents, is no sign of an out-of-order
    application: confirmed, not re-sent (and never dead-lettered), the surprise counted."""
    key = f"shape-{assumption}"
    send(books, raw_order(key, quantity=1))
    order = raw_order(key, updated_at="2026-11-27T11:00:00+00:00", quantity=2)
    for line in order["lines"]:
        line["unit_price"] = "12.105"
    send(books, order)
    sandbox.set_faults(**{fault: True})
    report = books.reconciler(grace_s=0.0).run_once()
    assert (report.confirmed, report.repaired, report.rejected) == (1, 0, 0)
    assert books.state(key) is OrderState.CONFIRMED
    assert len(sandbox.history(key)) == 2
    assert surprises(books)[assumption] == 1


def test_a_sale_that_still_differs_after_the_resends_is_confirmed_not_dead_lettered(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """Resent MAX_REPAIRS times and the sale's quantities still differ, with no error in the
    import log: no positive signal of a rejection, so no dead letter; confirmed and counted."""
    send(books, raw_order("still-1", quantity=1))
    send(
        books, raw_order("still-1", updated_at="2026-11-27T11:00:00+00:00", quantity=3), post=False
    )
    books.client.hset(books.keys.order("still-1"), OrderField.REPAIRS, 3)
    report = books.reconciler(grace_s=0.0).run_once()
    assert report.rejected == 0 and report.confirmed == 1
    assert books.state("still-1") is OrderState.CONFIRMED and books.dead.get("still-1") is None
    assert surprises(books)["sale_still_differs"] == 1


def test_an_error_row_that_shows_up_late_is_caught_by_the_trailing_window(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """reliability #16: Jetti stamps the rejection two hours before it shows it (a backlog,
    createdAt = receipt). No regular window holds it, so the order is confirmed; the trailing
    re-read of the last day finds the row and dead-letters the confirmed order."""
    sandbox.set_faults(reject_matching=['"externalId":"late-1"'], imports_backdate_s=7200)
    send(books, raw_order("late-1"))
    report = books.reconciler(grace_s=0.0).run_once()
    assert books.state("late-1") is OrderState.DEAD
    assert report.confirmed == 1 and report.trailing_reads == 1
    dead = books.dead.get("late-1")
    assert dead is not None and dead.reason is DeadReason.REJECTED_BY_JETTI
    assert surprises(books)["error_after_confirmed"] == 1


def test_the_trailing_window_is_read_at_a_lower_rate(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """The trailing re-read runs on the first pass, then not again within TRAILING_EVERY_S."""
    reconciler = books.reconciler(grace_s=0.0)
    assert [reconciler.run_once().trailing_reads for _ in range(3)] == [1, 0, 0]
