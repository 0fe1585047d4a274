"""`jetti-relay metrics`: a real exporter process scraped over HTTP, against a real Redis.

The figures come from what the real adapters wrote (`seed_fleet`) or, in the last test, from a
real worker importing orders into the sandbox.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producers import enqueue
from tests.factories import raw_order
from tests.fixtures.exporter import running_exporter, scrape, seed_fleet, value
from tests.fixtures.intake import KEYS, add_entry, consumer, read_and_die
from tests.fixtures.pipeline import Harness, PipelineFactory, wait_until
from tests.fixtures.redis_server import free_port
from worker.core.keys import ORDERS_QUEUE
from worker.core.states import DeadReason, OrderState
from worker.store.intake import RejectedEntry, StreamEntry

pytestmark = pytest.mark.integration

# The intake's figures that are 0 without an intake stream.
INTAKE_FIGURES = (
    "stream_length",
    "lag",
    "pending",
    "oldest_pending_age_seconds",
    "oldest_unread_age_seconds",
    "rejects",
    "last_reject_timestamp_seconds",
)


def test_exporter_reports_what_the_ledger_holds(redis_url: str) -> None:
    """Backlog, retries, dead letters, counters, latency, breaker and heartbeats match the
    data the adapters wrote."""
    seeded = seed_fleet(redis_url)
    with running_exporter(redis_url) as url:
        samples = scrape(url)
    assert value(samples, "jetti_relay_redis_up") == 1
    assert value(samples, "jetti_relay_orders", state="pending") == len(seeded.pending)
    assert value(samples, "jetti_relay_orders", state="retry_wait") == 2
    assert value(samples, "jetti_relay_orders", state="dead") == 1
    assert value(samples, "jetti_relay_orders", state="submitted") == 1
    assert value(samples, "jetti_relay_queue_depth") == len(seeded.pending)
    assert value(samples, "jetti_relay_celery_queue_messages", queue=ORDERS_QUEUE) == 2
    assert value(samples, "jetti_relay_retries_scheduled") == 2
    assert value(samples, "jetti_relay_retries_due") == 1
    assert value(samples, "jetti_relay_oldest_waiting_order_age_seconds") >= 100
    assert value(samples, "jetti_relay_dead_letters", reason="rejected") == 1
    assert value(samples, "jetti_relay_dead_letters", reason="worker_lost") == 0
    assert value(samples, "jetti_relay_dead_letter_entries", status="dead") == 1
    assert value(samples, "jetti_relay_dead_letters_oldest_age_seconds") >= 30
    assert value(samples, "jetti_relay_dead_lettered_total", reason="rejected") == 1
    assert value(samples, "jetti_relay_submissions_total", outcome="accepted", status="200") == 1
    assert value(samples, "jetti_relay_submissions_total", outcome="retry", status="503") == 2
    assert value(samples, "jetti_relay_submissions_total", outcome="rejected", status="422") == 1
    assert value(samples, "jetti_relay_end_to_end_latency_seconds_count") == 1
    assert value(samples, "jetti_relay_end_to_end_latency_seconds_sum") == pytest.approx(0.3)
    assert value(samples, "jetti_relay_end_to_end_latency_seconds_bucket", le="0.25") == 0
    assert value(samples, "jetti_relay_end_to_end_latency_seconds_bucket", le="0.5") == 1
    assert value(samples, "jetti_relay_end_to_end_latency_seconds_bucket", le="+Inf") == 1
    assert value(samples, "jetti_relay_breaker_state", state="open") == 1
    assert value(samples, "jetti_relay_breaker_state", state="closed") == 0
    assert value(samples, "jetti_relay_maintenance_last_run_timestamp_seconds", role="pump") == (
        pytest.approx(seeded.pump_at)
    )
    assert math.isinf(
        value(samples, "jetti_relay_maintenance_last_run_age_seconds", role="sweeper")
    )
    assert value(samples, "jetti_relay_last_settled_timestamp_seconds") > seeded.now - 60


def test_every_dead_reason_is_exported_even_at_zero(redis_url: str) -> None:
    """Alerts on a reason that never happened yet still find a series (0), not nothing."""
    with running_exporter(redis_url) as url:
        samples = scrape(url)
    for reason in DeadReason:
        assert value(samples, "jetti_relay_dead_letters", reason=str(reason)) == 0
    assert value(samples, "jetti_relay_oldest_waiting_order_age_seconds") == 0
    assert value(samples, "jetti_relay_breaker_state", state="closed") == 1
    for name in INTAKE_FIGURES:  # no intake stream at all
        assert value(samples, f"jetti_relay_intake_{name}") == 0, name
    assert value(samples, "jetti_relay_intake_rejects_max") == 100_000


def test_exporter_reports_the_intake_stream(redis_url: str, harness: Harness) -> None:
    """Length, lag, pending and their ages, and the rejects, as a dead consumer, an unread
    backlog and one reject leave them."""
    client, now = harness.client, time.time()
    stream = KEYS.intake_stream()
    # Entries appended 600 s and 300 s ago (ids carry the time), then two just now.
    client.xadd(stream, {"order": b"{}"}, id=f"{int((now - 600) * 1000)}-0")
    client.xadd(stream, {"order": b"{}"}, id=f"{int((now - 300) * 1000)}-0")
    add_entry(client, raw_order("mi-1"))
    add_entry(client, raw_order("mi-2"))
    intake = consumer(client, harness.publisher)
    read_and_die(client, "dead", 1)  # the 600 s old one: pending on a dead consumer
    bad = StreamEntry("1-1", {b"order": b"not json"})
    intake.stream.settle([], [RejectedEntry(bad, "$: not JSON")], rejects_max=10, now=now)

    with running_exporter(redis_url, JETTI_RELAY_INTAKE_REJECTS_MAX="5000") as url:
        samples = scrape(url)

    assert value(samples, "jetti_relay_intake_stream_length") == 4
    assert value(samples, "jetti_relay_intake_lag") == 3
    assert value(samples, "jetti_relay_intake_pending") == 1
    assert 600 <= value(samples, "jetti_relay_intake_oldest_pending_age_seconds") < 700
    assert 300 <= value(samples, "jetti_relay_intake_oldest_unread_age_seconds") < 400
    assert value(samples, "jetti_relay_intake_rejects") == 1
    assert value(samples, "jetti_relay_intake_rejects_max") == 5000
    assert value(samples, "jetti_relay_intake_last_reject_timestamp_seconds") >= now - 60


def test_stale_and_after_cancel_copies_are_counted(redis_url: str) -> None:
    """Reliability review #3: copies recorded but not sent are a metric (an alert uses it), not
    only a line in the producer's summary."""
    import redis

    from worker.core.keys import Keys
    from worker.store.ledger import Ledger, NewVersion

    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    ledger = Ledger(client, Keys())
    stamp = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    for body, at, cancelled in (
        (b'{"v":2}', stamp, False),
        (b'{"v":1}', stamp - timedelta(hours=1), False),  # stale
        (b'{"v":3}', stamp, True),  # the cancellation
        (b'{"v":4}', stamp + timedelta(hours=1), False),  # after_cancel
    ):
        ledger.record(NewVersion("m-1", body, at, "test", cancelled=cancelled), now=1.0)
    client.close()

    with running_exporter(redis_url) as url:
        samples = scrape(url)

    assert value(samples, "jetti_relay_recorded_total", outcome="stale") == 1
    assert value(samples, "jetti_relay_recorded_total", outcome="after_cancel") == 1
    assert value(samples, "jetti_relay_recorded_total", outcome="updated") == 1


def test_exporter_says_redis_is_down_instead_of_failing() -> None:
    """With Redis unreachable a scrape still answers, with redis_up 0 and nothing made up."""
    with running_exporter(f"redis://127.0.0.1:{free_port()}/0") as url:
        samples = scrape(url)
    assert value(samples, "jetti_relay_redis_up") == 0
    assert "jetti_relay_queue_depth" not in samples


def test_exporter_counts_a_real_worker_importing_orders(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Orders imported by a real worker show up as accepted submissions, latency observations
    and submitted orders, and the pump's heartbeat is fresh."""
    harness = Harness(redis_url)
    start_pipeline()
    keys = [f"mx-{n}" for n in range(6)]
    enqueue([raw_order(k) for k in keys], client=harness.client, publisher=harness.publisher)
    harness.wait_states(keys, {OrderState.SUBMITTED})
    with running_exporter(redis_url) as url:
        wait_until(
            lambda: value(scrape(url), "jetti_relay_end_to_end_latency_seconds_count") == len(keys),
            what="latency observations for every order",
        )
        samples = scrape(url)
    accepted = sum(
        v
        for labels, v in samples["jetti_relay_submissions_total"].items()
        if ("outcome", "accepted") in labels
    )
    assert accepted == len(keys)
    assert value(samples, "jetti_relay_orders", state="submitted") == len(keys)
    assert value(samples, "jetti_relay_queue_depth") == 0
    assert value(samples, "jetti_relay_maintenance_last_run_age_seconds", role="pump") < 60
    harness.client.close()
