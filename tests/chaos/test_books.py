"""The books checker itself, against a real Redis ledger and hand-written Jetti records (history
and cancelled sales): it must see a lost order, a harmful duplicate, a harmless one, a regression
and a cancellation that did not take effect in Jetti exactly once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import redis

from ops.chaos.books import Books, SaleCancellation, check_books
from ops.chaos.flow import raw_order
from tests.fixtures.ledger import submit
from worker.core.contract import parse_raw_order
from worker.core.jsonio import loads_document
from worker.core.keys import Keys
from worker.core.records import Attempt
from worker.core.rules import Rules
from worker.core.states import DeadReason
from worker.core.transform import transform
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger, NewVersion, raw_hash

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def payload_hash(raw: bytes) -> str:
    return transform(parse_raw_order(loads_document(raw)), Rules.empty()).payload_hash


def receipt(raw: bytes, status: str = "success") -> dict[str, Any]:
    return {"payloadHash": payload_hash(raw), "status": status}


class World:
    def __init__(self, client: redis.Redis[bytes]) -> None:
        self.keys = keys = Keys()
        self.ledger = Ledger(client, keys)
        self.dead = DeadLetters(client, keys)
        self.books = Books()
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.sandbox_cancels: dict[str, SaleCancellation] = {}

    def submitted(self, key: str, *versions: int, attempt: Attempt | None = None) -> list[bytes]:
        raws = [raw_order(key, v) for v in versions]
        for raw in raws:
            self.books.accept(key, raw)
            order = parse_raw_order(loads_document(raw))
            self.ledger.record(NewVersion(key, raw, order.updated_at, None), now=1.0)
        submit(
            self.ledger,
            self.keys,
            key,
            payload_hash=payload_hash(raws[-1]),
            line_ids=(),
            sale_id=1,
            now=2.0,
            attempt=attempt,
        )
        return raws

    def resent(self, key: str, raw: bytes, *, now: float) -> None:
        """The worker sent `raw`, the stored version, again and Jetti accepted it."""
        submit(
            self.ledger,
            self.keys,
            key,
            payload_hash=payload_hash(raw),
            line_ids=(),
            sale_id=1,
            now=now,
        )

    def check(self) -> Any:
        def histories(ids: Sequence[str]) -> Mapping[str, list[dict[str, Any]]]:
            return {i: self.history.get(i, []) for i in ids}

        return check_books(
            self.books,
            ledger=self.ledger,
            dead=self.dead,
            histories=histories,
            cancellations=lambda: self.sandbox_cancels,
        )

    def cancelled(self, key: str, raw: bytes, *, via: str) -> None:
        """The producer hands over the cancelling copy `raw`; the ledger ends CANCELLED."""
        self.books.accept(key, raw)
        order = parse_raw_order(loads_document(raw))
        self.ledger.record(NewVersion(key, raw, order.updated_at, None), now=3.0)
        entry = self.ledger.get(key)
        assert entry is not None and entry.raw_hash == raw_hash(raw)
        assert (
            self.ledger.mark_cancelled(key, version=entry.version, sale_id=1001, via=via, now=4.0)
            is False
        )


@pytest.fixture
def world(redis_client: redis.Redis[bytes]) -> World:
    return World(redis_client)


def test_balanced_books(world: World) -> None:
    """Every version in order, the latest last: delivered, nothing else."""
    v1, v2 = world.submitted("a", 1, 2)
    world.history["a"] = [receipt(v1), receipt(v2)]
    report = world.check()
    assert (report.delivered, report.lost, report.regressions) == (1, 0, 0)
    assert report.balanced


def test_an_order_jetti_never_got_is_lost(world: World) -> None:
    """SUBMITTED in the ledger but absent from Jetti (or rejected in its import log) is lost."""
    world.submitted("a", 1)
    (v1,) = world.submitted("b", 1)
    world.history["b"] = [receipt(v1, status="error")]
    report = world.check()
    assert report.lost == 2 and not report.balanced


def test_an_older_version_after_a_newer_one_is_a_regression(world: World) -> None:
    """Jetti applying v1 after v2 went backwards, even though it ends on the right bytes later."""
    v1, v2 = world.submitted("a", 1, 2)
    world.history["a"] = [receipt(v2), receipt(v1), receipt(v2)]
    report = world.check()
    assert report.regressions == 1


def test_a_resend_without_a_cause_is_a_harmful_duplicate(world: World) -> None:
    """The same payload twice in a row with no crash or unknown outcome in the ledger."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1), receipt(v1)]
    report = world.check()
    assert (report.harmful_duplicates, report.harmless_duplicates) == (1, 0)


def test_a_resend_after_an_unknown_outcome_is_harmless(world: World) -> None:
    """A timeout (OutcomeUnknown) explains an identical resend; the upsert changed nothing."""
    unknown = Attempt(
        at=1.5,
        status=None,
        error_class="OutcomeUnknown",
        excerpt="timeout",
        worker="w:1",
        outcome="error",
    )
    (v1,) = world.submitted("a", 1, attempt=unknown)
    world.history["a"] = [receipt(v1), receipt(v1)]
    report = world.check()
    assert (report.harmful_duplicates, report.harmless_duplicates) == (0, 1)
    assert report.balanced


def test_dead_in_the_ledger_without_a_dead_letter_is_lost(world: World) -> None:
    """DEAD must come with a dead-letter entry and its reason."""
    raw = raw_order("a", 1)
    world.books.accept("a", raw)
    world.ledger.record(NewVersion("a", raw, None, None), now=1.0)
    world.ledger.mark_dead("a", reason=DeadReason.REJECTED, now=2.0)
    assert world.check().lost == 1
    world.dead.put(
        "a",
        reason=DeadReason.REJECTED,
        raw=raw,
        payload=None,
        attempts=[],
        source=None,
        error="Jetti answered 422",
        now=2.0,
    )
    report = world.check()
    assert (report.lost, report.dead_lettered) == (0, 1)
    assert report.dead_reasons == {"rejected": 1}


def test_a_resend_after_a_replay_is_harmless(world: World) -> None:
    """`dlq replay` (the ledger event `replay`) explains sending the same payload again."""
    raw = raw_order("a", 1)
    world.books.accept("a", raw)
    world.ledger.record(
        NewVersion("a", raw, parse_raw_order(loads_document(raw)).updated_at, None), now=1.0
    )
    world.ledger.mark_dead("a", reason=DeadReason.RETRIES_EXHAUSTED, now=2.0)
    assert world.ledger.replay("a", now=3.0)[0] == "rearmed"
    assert "replay" in {e["type"] for e in world.ledger.events("a")}
    world.resent("a", raw, now=4.0)
    world.history["a"] = [receipt(raw), receipt(raw)]
    report = world.check()
    assert (report.harmful_duplicates, report.harmless_duplicates) == (0, 1)
    assert report.balanced


def test_a_resend_after_a_repair_is_harmless(world: World) -> None:
    """The reconciler's repair (the ledger event `repair`) re-sends the latest payload."""
    (v1,) = world.submitted("a", 1)
    assert world.ledger.repair("a", payload_hash=payload_hash(v1), now=3.0) == 1
    world.resent("a", v1, now=4.0)
    world.history["a"] = [receipt(v1), receipt(v1)]
    report = world.check()
    assert (report.harmful_duplicates, report.harmless_duplicates) == (0, 1)
    assert report.balanced


def test_dead_for_an_older_version_than_the_latest_is_lost(world: World) -> None:
    """The producer handed over v2, but the ledger (and the dead letter) only hold v1: v2 is
    lost, even though the order is DEAD with a dead letter and a reason."""
    v1, v2 = raw_order("a", 1), raw_order("a", 2)
    world.books.accept("a", v1)
    world.books.accept("a", v2)
    world.ledger.record(
        NewVersion("a", v1, parse_raw_order(loads_document(v1)).updated_at, None), now=1.0
    )
    world.ledger.mark_dead("a", reason=DeadReason.REJECTED, now=2.0)
    world.dead.put(
        "a",
        reason=DeadReason.REJECTED,
        raw=v1,
        payload=None,
        attempts=[],
        source=None,
        error="Jetti answered 422",
        now=2.0,
    )
    report = world.check()
    assert (report.lost, report.dead_lettered) == (1, 0)
    assert not report.balanced


def test_confirmed_is_delivered(world: World) -> None:
    """CONFIRMED (the reconciler found no import error) is final: delivered, not lost."""
    (v1,) = world.submitted("a", 1)
    assert world.ledger.confirm_many([("a", payload_hash(v1))], now=3.0) == ["a"]
    world.history["a"] = [receipt(v1)]
    report = world.check()
    assert (report.delivered, report.lost) == (1, 0)
    assert report.balanced


def test_cancelled_is_settled_with_how(world: World) -> None:
    """CANCELLED is final: counted apart with how it was cancelled, not lost."""
    raw = raw_order("a", 1)
    world.books.accept("a", raw)
    world.ledger.record(
        NewVersion("a", raw, parse_raw_order(loads_document(raw)).updated_at, None), now=1.0
    )
    entry = world.ledger.get("a")
    assert entry is not None
    assert (
        world.ledger.mark_cancelled(
            "a", version=entry.version, sale_id=None, via="not_imported", now=2.0
        )
        is False
    )
    report = world.check()
    assert (report.cancelled, report.lost, report.delivered) == (1, 0, 0)
    assert report.cancelled_via == {"not_imported": 1}
    assert report.balanced


def test_a_cancel_applied_once_to_the_sale_is_cancelled(world: World) -> None:
    """CANCELLED in the ledger and Jetti's sale cancelled by one cancel request: settled."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1)]
    world.cancelled("a", raw_order("a", 2, cancelled=True), via="jetti")
    world.sandbox_cancels["a"] = SaleCancellation(sale_id=1001, cancelled=True, cancel_calls=1)
    report = world.check()
    assert (report.cancelled, report.lost, report.harmful_duplicates) == (1, 0, 0)
    assert report.cancelled_via == {"jetti": 1}
    assert report.balanced


def test_cancelled_in_the_ledger_with_a_live_sale_in_jetti_is_a_lost_cancel(world: World) -> None:
    """The ledger says CANCELLED (here `not_imported`, review #4b) but Jetti holds the sale and
    never cancelled it: the cancellation was lost, whatever the ledger says."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1)]
    world.cancelled("a", raw_order("a", 2, cancelled=True), via="not_imported")
    report = world.check()
    assert (report.cancelled, report.lost) == (0, 1)
    assert "cancel lost" in report.problems[0]
    assert not report.balanced


def test_cancelled_and_never_imported_is_cancelled(world: World) -> None:
    """No sale in Jetti at all (never imported) and CANCELLED `not_imported`: settled."""
    raw = raw_order("a", 1, cancelled=True)
    world.cancelled("a", raw, via="not_imported")
    report = world.check()
    assert (report.cancelled, report.lost) == (1, 0)
    assert report.balanced


def test_two_cancels_of_one_sale_are_a_harmful_duplicate(world: World) -> None:
    """Two cancel requests reached the sale (a retry after a timeout, review #4c): each one
    creates sale-return objects in Jetti."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1)]
    world.cancelled("a", raw_order("a", 2, cancelled=True), via="jetti")
    world.sandbox_cancels["a"] = SaleCancellation(sale_id=1001, cancelled=True, cancel_calls=2)
    report = world.check()
    assert (report.cancelled, report.harmful_duplicates) == (1, 1)
    assert not report.balanced


def test_a_cancellation_the_ledger_dropped_is_lost(world: World) -> None:
    """A cancellation without updated_at after a timestamped copy (review #3): the ledger kept
    the order SUBMITTED and Jetti's sale is live. The cancelling copy is the latest (by
    arrival), so the order is lost even though Jetti holds the previous payload."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1)]
    world.books.accept("a", raw_order("a", 1, updated_at=None, cancelled=True))
    report = world.check()
    assert (report.delivered, report.lost) == (0, 1)
    assert "cancel lost" in report.problems[0]


def test_a_sale_cancelled_for_an_order_never_cancelled_upstream_is_lost(world: World) -> None:
    """Jetti's sale cancelled though no copy carried cancelled_at (a wrong sale, review #4a)."""
    (v1,) = world.submitted("a", 1)
    world.history["a"] = [receipt(v1)]
    world.sandbox_cancels["a"] = SaleCancellation(sale_id=1001, cancelled=True, cancel_calls=1)
    report = world.check()
    assert (report.delivered, report.lost) == (0, 1)


def test_a_copy_without_updated_at_is_newer_by_arrival(world: World) -> None:
    """v2 has no updated_at and arrives after v1: it is the latest version (issue 12 point 3),
    so Jetti ending on v2 is delivered, not lost, and v2 after v1 is no regression."""
    (v1,) = world.submitted("a", 1)
    v2 = raw_order("a", 2, updated_at=None)
    world.books.accept("a", v2)
    world.history["a"] = [receipt(v1), receipt(v2)]
    report = world.check()
    assert (report.delivered, report.lost, report.regressions) == (1, 0, 0)
    assert report.balanced
