"""Cancellations against the sandbox: an order cancelled upstream ends cancelled in Jetti (or
locally when Jetti never had it), with the import path's retry and dead-letter handling.

The precise tests drive a `Canceller` in this process on the test Redis and the sandbox over
HTTP; the end-to-end ones run real `jetti-relay worker` processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis

from producers import enqueue
from tests.fixtures.ledger import deliver, submit
from tests.fixtures.pipeline import PipelineFactory, wait_until
from worker.celery_app import create_app
from worker.core.contract import parse_raw_order
from worker.core.jsonio import dumps_canonical
from worker.core.keys import Keys
from worker.core.records import OrderEntry
from worker.core.rules import Rules
from worker.core.states import DeadReason, OrderState
from worker.core.transform import transform
from worker.pipeline.canceller import Canceller, cancellation
from worker.publisher import Publisher
from worker.runtime import build_canceller
from worker.settings import Settings
from worker.store.breaker import Breaker
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import DeliveryAction, Ledger, NewVersion
from worker.store.stats import Stats
from worker.wiring import build_http_client, build_jetti_client, limiter

pytestmark = pytest.mark.integration

CANCELLED_AT = "2026-11-27T12:00:00+00:00"


def raw_order(
    order_id: str, *, updated_at: str = "2026-11-27T10:00:00+00:00", cancelled: bool = False
) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": order_id,
        "number": f"#{order_id}",
        "updated_at": updated_at,
        "lines": [
            {
                "id": f"{order_id}-l1",
                "sku": "SKU-1",
                "name": "Item 1",
                "quantity": 2,
                "unit_price": "12.10",
            }
        ],
        "auto_connect_by_sku": True,
    }
    if cancelled:
        order.update(cancelled_at=CANCELLED_AT, cancel_reason="customer changed their mind")
    return order


class Desk:
    """A canceller in this process, the ledger and the dead letters of one test."""

    def __init__(self, redis_url: str, sandbox: Any, **overrides: Any) -> None:
        self.sandbox = sandbox
        self.client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
        self.keys = Keys("jr")
        self.ledger = Ledger(self.client, self.keys)
        self.dead = DeadLetters(self.client, self.keys)
        self.settings = Settings(
            redis_url=redis_url,
            broker_url=redis_url,
            jetti_async_url=sandbox.webhook_url,
            jetti_api_url=sandbox.base_url,
            api_token=sandbox.api_token,
            webhook_hash=sandbox.webhook_hash,
            **{
                "channel_id": sandbox.channel_id,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.2,
                "max_attempts": 3,
                **overrides,
            },
        )
        self.http = build_http_client(self.settings)
        self.jetti = build_jetti_client(self.settings, self.http)
        self.publisher = Publisher(create_app(self.settings), batch_size=10)
        self.canceller: Canceller = build_canceller(
            self.settings,
            client=self.client,
            keys=self.keys,
            ledger=self.ledger,
            worker_id="test:1",
            jetti=self.jetti,
            limiter=limiter(self.client, self.keys, self.settings),
            breaker=Breaker(self.client, self.keys, probe_s=1.0),
            dead_letters=self.dead,
            publisher=self.publisher,
            stats=Stats(self.client, self.keys),
        )

    def record(self, order: dict[str, Any]) -> None:
        raw = dumps_canonical(order)
        updated = datetime.fromisoformat(order["updated_at"])
        self.ledger.record(NewVersion(order["id"], raw, updated, None), now=time.time())

    def begin(self, key: str) -> OrderEntry:
        delivery = deliver(
            self.ledger,
            self.keys,
            key,
            task_id="t",
            worker="test:1",
            now=time.time(),
            max_unfinished=5,
        )
        assert delivery.action is DeliveryAction.PROCEED and delivery.entry is not None
        return delivery.entry

    def submitted(
        self,
        key: str,
        entry: OrderEntry,
        payload_hash: str,
        line_ids: Sequence[str],
        *,
        sale_id: int | None = None,
        now: float | None = None,
    ) -> None:
        """Jetti accepted the version in `entry` (begun with `begin`): the worker's outcome."""
        submit(
            self.ledger,
            self.keys,
            key,
            sent=entry.version,
            payload_hash=payload_hash,
            line_ids=tuple(line_ids),
            sale_id=sale_id,
            now=time.time() if now is None else now,
        )

    def import_async(self, order: dict[str, Any], *, record_sale_id: bool = False) -> None:
        """Record, submit to the async endpoint and mark submitted, as the worker would
        (`record_sale_id`: with the sale id in the ledger, as sync mode records it)."""
        self.record(order)
        entry = self.begin(order["id"])
        built = transform(parse_raw_order(order), Rules.empty())
        self.jetti.submit(built.body)
        self.sandbox.wait_applied()
        sale_id = self.sandbox.sales(order["id"])[0]["id"] if record_sale_id else None
        self.submitted(order["id"], entry, built.payload_hash, built.line_ids, sale_id=sale_id)

    def close(self) -> None:
        self.http.close()
        self.client.close()


@pytest.fixture
def desk(redis_url: str, sandbox: Any) -> Iterator[Desk]:
    d = Desk(redis_url, sandbox)
    yield d
    d.close()


def test_only_a_cancelled_latest_version_is_a_cancellation(desk: Desk) -> None:
    desk.record(raw_order("plain"))
    assert cancellation(desk.begin("plain")) is None
    desk.record(raw_order("gone", cancelled=True))
    order = cancellation(desk.begin("gone"))
    assert order is not None and order.cancel_reason == "customer changed their mind"


def test_imported_order_is_cancelled_in_jetti(desk: Desk, sandbox: Any) -> None:
    """v1 imported (async, no sale id known); v2 carries cancelled_at: the sale id is looked up
    by externalId and the sale cancelled. Ends CANCELLED with the sale id recorded."""
    desk.import_async(raw_order("c-1"))
    desk.record(raw_order("c-1", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    entry = desk.begin("c-1")
    assert desk.canceller.handle(entry, now=time.time())
    sale = sandbox.sales("c-1")[0]
    assert sale["cancelled"] is True and sale["cancellationStatus"] == "full"
    after = desk.ledger.get("c-1")
    assert after is not None and after.state is OrderState.CANCELLED
    assert after.sale_id == sale["id"]
    assert desk.ledger.cancelled_via("c-1") == "jetti"
    assert sandbox.stats()["cancellations"] == 1
    paths = [r["path"] for r in sandbox.requests()]
    assert paths == ["/api/sales.json", f"/api/sales/{sale['id']}/cancel.json"]


def test_cancelled_before_it_was_ever_imported_is_not_imported(desk: Desk, sandbox: Any) -> None:
    """The first version already carries cancelled_at and Jetti has no such sale: CANCELLED
    locally, nothing is sent to Jetti but the one lookup."""
    desk.record(raw_order("c-2", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-2"), now=time.time())
    after = desk.ledger.get("c-2")
    assert after is not None and after.state is OrderState.CANCELLED
    assert desk.ledger.cancelled_via("c-2") == "not_imported"
    assert sandbox.sales("c-2") == [] and sandbox.history("c-2") == []
    assert [r["path"] for r in sandbox.requests()] == ["/api/sales.json"]


def test_accepted_but_not_yet_in_jetti_is_retried_not_dropped(desk: Desk, sandbox: Any) -> None:
    """A version was accepted but its sale is not in Jetti yet (still queued there): retry."""
    desk.record(raw_order("c-3"))
    entry = desk.begin("c-3")
    desk.submitted("c-3", entry, "x", ["c-3-l1"])
    desk.record(raw_order("c-3", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-3"), now=time.time())
    after = desk.ledger.get("c-3")
    assert after is not None and after.state is OrderState.RETRY_WAIT and after.attempts == 1


def test_accepted_long_ago_without_a_verdict_is_retried_not_dropped(
    desk: Desk, sandbox: Any
) -> None:
    """reliability #4b: accepted an hour ago (beyond any fixed grace), no sale yet and no row in
    Jetti's import log: Jetti's queue may be behind, so the cancel is retried, never dropped as
    `not_imported` on a timer."""
    desk.record(raw_order("c-6"))
    entry = desk.begin("c-6")
    desk.submitted("c-6", entry, "x", ["c-6-l1"], now=time.time() - 3600)
    desk.record(raw_order("c-6", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-6"), now=time.time())
    after = desk.ledger.get("c-6")
    assert after is not None and after.state is OrderState.RETRY_WAIT
    assert desk.ledger.cancelled_via("c-6") is None
    paths = [r["path"] for r in sandbox.requests()]
    assert paths == ["/api/sales.json", "/api/sale-imports.json"]


def test_an_import_the_log_shows_as_error_is_cancelled_locally(desk: Desk, sandbox: Any) -> None:
    """Evidence, not a timer: the accepted async import is logged `error` by Jetti (no sale
    will come), so the cancellation ends CANCELLED `not_imported` at once, nothing posted."""
    sandbox.set_faults(reject_matching=['"externalId":"c-7"'])
    desk.import_async(raw_order("c-7"))
    assert sandbox.sales("c-7") == []
    desk.record(raw_order("c-7", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-7"), now=time.time())
    assert desk.ledger.get("c-7").state is OrderState.CANCELLED  # type: ignore[union-attr]
    assert desk.ledger.cancelled_via("c-7") == "not_imported"
    assert sandbox.stats()["cancel_posts"] == 0


def test_an_import_pending_past_the_retry_budget_is_dead_lettered_saying_why(
    desk: Desk, sandbox: Any
) -> None:
    """No sale and no verdict, attempt after attempt: once the retry budget is spent the
    cancellation is a dead letter whose error says the import may still be queued."""
    desk.record(raw_order("c-8"))
    entry = desk.begin("c-8")
    desk.submitted("c-8", entry, "x", ["c-8-l1"])
    desk.record(raw_order("c-8", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    for _ in range(desk.settings.max_attempts + 1):
        current = desk.ledger.get("c-8")
        assert current is not None
        if current.state is OrderState.DEAD:
            break
        time.sleep(max(0.0, (current.next_attempt_at or 0) - time.time()))
        desk.canceller.handle(desk.begin("c-8"), now=time.time())
    dead = desk.dead.get("c-8")
    assert dead is not None and dead.reason is DeadReason.RETRIES_EXHAUSTED
    assert "may still be queued" in dead.error


@pytest.mark.parametrize("filter_ignored", [False, True])
def test_the_lookup_never_takes_another_channels_sale(
    desk: Desk, sandbox: Any, filter_ignored: bool
) -> None:
    """reliability #4a: another channel of the account has a sale with the same externalId
    (returned first by an unfiltered lookup). The lookup asks for our channel and checks each
    row's channelId, so only our sale is cancelled, even when Jetti ignores the filter."""
    desk.import_async(raw_order("c-9"))
    sandbox.add_foreign_sale("c-9", sandbox.channel_id + 1000)
    sandbox.set_faults(ignore_channel_filter=filter_ignored)
    desk.record(raw_order("c-9", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-9"), now=time.time())
    assert sandbox.sales("c-9")[0]["cancellationStatus"] == "full"
    (foreign,) = sandbox.foreign_sales("c-9")
    assert foreign["cancellationStatus"] == "none" and "cancelPosts" not in foreign
    lookup = sandbox.requests("/api/sales.json")[0]
    assert f"where%5BchannelId%5D={sandbox.channel_id}" in lookup["query"]
    assert Stats(desk.client, desk.keys).surprises()["sale_other_channel"] == int(filter_ignored)


def test_only_another_channels_sale_means_never_imported(desk: Desk, sandbox: Any) -> None:
    """Never imported by us, but another channel has a sale with that externalId: cancelled
    locally (`not_imported`), the other channel's sale untouched."""
    sandbox.add_foreign_sale("c-10", sandbox.channel_id + 1000)
    desk.record(raw_order("c-10", cancelled=True))
    assert desk.canceller.handle(desk.begin("c-10"), now=time.time())
    assert desk.ledger.cancelled_via("c-10") == "not_imported"
    assert sandbox.foreign_sales("c-10")[0]["cancellationStatus"] == "none"
    assert sandbox.stats()["cancel_posts"] == 0


def test_without_a_channel_id_a_cancellation_is_dead_lettered_saying_so(
    redis_url: str, sandbox: Any
) -> None:
    """Async mode without JETTI_RELAY_CHANNEL_ID: the lookup cannot be limited to our channel,
    so nothing is looked up or posted; the dead letter names the missing setting."""
    desk = Desk(redis_url, sandbox, channel_id=None)
    try:
        desk.record(raw_order("c-11", cancelled=True))
        assert desk.canceller.handle(desk.begin("c-11"), now=time.time())
        dead = desk.dead.get("c-11")
        assert dead is not None and dead.reason is DeadReason.REJECTED
        assert "JETTI_RELAY_CHANNEL_ID" in dead.error
        assert sandbox.requests() == []
    finally:
        desk.close()


@pytest.mark.parametrize("sale_id_known", [True, False])
def test_a_cancel_that_took_effect_before_a_timeout_is_not_posted_again(
    redis_url: str, sandbox: Any, sale_id_known: bool
) -> None:
    """reliability #4c: the first cancel POST is applied by Jetti but its answer times out
    (OutcomeUnknown, retried). The retry reads the sale first and sees `cancellationStatus`
    full, so exactly one cancel POST reaches Jetti, whether the ledger knew the sale id (sync
    mode) or not, and even when Jetti leaves the `cancelled` flag false."""
    desk = Desk(redis_url, sandbox, http_read_timeout_s=0.5)
    try:
        desk.import_async(raw_order("c-12"), record_sale_id=sale_id_known)
        sale_id = sandbox.sales("c-12")[0]["id"]
        assert desk.ledger.get("c-12").sale_id == (sale_id if sale_id_known else None)  # type: ignore[union-attr]
        desk.record(raw_order("c-12", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
        sandbox.set_faults(cancel_then_timeout=1, slow_s=2, cancel_status_only=True)
        desk.canceller.handle(desk.begin("c-12"), now=time.time())
        first = desk.ledger.get("c-12")
        assert first is not None and first.state is OrderState.RETRY_WAIT
        time.sleep(max(0.0, (first.next_attempt_at or 0) - time.time()))
        desk.canceller.handle(desk.begin("c-12"), now=time.time())
        after = desk.ledger.get("c-12")
        assert after is not None and after.state is OrderState.CANCELLED
        assert desk.ledger.cancelled_via("c-12") == "jetti" and after.sale_id == sale_id
        assert sandbox.stats()["cancel_posts"] == 1
        assert sandbox.sales("c-12")[0]["cancelPosts"] == 1
    finally:
        desk.close()


def test_cancel_failures_retry_then_succeed(desk: Desk, sandbox: Any) -> None:
    """Two 503s from the cancel route: retried with backoff (attempts spent), then CANCELLED."""
    desk.import_async(raw_order("c-4"))
    desk.record(raw_order("c-4", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    sandbox.set_faults(fail_next=2, fail_next_status=503, endpoints=["cancel"])
    for _ in range(3):
        entry = desk.ledger.get("c-4")
        assert entry is not None
        if entry.state is OrderState.CANCELLED:
            break
        if entry.next_attempt_at:
            time.sleep(max(0.0, entry.next_attempt_at - time.time()))
        desk.canceller.handle(desk.begin("c-4"), now=time.time())
    after = desk.ledger.get("c-4")
    assert after is not None and after.state is OrderState.CANCELLED
    statuses = [a.status for a in desk.ledger.attempts("c-4")]
    assert statuses.count(503) == 2
    assert sandbox.sales("c-4")[0]["cancelled"] is True


def test_cancel_refused_by_jetti_is_dead_lettered(desk: Desk, sandbox: Any) -> None:
    """A 404 on the cancel POST (Jetti does not know the sale) is permanent: dead letter
    `rejected`."""
    desk.import_async(raw_order("c-5"))
    desk.record(raw_order("c-5", updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
    sandbox.set_faults(fail_next=1, fail_next_status=404, endpoints=["cancel"])
    desk.canceller.handle(desk.begin("c-5"), now=time.time())
    dead = desk.dead.get("c-5")
    assert dead is not None and dead.reason is DeadReason.REJECTED and "404" in dead.error
    assert desk.ledger.get("c-5").state is OrderState.DEAD  # type: ignore[union-attr]


def test_pipeline_cancels_an_imported_order(
    desk: Desk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """End to end: imported by the worker, then cancelled upstream: cancelled in the sandbox."""
    start_pipeline(JETTI_RELAY_RECONCILE_ENABLED="false")
    publisher = desk.publisher
    enqueue([raw_order("e2e-c")], client=desk.client, publisher=publisher)
    wait_until(
        lambda: desk.ledger.get("e2e-c").state is OrderState.SUBMITTED,  # type: ignore
        what="import",
    )
    enqueue(
        [
            raw_order("e2e-c", updated_at="2026-11-27T12:00:00+00:00", cancelled=True),
            raw_order("e2e-never", cancelled=True),
        ],
        client=desk.client,
        publisher=publisher,
    )
    wait_until(
        lambda: all(
            desk.ledger.get(k).state is OrderState.CANCELLED  # type: ignore
            for k in ("e2e-c", "e2e-never")
        ),
        what="cancellations",
    )
    assert sandbox.sales("e2e-c")[0]["cancelled"] is True
    assert sandbox.sales("e2e-never") == []
    assert len(sandbox.history("e2e-c")) == 1  # the cancelled version was not imported
    with httpx.Client() as http:
        assert http.get(f"{sandbox.base_url}/_sandbox/stats").json()["cancellations"] == 1


def test_cancellations_keep_to_jettis_sync_limits(redis_url: str, sandbox_factory: Any) -> None:
    """With Jetti's throttle on, back-to-back cancellations take the fleet's read and write
    budgets: at most 1 cancel and 2 reads in any one-second window, and no 429."""
    from collections import Counter

    jetti = sandbox_factory(throttle=True)
    desk = Desk(redis_url, jetti)
    try:
        keys = [f"lim-{n}" for n in range(3)]
        for key in keys:
            desk.import_async(raw_order(key))
            desk.record(raw_order(key, updated_at="2026-11-27T12:00:00+00:00", cancelled=True))
        for key in keys:
            entry = desk.begin(key)
            for _ in range(10):
                if desk.ledger.get(key).state is OrderState.CANCELLED:  # type: ignore
                    break
                desk.canceller.handle(entry, now=time.time())
                after = desk.ledger.get(key)
                if after is not None and after.state is OrderState.RETRY_WAIT:
                    time.sleep(max(0.0, (after.next_attempt_at or 0) - time.time()))
                    entry = desk.begin(key)
        assert all(jetti.sales(k)[0]["cancelled"] for k in keys)
        log = jetti.requests()
        cancels = Counter(int(r["at"]) for r in log if r["path"].endswith("/cancel.json"))
        reads = Counter(int(r["at"]) for r in log if r["method"] == "GET")
        assert sum(cancels.values()) == 3 and max(cancels.values()) == 1
        assert max(reads.values()) <= 2
        statuses = jetti.stats()["requests"]
        assert "429" not in statuses.get("cancel", {}) and "429" not in statuses.get("read", {})
    finally:
        desk.close()


def test_a_cancellation_is_never_lost_as_stale_and_later_copies_are_not_sent(
    desk: Desk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Reliability review #3, end to end: after an import stamped 14:00, a cancellation stamped
    earlier, or without updated_at, used to be STALE and the sale lived on. Both now cancel the
    sale in the sandbox; a later copy without cancelled_at is after_cancel, not sent."""
    start_pipeline(JETTI_RELAY_RECONCILE_ENABLED="false")
    keys = ("e2e-older", "e2e-unstamped")
    late = "2026-11-27T14:00:00+00:00"
    enqueue(
        [raw_order(k, updated_at=late) for k in keys], client=desk.client, publisher=desk.publisher
    )
    wait_until(
        lambda: all(
            desk.ledger.get(k).state is OrderState.SUBMITTED  # type: ignore
            for k in keys
        ),
        what="imports",
    )
    unstamped = raw_order(keys[1], cancelled=True)
    del unstamped["updated_at"]

    cancels = enqueue(
        [raw_order(keys[0], cancelled=True), unstamped],
        client=desk.client,
        publisher=desk.publisher,
    )

    assert (cancels.updated, cancels.stale) == (2, 0)
    wait_until(
        lambda: all(
            desk.ledger.get(k).state is OrderState.CANCELLED  # type: ignore
            for k in keys
        ),
        what="cancellations",
    )
    for key in keys:
        assert sandbox.sales(key)[0]["cancelled"] is True

    later = enqueue(
        [raw_order(k, updated_at="2026-11-27T15:00:00+00:00") for k in keys],
        client=desk.client,
        publisher=desk.publisher,
    )

    assert (later.after_cancel, later.updated, later.messages) == (2, 0, 0)
    assert [i.order_key for i in later.ignored] == list(keys)
    for key in keys:
        entry = desk.ledger.get(key)
        assert entry is not None and entry.state is OrderState.CANCELLED
        assert entry.raw is not None and b"cancelled_at" in entry.raw
        assert len(sandbox.history(key)) == 1  # only the first import reached Jetti
