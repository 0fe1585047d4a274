"""The Redis Stream intake (`producers.stream_intake.StreamIntake`) against a real Redis.

Entries are appended with XADD as upstream appends them; the consumer runs its real steps
(`poll`, `reclaim`, `trim`, or its loop in a thread) and publishes with the real Celery
publisher. What it leaves is read back from Redis: the ledger, the broker queue, the group's
pending entries and the rejects stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import redis
from kombu.exceptions import OperationalError
from structlog.testing import capture_logs

from producers.enqueue import EnqueueInterrupted
from producers.stream_intake import StreamIntake
from tests.factories import raw_order
from tests.fixtures.broker import published_keys
from tests.fixtures.intake import (
    KEYS,
    add_entry,
    age_pending,
    consumer,
    pending,
    read_and_die,
    rejects,
)
from tests.fixtures.pipeline import Harness, wait_until
from worker.celery_app import create_app
from worker.core.keys import INTAKE_GROUP
from worker.core.states import OrderState
from worker.publisher import Publisher
from worker.store.stats import Stats

pytestmark = pytest.mark.integration


class WatchingPublisher:
    """The real publisher, noting how many entries were still pending at each publish."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.pending_at_publish: list[int] = []

    def publish(self, order_keys: Sequence[str]) -> int:
        self.pending_at_publish.append(pending(self.harness.client))
        return self.harness.publisher.publish(order_keys)


class FailingPublisher:
    """The real publisher, failing like an unreachable broker `failures` times first."""

    def __init__(self, harness: Harness, failures: int) -> None:
        self.harness = harness
        self.failures = failures
        self.calls = 0

    def publish(self, order_keys: Sequence[str]) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("broker unreachable")
        return self.harness.publisher.publish(order_keys)


class PoisonPublisher:
    """The real publisher, except that a batch holding a key starting `poison` breaks (a bug
    one entry triggers, whatever it is)."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def publish(self, order_keys: Sequence[str]) -> int:
        if any(key.startswith("poison") for key in order_keys):
            raise RuntimeError("this entry breaks whatever handles it")
        return self.harness.publisher.publish(order_keys)


def run_until(intake: StreamIntake, done: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=intake.run, args=(done,), daemon=True)
    thread.start()
    return thread


def test_valid_entries_are_recorded_and_published_before_they_are_acknowledged(
    harness: Harness,
) -> None:
    """Each entry's order is in the ledger and its key on the queue; the entries were still
    pending when the keys were published, and are acknowledged afterwards."""
    keys = [f"sv-{n}" for n in range(3)]
    for key in keys:
        add_entry(harness.client, raw_order(key))
    watcher = WatchingPublisher(harness)
    intake = consumer(harness.client, watcher)

    assert intake.poll() == 3

    assert [harness.state(k) for k in keys] == [OrderState.PENDING] * 3
    assert sorted(published_keys(harness.client)) == keys
    assert watcher.pending_at_publish == [3]
    assert pending(harness.client) == 0
    assert rejects(harness.client) == []


def test_nothing_is_acknowledged_while_the_broker_fails_and_the_batch_is_retried(
    harness: Harness,
) -> None:
    """A broker failure acknowledges none of the batch; the loop tries the same batch again
    and acknowledges it once it is published, without counting an extra delivery."""
    keys = ["sf-1", "sf-2"]
    for key in keys:
        add_entry(harness.client, raw_order(key))
    failing = FailingPublisher(harness, failures=1)
    intake = consumer(harness.client, failing)

    with pytest.raises(EnqueueInterrupted):
        intake.poll()
    assert pending(harness.client) == 2
    assert published_keys(harness.client) == []

    stop = threading.Event()
    thread = run_until(intake, stop)
    wait_until(lambda: pending(harness.client) == 0, what="the batch to be acknowledged")
    stop.set()
    thread.join(timeout=10)
    assert sorted(published_keys(harness.client)) == keys
    assert failing.calls == 2
    assert intake.counts.read == 2  # read once; the retry was not a second delivery


def test_invalid_entries_go_to_the_rejects_stream_and_the_rest_go_through(
    harness: Harness,
) -> None:
    """Broken JSON, a contract violation, a missing `order` field and a source that is not
    UTF-8 are each rejected with every problem's path and the bytes as sent; the valid
    entries around them are recorded; the whole batch is acknowledged."""
    client = harness.client
    invalid = raw_order("sr-bad", quantity=0)
    ids = {
        "first": add_entry(client, raw_order("sr-1")),
        "json": add_entry(client, b'{"id": "sr-json", '),
        "contract": add_entry(client, invalid),
        "no_order": add_entry(client, None, source="shop-a"),
        "source": add_entry(client, raw_order("sr-src"), source=b"\xff\xfeshop"),
        "last": add_entry(client, raw_order("sr-2")),
    }
    intake = consumer(client, harness.publisher)

    assert intake.poll() == 6

    assert harness.state("sr-1") == harness.state("sr-2") == OrderState.PENDING
    assert harness.state("sr-bad") is None and harness.state("sr-src") is None
    found = {r["entry_id"].decode(): r for r in rejects(client)}
    assert set(found) == {ids["json"], ids["contract"], ids["no_order"], ids["source"]}
    contract = found[ids["contract"]]
    assert b"lines[0].quantity" in contract["reason"]
    assert b"lines[1].quantity" in contract["reason"]  # every problem, not the first
    assert contract["order"] == client.xrange(KEYS.intake_stream())[2][1][b"order"]
    assert contract["order_key"] == b"sr-bad"
    assert found[ids["json"]]["order"] == b'{"id": "sr-json", '
    assert found[ids["no_order"]]["reason"].startswith(b"order: is missing")
    assert "order" not in found[ids["no_order"]]
    assert found[ids["no_order"]]["source"] == b"shop-a"
    assert found[ids["source"]]["reason"] == b"source: is not valid UTF-8"
    assert found[ids["source"]]["source"] == b"\xff\xfeshop"
    assert all(float(r["rejected_at"]) > 0 for r in found.values())
    assert pending(client) == 0
    assert intake.counts.rejected == 4


def test_an_entry_names_its_own_id_prefix_and_source(harness: Harness) -> None:
    """`id_prefix` and `source` of an entry apply to its order alone: one upstream id from
    two shops is two orders, and an entry without them gets neither."""
    add_entry(harness.client, raw_order("1001"), id_prefix="shop-a:", source="shop-a")
    add_entry(harness.client, raw_order("1001"), id_prefix="shop-b:")
    add_entry(harness.client, raw_order("1001"))
    consumer(harness.client, harness.publisher).poll()

    shop_a, shop_b, bare = (harness.ledger.get(k) for k in ("shop-a:1001", "shop-b:1001", "1001"))
    assert shop_a is not None and shop_a.source == "shop-a"
    assert shop_b is not None and not shop_b.source
    assert bare is not None and not bare.source


def test_an_entry_left_pending_by_a_dead_consumer_is_reclaimed_by_another(
    harness: Harness,
) -> None:
    """Entries a consumer read and never acknowledged (killed mid-batch) are taken over once
    idle for `reclaim_idle_s`, recorded and acknowledged; younger ones are left alone."""
    client = harness.client
    live = consumer(client, harness.publisher, "live", reclaim_idle_s=60)
    for key in ("rc-1", "rc-2", "rc-3"):
        add_entry(client, raw_order(key))
    taken = read_and_die(client, "dead", 3)
    age_pending(client, taken[:2], owner="dead", idle_ms=120_000, deliveries=1)
    age_pending(client, taken[2:], owner="dead", idle_ms=5_000, deliveries=1)

    assert live.poll() == 0  # nothing new: they were all delivered to the dead consumer
    assert live.reclaim() == 2

    assert harness.state("rc-1") == harness.state("rc-2") == OrderState.PENDING
    assert harness.state("rc-3") is None  # its consumer may still be working on it
    assert pending(client) == 1


def test_an_entry_read_too_often_goes_to_rejects_and_never_blocks_the_rest(
    harness: Harness,
) -> None:
    """An entry already delivered `max_deliveries` times is rejected with that reason and its
    bytes; the others pending beside it are recorded."""
    client = harness.client
    live = consumer(client, harness.publisher, "live", max_deliveries=3)
    add_entry(client, raw_order("md-stuck"))
    add_entry(client, raw_order("md-ok"))
    stuck, ok = read_and_die(client, "dead", 2)
    age_pending(client, [stuck], owner="dead", idle_ms=120_000, deliveries=3)
    age_pending(client, [ok], owner="dead", idle_ms=120_000, deliveries=2)

    assert live.reclaim() == 2

    [reject] = rejects(client)
    assert reject["entry_id"].decode() == stuck
    assert reject["reason"] == b"read 3 times without being acknowledged"
    assert b'"md-stuck"' in reject["order"]
    assert harness.state("md-stuck") is None
    assert harness.state("md-ok") == OrderState.PENDING
    assert pending(client) == 0


def test_an_entry_that_breaks_its_batch_is_isolated_then_rejected(harness: Harness) -> None:
    """A batch that fails for a reason retrying cannot fix is handled entry by entry: the good
    entries go through at once; the culprit stays pending until reclaim has delivered it
    `max_deliveries` times, then lands in the rejects stream."""
    client = harness.client
    intake = consumer(client, PoisonPublisher(harness), max_deliveries=2)
    add_entry(client, raw_order("pz-1"))
    culprit = add_entry(client, raw_order("poison-1"))
    add_entry(client, raw_order("pz-2"))

    assert intake.poll() == 3

    assert sorted(published_keys(client)) == ["pz-1", "pz-2"]
    assert pending(client) == 1
    assert intake.counts.failed == 1
    age_pending(client, [culprit], owner="c1", idle_ms=120_000, deliveries=2)
    assert intake.reclaim() == 1
    assert [r["entry_id"].decode() for r in rejects(client)] == [culprit]
    assert pending(client) == 0


def test_a_batch_failing_the_same_way_again_logs_one_traceback_then_the_recovery(
    harness: Harness,
) -> None:
    """Batches that keep failing with the same error: the first is `intake_batch_failed` with
    its traceback, the next (within 30 s) only counted, and the first batch that goes through
    logs `intake_batch_recovered` with the count."""
    client = harness.client
    publisher = PoisonPublisher(harness)
    intake = consumer(client, publisher)
    with capture_logs() as logs:
        for key in ("poison-1", "poison-2", "lf-1"):
            add_entry(client, raw_order(key))
            assert intake.poll() == 1
    lines = [e for e in logs if e["event"] in {"intake_batch_failed", "intake_batch_recovered"}]
    assert [(e["event"], e["log_level"]) for e in lines] == [
        ("intake_batch_failed", "error"),
        ("intake_batch_recovered", "info"),
    ]
    assert isinstance(lines[0]["exc_info"], RuntimeError)
    assert (lines[0]["consumer"], lines[0]["entries"]) == ("c1", 1)
    assert (lines[1]["failures"], lines[1]["consumer"]) == (2, "c1")


def test_trim_keeps_every_entry_another_group_has_not_acknowledged(harness: Harness) -> None:
    """With another team's group behind, trimming removes only what both groups acknowledged:
    every entry the other group has pending or has not read yet stays."""
    client, stream = harness.client, KEYS.intake_stream()
    client.xgroup_create(stream, "audit", id="0", mkstream=True)
    ids = [add_entry(client, raw_order(f"tr-{n}", lines=1)) for n in range(250)]
    client.xreadgroup("audit", "a1", {stream: ">"}, count=150)
    client.xack(stream, "audit", *ids[:120])  # 120..149 pending, 150.. unread
    intake = consumer(client, harness.publisher, batch_size=250)
    assert intake.poll() == 250

    assert intake.trim() == ids[120]

    left = [entry_id.decode() for entry_id, _ in client.xrange(stream)]
    assert set(ids[120:]) <= set(left)
    assert len(left) < len(ids)  # acknowledged by both: trimmed (whole nodes, MINID ~)


def test_two_consumers_share_the_stream_and_record_each_entry_once(harness: Harness) -> None:
    """Two consumers running side by side read disjoint entries: every order is recorded once
    (no copy recorded `unchanged`), every entry acknowledged."""
    keys = [f"two-{n}" for n in range(300)]
    for key in keys:
        add_entry(harness.client, raw_order(key, lines=1))
    apps = [create_app(harness.settings) for _ in range(2)]
    intakes = [
        consumer(
            redis.Redis.from_url(harness.settings.redis_url),
            Publisher(app, batch_size=50),
            name,
            batch_size=20,
        )
        for name, app in zip(("a", "b"), apps, strict=True)
    ]
    stop = threading.Event()
    threads = [run_until(intake, stop) for intake in intakes]
    try:
        wait_until(
            lambda: sum(i.counts.acked for i in intakes) >= len(keys),
            what="every entry to be acknowledged",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for app in apps:
            app.close()
    assert sum(i.counts.read for i in intakes) == len(keys)
    assert all(harness.state(k) == OrderState.PENDING for k in keys)
    counts = Stats(harness.client, KEYS).record_counts()
    assert counts.get("accepted") == len(keys)
    assert not counts.get("unchanged")
    assert pending(harness.client) == 0
    for intake in intakes:
        intake.client.close()


@pytest.mark.parametrize("failing", [FailingPublisher, PoisonPublisher])
def test_the_overlapped_path_under_load_loses_nothing_when_a_write_fails(
    harness: Harness, failing: type[FailingPublisher] | type[PoisonPublisher]
) -> None:
    """`run` writes one full batch while it validates the next; when a write fails (the
    broker unreachable once, or a poison order), that batch is handled again the plain way:
    every entry ends acknowledged or rejected, each valid order recorded and published."""
    keys = [f"ov-{n}" for n in range(95)] + ["poison-1"] + [f"ov-{n}" for n in range(95, 190)]
    for key in keys:
        add_entry(harness.client, raw_order(key, lines=1))
    publisher = failing(harness, 1) if failing is FailingPublisher else failing(harness)
    intake = consumer(harness.client, publisher, batch_size=20)
    stop = threading.Event()
    thread = run_until(intake, stop)
    try:
        wait_until(
            lambda: intake.counts.read >= len(keys) and pending(harness.client) <= 1,
            what="every entry handled",
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    good = [k for k in keys if not k.startswith("poison")]
    assert all(harness.state(k) == OrderState.PENDING for k in good)
    assert set(good) <= set(published_keys(harness.client))
    # The poison entry stays pending for the reclaim (then the rejects stream); nothing else.
    assert pending(harness.client) == (1 if failing is PoisonPublisher else 0)


def test_stopped_consumers_leave_the_group_but_never_with_entries(harness: Harness) -> None:
    """Each intake process joins under a new name; the reclaim pass removes consumers idle for
    ten reclaim times that hold nothing, and keeps one holding an entry until that entry was
    taken over and handled."""
    stream = KEYS.intake_stream()
    intake = consumer(harness.client, harness.publisher, "live", reclaim_idle_s=0.02)
    add_entry(harness.client, raw_order("fc-1", lines=1))
    [held] = read_and_die(harness.client, "dead-holding", 1)
    assert read_and_die(harness.client, "dead-empty", 1) == []

    def names() -> set[str]:
        return {c["name"].decode() for c in harness.client.xinfo_consumers(stream, INTAKE_GROUP)}

    time.sleep(0.3)
    assert intake.reclaim() == 1  # dead-holding's entry, taken over and handled
    assert names() == {"dead-holding", "live"}  # it still held the entry when looked at
    time.sleep(0.3)
    intake.reclaim()
    assert names() == {"live"}
    assert harness.state("fc-1") == OrderState.PENDING
    assert pending(harness.client) == 0
    assert held
