"""The relay's alert rules read what health and the metrics read: dead letters of the last hour
from the per-minute counters, the oldest unsettled order from the ledger, the reconciler only
where it runs, and the workers by a broker ping."""

from __future__ import annotations

import time

import pytest
import redis

from ops.notify.rules import DEAD_LETTER_WINDOW_MIN
from tests.fixtures.notify import MakeNotifier, Receiver
from tests.integration.store.ledger_steps import version
from worker.core.keys import Keys
from worker.store.alerts import ALERT_NAMES, alert_state, alert_states
from worker.store.ledger import Ledger
from worker.store.reconcile_state import ReconcileState

pytestmark = pytest.mark.integration


def add_dead(client: redis.Redis[bytes], keys: Keys, count: int, *, minutes_ago: int) -> None:
    """Dead letters as the ledger scripts' counter() records them in the per-minute hash."""
    minute = int(time.time() // 60) - minutes_ago
    client.hincrby(keys.minute_counters(minute), "dead_invalid_input", count)


def test_dead_letters_rising_counts_the_last_hour_against_the_threshold(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """Dead letters within 60 minutes reaching alert_dead_letters_per_hour fire the alert;
    older minutes do not count."""
    notifier = make_notifier(alert_dead_letters_per_hour=5)
    add_dead(client, keys, 100, minutes_ago=DEAD_LETTER_WINDOW_MIN + 1)
    add_dead(client, keys, 2, minutes_ago=30)
    add_dead(client, keys, 2, minutes_ago=0)
    notifier.pass_once()
    assert alert_state(client, keys, "dead_letters_rising").record.value == 4
    assert receiver.accepted() == []
    add_dead(client, keys, 1, minutes_ago=0)
    notifier.pass_once()
    assert receiver.accepted() == [("dead_letters_rising", "firing")]
    assert receiver.bodies[0]["value"] == 5 and receiver.bodies[0]["threshold"] == 5


def test_oldest_pending_fires_for_an_order_waiting_past_the_threshold(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """An order recorded alert_oldest_pending_s ago and not settled fires oldest_pending,
    naming the order key."""
    ledger = Ledger(client, keys, body_ttl_s=100.0, tombstone_ttl_s=1000.0)
    ledger.record(version('{"a":1}', key="shop-a:1001"), now=time.time() - 120)
    make_notifier(alert_oldest_pending_s=300).pass_once()
    assert receiver.accepted() == []
    make_notifier(alert_oldest_pending_s=60).pass_once()
    assert receiver.accepted() == [("oldest_pending", "firing")]
    assert "shop-a:1001" in receiver.bodies[0]["summary"]


def test_no_live_worker_fires_when_no_worker_answers_the_ping(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """A broker ping nobody answers fires no_live_worker (critical)."""
    make_notifier(ping=lambda timeout_s: []).pass_once()
    assert receiver.accepted() == [("no_live_worker", "firing")]
    assert receiver.bodies[0]["severity"] == "critical"


def test_reconciler_lag_never_holds_while_the_reconciler_is_off(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """No API token: the reconciler does not run, so its lag is no alert; every alert has a
    record after a pass, and none fires on an empty deployment with a live worker."""
    make_notifier().pass_once()
    states = alert_states(client, keys)
    assert [s.name for s in states] == list(ALERT_NAMES)
    assert all(s.record.evaluated_at is not None for s in states)
    assert [s.name for s in states if s.status == "firing"] == []
    assert alert_state(client, keys, "reconciler_lag").record.summary == "The reconciler is off."


def test_reconciler_lag_fires_when_the_import_log_read_lags(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """With the reconciler on, a checkpoint older than alert_reconciler_lag_s fires."""
    now = time.time()
    state = ReconcileState(client, keys)
    state.set_checkpoint(now - 600)
    state.record_run(now=now, holder="h:1", interval_s=60, grace_s=0, counts={}, error=None)
    on = {"api_token": "t0ken", "reconcile_enabled": True}
    make_notifier(alert_reconciler_lag_s=900, **on).pass_once()
    assert receiver.accepted() == []
    make_notifier(alert_reconciler_lag_s=300, **on).pass_once()
    assert receiver.accepted() == [("reconciler_lag", "firing")]
    assert receiver.bodies[0]["value"] == pytest.approx(600, abs=5)
