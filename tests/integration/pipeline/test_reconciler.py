"""The reconciler against the sandbox: Jetti-side rejections, confirmation, out-of-order repair,
the read throttle and status-filtered reads.

End-to-end tests run real `jetti-relay worker` processes (the reconciler runs in the worker's
maintenance thread, leader-elected); the precise ones drive a `Reconciler` in this process
against the same Redis and the sandbox over HTTP.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.factories import raw_order
from tests.fixtures.ledger import deliver, submit
from tests.fixtures.pipeline import PipelineFactory, wait_until
from tests.fixtures.reconciler import ReconcilerHarness
from worker.core.answers import ImportRow
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.ledger import NewVersion
from worker.store.reconcile_state import read_status
from worker.wiring import build_stores

pytestmark = pytest.mark.integration

# A reconciler that acts within a second: tests settle fast.
FAST_RECONCILE = {
    "JETTI_RELAY_RECONCILE_INTERVAL_S": "0.3",
    "JETTI_RELAY_RECONCILE_GRACE_S": "1.0",
}
T_REC = 1_800_000_000.0
REJECT_PROBLEM = "lineItems[0].variant: unknown variant SKU-1 (sandbox says no)"


@pytest.fixture
def books(redis_url: str, sandbox: Any) -> Iterator[ReconcilerHarness]:
    b = ReconcilerHarness(redis_url, sandbox)
    yield b
    b.close()


def test_async_rejection_ends_dead_with_jettis_problem_and_clean_order_confirmed(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti answers 200 to both; its import log rejects one. The worker's reconciler turns it
    into a `rejected_by_jetti` dead letter carrying the problem text, and confirms the other."""
    sandbox.set_faults(reject_matching=['"externalId":"rej-1"'], reject_problem=REJECT_PROBLEM)
    start_pipeline(**FAST_RECONCILE)
    books.enqueue([raw_order("rej-1"), raw_order("ok-1")])
    books.wait_state("rej-1", {OrderState.DEAD})
    books.wait_state("ok-1", {OrderState.CONFIRMED})
    entry = books.dead.get("rej-1")
    assert entry is not None and entry.reason is DeadReason.REJECTED_BY_JETTI
    assert REJECT_PROBLEM in entry.error
    ledger_entry = books.ledger.get("rej-1")
    assert ledger_entry is not None and ledger_entry.dead_reason is DeadReason.REJECTED_BY_JETTI
    assert sandbox.sales("rej-1") == [] and len(sandbox.sales("ok-1")) == 1
    status = read_status(books.client, books.keys)
    assert status.counts["rejected"] == 1 and status.counts["confirmed"] >= 1
    assert status.checkpoint is not None and status.last_error is None


def test_a_replay_of_the_same_payload_is_not_killed_again_by_the_old_error(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Rejected, then fixed on Jetti's side and replayed unchanged: the old error row is still in
    the reconciler's window, but it already acted on it, so the resend is confirmed."""
    sandbox.set_faults(reject_matching=['"externalId":"rp-1"'])
    start_pipeline(JETTI_RELAY_RECONCILE_INTERVAL_S="0.3", JETTI_RELAY_RECONCILE_GRACE_S="4")
    books.enqueue([raw_order("rp-1")])
    books.wait_state("rp-1", {OrderState.DEAD})
    sandbox.set_faults(reject_matching=[])
    assert books.ledger.replay("rp-1", now=time.time())[0] == "rearmed"
    books.publisher.publish(["rp-1"])
    books.wait_state("rp-1", {OrderState.CONFIRMED})
    assert len(sandbox.history("rp-1")) == 2
    assert read_status(books.client, books.keys).counts["rejected"] == 1


def test_a_touch_after_a_rejection_is_sent_again(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Rejected by Jetti's import log, then re-sent by its producer with only updated_at bumped
    (the same payload): the rejection forgot the payload hash, so the worker sends it again
    instead of taking it as already accepted (no background reconciler here to repair that)."""
    sandbox.set_faults(reject_matching=['"externalId":"tch-1"'])
    start_pipeline(JETTI_RELAY_RECONCILE_ENABLED="false")
    books.enqueue([raw_order("tch-1")])
    books.wait_state("tch-1", {OrderState.SUBMITTED})
    wait_until(
        lambda: len(sandbox.imports(external_id="tch-1", status="error")) == 1,
        what="the import-log error",
    )
    assert books.reconciler(grace_s=0.0).run_once().rejected == 1
    dead = books.ledger.get("tch-1")
    assert dead is not None and dead.state is OrderState.DEAD and dead.payload_hash is None
    sandbox.set_faults(reject_matching=[])
    books.enqueue([raw_order("tch-1", updated_at="2026-11-27T11:00:00+00:00")])
    wait_until(
        lambda: len(sandbox.history("tch-1")) == 2, timeout_s=10, what="the touch sent to Jetti"
    )
    books.wait_state("tch-1", {OrderState.SUBMITTED})
    assert len(sandbox.sales("tch-1")) == 1


def test_a_lost_compare_and_set_leaves_a_workers_dead_letter_alone(
    books: ReconcilerHarness,
) -> None:
    """The reconciler read the order SUBMITTED; before its write a newer version came in and a
    worker dead-lettered that one. The reconciler's CAS loses and it writes nothing: the
    worker's dead letter keeps its reason and stays dead (not overwritten, not resolved)."""
    key = "cas-1"
    first = NewVersion(order_key=key, raw=b'{"v":1}', updated_at=None, source="t")
    books.ledger.record(first, now=T_REC)
    deliver(books.ledger, books.keys, key, task_id="t", worker="w", now=T_REC)
    submit(books.ledger, books.keys, key, payload_hash="h1", sale_id=None, now=T_REC + 1)
    stale = books.ledger.get(key)
    assert stale is not None and stale.state is OrderState.SUBMITTED
    second = NewVersion(order_key=key, raw=b'{"v":2}', updated_at=None, source="t")
    books.ledger.record(second, now=T_REC + 2)
    books.dead.put(
        key,
        reason=DeadReason.LINES_CHANGED,
        raw=b'{"v":2}',
        payload=None,
        attempts=[],
        source="t",
        error="worker's verdict",
        now=T_REC + 3,
    )
    books.ledger.mark_dead(key, reason=DeadReason.LINES_CHANGED, now=T_REC + 3)
    row = ImportRow(
        id=77,
        created_at=T_REC + 1,
        status="error",
        external_id=key,
        sale_id=None,
        problem="bad variant",
        payload=None,
    )
    assert not books.reconciler()._rejections._reject(stale, row, T_REC + 4)
    letter = books.dead.get(key)
    assert letter is not None
    assert (letter.reason, letter.status, letter.error) == (
        DeadReason.LINES_CHANGED,
        DeadStatus.DEAD,
        "worker's verdict",
    )


def test_a_pass_that_died_after_its_ledger_write_gets_its_dead_letter_written(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """The ledger CAS comes first: a pass that died before writing the dead letter left the
    order DEAD without one; the next pass finds the row not yet acted on and writes it."""
    sandbox.set_faults(reject_matching=['"externalId":"crash-1"'], reject_problem=REJECT_PROBLEM)
    start_pipeline(JETTI_RELAY_RECONCILE_ENABLED="false")
    books.enqueue([raw_order("crash-1")])
    books.wait_state("crash-1", {OrderState.SUBMITTED})
    wait_until(
        lambda: len(sandbox.imports(external_id="crash-1", status="error")) == 1,
        what="the import-log error",
    )
    entry = books.ledger.get("crash-1")
    assert entry is not None and entry.payload_hash is not None
    assert books.ledger.reject_sent(
        "crash-1",
        payload_hash=entry.payload_hash,
        reason=DeadReason.REJECTED_BY_JETTI,
        error="x",
        now=time.time(),
    )
    assert books.dead.get("crash-1") is None  # the pass died here
    books.reconciler(grace_s=0.0).run_once()
    letter = books.dead.get("crash-1")
    assert letter is not None and letter.reason is DeadReason.REJECTED_BY_JETTI
    assert letter.status is DeadStatus.DEAD and REJECT_PROBLEM in letter.error
    books.reconciler(grace_s=0.0).run_once()
    again = books.dead.get("crash-1")
    assert again is not None and again.last_dead_at == letter.last_dead_at


def test_an_error_about_a_superseded_payload_does_not_kill_the_newer_version(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """v1 is rejected by Jetti, v2 is fine: the error names v1's payload, so v2 stands."""
    sandbox.set_faults(reject_matching=["BROKEN-V1"])
    start_pipeline(JETTI_RELAY_RECONCILE_ENABLED="false")
    books.enqueue([raw_order("sup", note="BROKEN-V1")])
    books.wait_state("sup", {OrderState.SUBMITTED})
    books.enqueue([raw_order("sup", updated_at="2026-11-27T11:00:00+00:00", note="fixed")])
    wait_until(lambda: len(sandbox.history("sup")) == 2, what="v2 in Jetti")
    books.wait_state("sup", {OrderState.SUBMITTED})
    assert len(sandbox.imports(external_id="sup", status="error")) == 1
    report = books.reconciler(grace_s=30).run_once()
    assert report.stale_errors == 1 and report.rejected == 0
    assert books.state("sup") is OrderState.SUBMITTED
    assert books.dead.get("sup") is None


def test_out_of_order_application_is_repaired(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti applies v2 then v1 (out_of_order): the sale ends on v1's quantities. The reconciler
    sees the sale differ from the last payload, sends the latest again, then confirms it."""
    # Jetti applies a batch 2 s after its first import arrives; the grace period must be longer
    # than that application delay (a sale not applied yet is not a difference).
    sandbox.set_faults(out_of_order=True, out_of_order_hold_s=2.0)
    start_pipeline(JETTI_RELAY_RECONCILE_INTERVAL_S="0.3", JETTI_RELAY_RECONCILE_GRACE_S="4")
    books.enqueue([raw_order("ooo", quantity=1)])
    books.wait_state("ooo", {OrderState.SUBMITTED})
    books.enqueue([raw_order("ooo", updated_at="2026-11-27T11:00:00+00:00", quantity=3)])
    books.wait_state("ooo", {OrderState.CONFIRMED}, timeout_s=40)
    history = sandbox.history("ooo")
    assert len(history) == 3  # v1, v2, and v2 again
    sale = sandbox.sales("ooo")[0]
    assert [line["quantity"] for line in sale["lineItems"]] == [3, 3]
    assert read_status(books.client, books.keys).counts["repaired"] >= 1
    events = [e["type"] for e in books.ledger.events("ooo")]
    assert "repair" in events and events[-1] == "confirmed"


def test_reads_are_throttled_paginated_and_filtered_to_errors(
    books: ReconcilerHarness, sandbox_factory: Any
) -> None:
    """With Jetti's throttle on, several runs over many error rows never exceed 2 reads in any
    one-second window, never draw a 429, and every import-log query filters by status."""
    jetti = sandbox_factory(throttle=True)
    with httpx.Client(base_url=jetti.base_url) as http:
        for n in range(120):
            http.post(
                "/webhooks/custom-channels/manual-sale.json",
                content=b'{"externalId": "junk-%d"}' % n,
                headers={"jetti-webhook-hash": jetti.webhook_hash},
            )
        for n in range(30):
            http.post(
                "/webhooks/custom-channels/manual-sale.json",
                content=b'{"externalId": "fine-%d", "lineItems": [{"externalId": "a", '
                b'"name": "A", "quantity": 1, "price": 1, '
                b'"variant": {"sku": "A"}}]}' % n,
                headers={"jetti-webhook-hash": jetti.webhook_hash},
            )
    jetti.wait_applied()
    reconciler = books.reconciler(jetti, page_limit=25, grace_s=60)
    started = time.monotonic()
    reports = [reconciler.run_once() for _ in range(3)]
    elapsed = time.monotonic() - started
    assert all(r.error is None for r in reports)
    assert [r.rows_read for r in reports] == [120, 120, 120]
    reads = jetti.requests("/api/sale-imports.json")
    # Each window is paged to an empty page (a short page may be a server cap, not the end):
    # 5 pages of rows + 1 empty, per run; the first run also re-reads the trailing day once.
    assert len(reads) == sum(r.requests for r in reports) == 3 * 6 + 1
    for row in reads:
        query = parse_qs(row["query"])
        assert query["where[status]"] == ["error"]
        assert "where[createdAt][gte]" in query and "where[createdAt][lt]" in query
    per_window = Counter(int(row["at"]) for row in reads)
    assert max(per_window.values()) <= 2
    assert elapsed >= (len(reads) - 2) / 2.0
    assert "429" not in jetti.stats()["requests"].get("read", {})


def test_only_the_leader_reconciles(books: ReconcilerHarness, sandbox: Any) -> None:
    """Two hosts: the second sees the lease taken and does nothing."""
    first = books.reconciler(holder="host-a:1")
    second = books.reconciler(holder="host-b:1")
    assert first.run_once().led
    assert not second.run_once().led
    assert read_status(books.client, books.keys).holder == "host-a:1"


def test_metrics_health_and_order_show_report_the_reconciler(
    books: ReconcilerHarness, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """The figures the reconciler records reach `metrics`, `health` and `order show`."""
    from prometheus_client import generate_latest

    from ops.commands.health import Thresholds, check_reconciler
    from ops.commands.order import order_view
    from ops.dlq.common import open_stores
    from ops.monitoring.metrics import Sources, build_registry
    from ops.monitoring.sources import RedisQueue

    sandbox.set_faults(reject_matching=['"externalId":"h-bad"'])
    start_pipeline(**FAST_RECONCILE)
    books.enqueue([raw_order("h-ok"), raw_order("h-bad")])
    books.wait_state("h-ok", {OrderState.CONFIRMED})
    books.wait_state("h-bad", {OrderState.DEAD})
    sources = Sources(build_stores(books.settings, books.client), RedisQueue(books.client))
    text = generate_latest(build_registry(sources)).decode()
    assert 'jetti_relay_reconciler_orders_total{outcome="confirmed"}' in text
    assert 'jetti_relay_reconciler_orders_total{outcome="rejected"} 1.0' in text
    assert "jetti_relay_reconciler_checkpoint_lag_seconds" in text
    assert check_reconciler(sources, Thresholds(), time.time()).status == "ok"
    stale = check_reconciler(sources, Thresholds(), time.time() + 3600)
    assert stale.status == "fail" and "behind" in stale.detail
    stores = open_stores(books.redis_url)
    ok_view = order_view(stores, "h-ok", personal=False)
    bad_view = order_view(stores, "h-bad", personal=False)
    assert ok_view is not None and bad_view is not None
    assert ok_view["jetti_confirmation"]["status"] == "confirmed"
    assert bad_view["jetti_confirmation"]["status"] == "rejected_by_jetti"
    stores.client.close()


def test_reconcile_command_runs_one_pass_and_reports_status(
    books: ReconcilerHarness, sandbox: Any
) -> None:
    """`jetti-relay reconcile run` makes one pass; `status --json` shows it; without a token
    the command says the reconciler is off (exit 2)."""
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": books.redis_url,
        "JETTI_RELAY_JETTI_API_URL": sandbox.base_url,
        "JETTI_RELAY_API_TOKEN": sandbox.api_token,
    }

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", "reconcile", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    ran = cli("run")
    assert ran.returncode == 0, ran.stderr
    # One read of the (empty) window, one of the trailing day (the first pass runs it).
    assert json.loads(ran.stdout)["requests"] == 2
    shown = cli("status", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["counts"]["runs"] == 1 and doc["configured"] is True and doc["lag_s"] < 60
    assert sandbox.api_token not in shown.stdout + ran.stdout
    off = cli("run", JETTI_RELAY_API_TOKEN="")
    assert off.returncode == 2 and "off" in off.stderr
