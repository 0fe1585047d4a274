"""The pipeline end to end: producer -> ledger -> real Celery worker processes -> sandbox over HTTP.

Each test starts `jetti-relay worker` subprocesses against the session's throwaway Redis and the
sandbox, enqueues through the producers library, and reads the outcome back from the ledger, the
dead-letter store and the sandbox's own records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from producers import enqueue
from tests.factories import new_version, raw_order
from tests.fixtures.pipeline import FAST_ENV, Harness, PipelineFactory, wait_until
from tests.fixtures.sandbox import sent_body
from worker.core.keys import IMPORT_TASK, ORDERS_QUEUE
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.breaker import Breaker
from worker.store.stats import Stats

pytestmark = pytest.mark.integration


def test_happy_path_every_order_reaches_jetti_once(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Twenty valid orders end SUBMITTED, each sale exists once in the sandbox with one version."""
    worker = start_pipeline()
    keys = [f"hp-{n}" for n in range(20)]
    harness.enqueue([raw_order(k) for k in keys])
    harness.wait_states(keys, {OrderState.SUBMITTED})
    for key in keys:
        assert len(sandbox.history(key)) == 1
        assert len(sandbox.sales(key)) == 1
    assert harness.dead.list(limit=10) == []
    log = worker.log()
    submitted = [json.loads(line) for line in log.splitlines() if '"order_submitted"' in line]
    assert {event["order_key"] for event in submitted} == set(keys)
    assert all({"task_id", "attempt", "delivery"} <= set(event) for event in submitted)
    assert sandbox.webhook_hash not in log
    assert "ada@example.com" not in log


def test_two_sources_with_the_same_order_id_stay_two_sales(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Producers' id prefixes reach Jetti: order 1001 from shop A and from shop B are two sales,
    filed under their order keys, neither overwriting the other (Jetti upserts by externalId)."""
    start_pipeline()
    for prefix in ("shop-a:", "shop-b:"):
        enqueue(
            [raw_order("1001", note=prefix)],
            client=harness.client,
            publisher=harness.publisher,
            id_prefix=prefix,
            source=prefix[:-1],
        )
    harness.wait_states(["shop-a:1001", "shop-b:1001"], {OrderState.SUBMITTED})
    for prefix in ("shop-a:", "shop-b:"):
        (sale,) = sandbox.history(prefix + "1001")
        assert sent_body(sale)["externalId"] == prefix + "1001"
        assert sent_body(sale)["saleDefaults"]["notes"] == prefix
    assert sandbox.history("1001") == []


def test_newer_update_replaces_and_older_update_is_ignored(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """v2 (newer updated_at) reaches Jetti after v1; a late v0 is recorded as stale and not sent."""
    start_pipeline()
    harness.enqueue([raw_order("upd", updated_at="2026-11-27T10:00:00+00:00", note="v1")])
    harness.wait_states(["upd"], {OrderState.SUBMITTED})
    harness.enqueue([raw_order("upd", updated_at="2026-11-27T11:00:00+00:00", note="v2")])
    wait_until(lambda: len(sandbox.history("upd")) == 2, what="the second version in Jetti")
    harness.enqueue([raw_order("upd", updated_at="2026-11-27T09:00:00+00:00", note="v0")])
    harness.wait_states(["upd"], {OrderState.SUBMITTED})
    entry = harness.ledger.get("upd")
    assert entry is not None and entry.stale_arrivals == 1
    notes = [sent_body(v)["saleDefaults"]["notes"] for v in sandbox.history("upd")]
    assert notes == ["v1", "v2"]


def test_quick_updates_coalesce_and_the_latest_arrives(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Ten versions enqueued back to back reach Jetti in under ten submissions, ending on v10."""
    versions = [
        raw_order("co", updated_at=f"2026-11-27T10:00:{n:02d}+00:00", note=f"v{n}")
        for n in range(1, 11)
    ]
    for version in versions:
        harness.enqueue([version])
    start_pipeline()
    harness.wait_states(["co"], {OrderState.SUBMITTED})
    wait_until(
        lambda: sent_body(sandbox.history("co")[-1])["saleDefaults"]["notes"] == "v10",
        what="the latest version in Jetti",
    )
    assert len(sandbox.history("co")) < 10


def test_503_burst_then_success(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Three 503s in a row are retried with backoff; the order then lands once, attempts kept."""
    sandbox.set_faults(fail_next=3, fail_next_status=503)
    start_pipeline()
    harness.enqueue([raw_order("burst")])
    harness.wait_states(["burst"], {OrderState.SUBMITTED})
    attempts = harness.ledger.attempts("burst")
    assert [a.status for a in attempts] == [503, 503, 503, 200]
    assert len(sandbox.history("burst")) == 1


@pytest.mark.parametrize("retry_after", [None, 1])
def test_429_blocks_the_fleet_and_spends_no_attempt(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any, retry_after: int | None
) -> None:
    """A 429 (with or without Retry-After) delays the order without spending an attempt."""
    sandbox.set_faults(rate_429=1.0, retry_after_s=retry_after)
    start_pipeline()
    harness.enqueue([raw_order("thr")])
    wait_until(lambda: "429" in sandbox.stats()["requests"].get("async", {}), what="a 429")
    sandbox.set_faults(rate_429=0.0)
    harness.wait_states(["thr"], {OrderState.SUBMITTED})
    entry = harness.ledger.get("thr")
    assert entry is not None
    assert entry.attempts == 0
    statuses = [a.status for a in harness.ledger.attempts("thr")]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {429}
    attempts = harness.ledger.attempts("thr")
    pause_s = (
        retry_after if retry_after is not None else float(FAST_ENV["JETTI_RELAY_BLOCKED_DEFAULT_S"])
    )
    # The fleet waited out Retry-After (or the default block) before the next request.
    assert attempts[-1].at - attempts[-2].at >= pause_s * 0.9


@pytest.mark.parametrize(
    ("header", "assumption"), [("31536000", "retry_after_clamped"), ("inf", "retry_after_ignored")]
)
def test_an_extreme_retry_after_never_pauses_the_fleet_beyond_the_bound(
    harness: Harness,
    start_pipeline: PipelineFactory,
    sandbox: Any,
    header: str,
    assumption: str,
) -> None:
    """reliability #8: a Retry-After of a year is clamped to RETRY_AFTER_MAX_S and `inf` is
    ignored (the default pause, not a script error): the order is delivered once the 429s stop,
    no attempt spent, and the adjustment is counted for the metrics."""
    sandbox.set_faults(rate_429=1.0, retry_after_header=header, endpoints=["async"])
    start_pipeline(JETTI_RELAY_RETRY_AFTER_MAX_S="1")
    harness.enqueue([raw_order("ra")])
    wait_until(lambda: "429" in sandbox.stats()["requests"].get("async", {}), what="a 429")
    sandbox.set_faults(rate_429=0.0)
    harness.wait_states(["ra"], {OrderState.SUBMITTED})
    entry = harness.ledger.get("ra")
    assert entry is not None and entry.attempts == 0
    assert Stats(harness.client, harness.keys).surprises()[assumption] >= 1
    blocked = harness.client.get(harness.keys.blocked_until())
    assert blocked is None or float(blocked) < time.time() + 2


def test_timeout_is_an_unknown_outcome_retried_to_one_final_state(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """A response slower than the read timeout is retried with the same payload, then settles."""
    sandbox.set_faults(slow_rate=1.0, slow_s=2)
    start_pipeline(JETTI_RELAY_HTTP_READ_TIMEOUT_S="0.5")
    harness.enqueue([raw_order("slow")])
    wait_until(lambda: len(harness.ledger.attempts("slow")) >= 1, what="a timed-out attempt")
    sandbox.set_faults(slow_rate=0.0)
    harness.wait_states(["slow"], {OrderState.SUBMITTED})
    classes = [a.error_class for a in harness.ledger.attempts("slow")]
    assert classes[0] == "OutcomeUnknown"
    bodies = {v["payloadHash"] for v in sandbox.history("slow")}
    assert len(bodies) == 1  # every delivery of the order carried the same payload


def test_exhausted_retries_dead_letter_the_order(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti answering 503 every time dead-letters the order after max_attempts, attempts kept."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    start_pipeline(JETTI_RELAY_MAX_ATTEMPTS="3")
    harness.enqueue([raw_order("down")])
    harness.wait_states(["down"], {OrderState.DEAD})
    entry = harness.dead.get("down")
    assert entry is not None
    assert entry.reason is DeadReason.RETRIES_EXHAUSTED
    assert [a.status for a in entry.attempts] == [503, 503, 503]


def test_sync_4xx_dead_letters_at_once_with_jettis_problem(
    harness: Harness, start_pipeline: PipelineFactory, sandbox_factory: Any, tmp_path: Path
) -> None:
    """On the sync endpoint an unknown variant without auto-connect is a 4xx: dead at once."""
    variants = tmp_path / "variants.json"
    variants.write_text('{"variants": ["SKU-1", "SKU-2"]}')
    jetti = sandbox_factory(throttle=False, variants=variants)
    start_pipeline(
        JETTI_RELAY_JETTI_MODE="sync",
        JETTI_RELAY_RATE_PER_S="50",
        JETTI_RELAY_JETTI_API_URL=jetti.base_url,
        JETTI_RELAY_API_TOKEN=jetti.api_token,
        JETTI_RELAY_CHANNEL_ID=str(jetti.channel_id),
    )
    order = raw_order("bad-variant")
    order["auto_connect_by_sku"] = False
    order["lines"][0]["sku"] = "NOT-IN-JETTI"
    harness.enqueue([order])
    harness.wait_states(["bad-variant"], {OrderState.DEAD})
    entry = harness.dead.get("bad-variant")
    assert entry is not None and entry.reason is DeadReason.REJECTED
    assert len(entry.attempts) == 1
    assert "is unknown to the channel" in entry.error


def test_bad_credentials_pause_the_fleet_instead_of_dead_lettering(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """A 401 trips the breaker: orders wait, none is dead-lettered, the pause is visible."""
    start_pipeline(JETTI_RELAY_WEBHOOK_HASH="wrong-hash")
    keys = ["auth-1", "auth-2"]
    harness.enqueue([raw_order(k) for k in keys])
    wait_until(lambda: harness.client.exists(harness.keys.breaker()) == 1, what="breaker state")
    harness.wait_states(keys, {OrderState.RETRY_WAIT, OrderState.PENDING})
    assert harness.dead.list(limit=10) == []
    assert sandbox.stats()["sales"] == 0


def test_a_wrong_async_url_pauses_the_fleet_instead_of_dead_lettering(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """reliability #10: a typo in JETTI_ASYNC_URL gets 404 from Jetti; in async mode that is a
    configuration fault: the breaker opens, orders wait, none is dead-lettered."""
    wrong = sandbox.webhook_url.replace("manual-sale.json", "manual-sales.json")
    start_pipeline(JETTI_RELAY_JETTI_ASYNC_URL=wrong)
    keys = ["path-1", "path-2"]
    harness.enqueue([raw_order(k) for k in keys])
    wait_until(lambda: harness.client.exists(harness.keys.breaker()) == 1, what="breaker state")
    harness.wait_states(keys, {OrderState.RETRY_WAIT, OrderState.PENDING})
    state = Breaker(harness.client, harness.keys, probe_s=1.0).state()
    assert state.status == 404 and "JETTI_RELAY_JETTI_ASYNC_URL" in (state.reason or "")
    assert harness.dead.list(limit=10) == []
    assert sandbox.stats()["sales"] == 0


def test_invalid_message_is_dead_lettered_and_the_worker_goes_on(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """A message that breaks the message contract becomes an invalid_input dead letter."""
    start_pipeline()
    harness.app.send_task(IMPORT_TASK, args=[{"v": 99, "keys": "nope"}], queue=ORDERS_QUEUE)
    wait_until(lambda: len(harness.dead.list(limit=10)) == 1, what="the message dead letter")
    (entry,) = harness.dead.list(limit=10)
    assert entry.reason is DeadReason.INVALID_INPUT
    harness.enqueue([raw_order("after")])
    harness.wait_states(["after"], {OrderState.SUBMITTED})


def test_an_update_that_drops_a_sent_line_is_held_as_lines_changed(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti does not say what happens to missing lines, so such an update waits for an engineer."""
    start_pipeline()
    harness.enqueue([raw_order("lc", lines=2)])
    harness.wait_states(["lc"], {OrderState.SUBMITTED})
    harness.enqueue([raw_order("lc", lines=1, updated_at="2026-11-27T12:00:00+00:00")])
    harness.wait_states(["lc"], {OrderState.DEAD})
    entry = harness.dead.get("lc")
    assert entry is not None and entry.reason is DeadReason.LINES_CHANGED
    assert len(sandbox.history("lc")) == 1


def test_two_workers_given_the_same_order_submit_it_once(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Duplicate messages for one order on two worker processes reach Jetti once."""
    start_pipeline(name="a@%h")
    start_pipeline(name="b@%h")
    harness.ledger.record(new_version(raw_order("dup"), source=None, stamped=False), now=0.0)
    for _ in range(6):
        harness.publisher.publish(["dup"])
    harness.wait_states(["dup"], {OrderState.SUBMITTED})
    wait_until(lambda: harness.client.llen(ORDERS_QUEUE) == 0, what="the queue to drain")
    assert len(sandbox.history("dup")) == 1


def test_the_rate_limit_holds_across_two_worker_processes(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Two workers share one bucket: no one-second window sees more than rate + burst requests."""
    env = {"JETTI_RELAY_RATE_PER_S": "20", "JETTI_RELAY_RATE_BURST": "5"}
    start_pipeline(name="a@%h", **env)
    start_pipeline(name="b@%h", pump=False, **env)
    keys = [f"rl-{n}" for n in range(60)]
    harness.enqueue([raw_order(k, lines=1) for k in keys])
    harness.wait_states(keys, {OrderState.SUBMITTED}, timeout_s=60)
    times = sorted(
        datetime.fromisoformat(v["receivedAt"]).timestamp()
        for k in keys
        for v in sandbox.history(k)
    )
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 20 + 5


def test_the_sweeper_republishes_an_order_whose_message_was_lost(
    harness: Harness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """An order written to the ledger whose message never reached the queue still reaches Jetti."""
    harness.ledger.record(new_version(raw_order("lost"), source=None, stamped=False), now=0.0)
    start_pipeline(JETTI_RELAY_STUCK_AFTER_S="1")
    harness.wait_states(["lost"], {OrderState.SUBMITTED})
    assert len(sandbox.history("lost")) == 1


def test_worker_refuses_to_start_when_timeouts_do_not_line_up(redis_url: str) -> None:
    """An HTTP timeout above the soft time limit stops the Celery worker itself at start-up with
    the configuration exit code (2, as `jetti-relay worker`), naming the settings."""
    env = {
        **FAST_ENV,
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": redis_url,
        "JETTI_RELAY_HTTP_READ_TIMEOUT_S": "60",
        "JETTI_RELAY_SOFT_TIME_LIMIT_S": "20",
    }
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-c", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "JETTI_RELAY_SOFT_TIME_LIMIT_S" in done.stderr + done.stdout
    assert "JETTI_RELAY_HTTP_" in done.stderr + done.stdout


def test_a_newer_version_is_not_left_dead_when_the_one_in_flight_is_rejected(
    harness: Harness, start_pipeline: PipelineFactory, sandbox_factory: Any, tmp_path: Path
) -> None:
    """v2 arrives (coalesced) while a bad v1 is in flight; v1's 4xx must not bury v2 in DEAD:
    v2 goes out and lands, and v1's dead letter is resolved, not left `dead`."""
    variants = tmp_path / "variants.json"
    variants.write_text('{"variants": ["SKU-1", "SKU-2"]}')
    jetti = sandbox_factory(throttle=False, variants=variants)
    jetti.set_faults(slow_rate=1.0, slow_s=1.2)
    start_pipeline(
        JETTI_RELAY_JETTI_MODE="sync",
        JETTI_RELAY_RATE_PER_S="50",
        JETTI_RELAY_JETTI_API_URL=jetti.base_url,
        JETTI_RELAY_API_TOKEN=jetti.api_token,
        JETTI_RELAY_CHANNEL_ID=str(jetti.channel_id),
    )
    bad = raw_order("sup", note="v1")
    bad["auto_connect_by_sku"] = False
    bad["lines"][0]["sku"] = "NOT-IN-JETTI"
    harness.enqueue([bad])
    harness.wait_states(["sup"], {OrderState.SUBMITTING})
    summary = harness.enqueue([raw_order("sup", updated_at="2026-11-27T11:00:00+00:00", note="v2")])
    assert (summary.updated, summary.messages) == (1, 0)  # coalesced into the delivery in flight
    jetti.set_faults(slow_rate=0.0)
    harness.wait_states(["sup"], {OrderState.SUBMITTED, OrderState.DEAD})
    assert harness.state("sup") is OrderState.SUBMITTED
    assert sent_body(jetti.history("sup")[-1])["saleDefaults"]["notes"] == "v2"
    entry = harness.dead.get("sup")
    assert entry is not None and entry.reason is DeadReason.REJECTED
    assert entry.status is DeadStatus.RESOLVED
