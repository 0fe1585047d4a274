"""The notifier against a local HTTP receiver and a real Redis: each alert fires once, repeats
every alert_repeat_s while it holds, sends one "resolved"; an acknowledgement stops the repeats,
a silence sends nothing; one of several notifiers sends; a refused send is sent again next pass.
The breaker is tripped and closed through the real Breaker, as a worker and `resume` do."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from ops.notify.notifier import ROLE
from tests.fixtures.notify import PREFIX, MakeNotifier, Receiver
from worker.core.keys import Keys
from worker.store.alerts import acknowledge, alert_state, silence, unsilence
from worker.store.breaker import Breaker
from worker.store.leases import Leader

pytestmark = pytest.mark.integration

WEBHOOK_FIELDS = {
    "alert",
    "status",
    "severity",
    "summary",
    "value",
    "threshold",
    "since",
    "deployment",
}


def trip(client: redis.Redis[bytes], keys: Keys) -> None:
    Breaker(client, keys, probe_s=60.0).trip(reason="unauthorized", status=401, now=time.time())


def close(client: redis.Redis[bytes], keys: Keys) -> None:
    Breaker(client, keys, probe_s=60.0).resume()


def test_an_alert_fires_once(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """The breaker opening sends one "firing" body with the documented fields; later passes
    within alert_repeat_s send nothing more."""
    notifier = make_notifier()
    notifier.pass_once()
    assert receiver.accepted() == []
    trip(client, keys)
    for _ in range(3):
        notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")]
    body = receiver.bodies[0]
    assert set(body) == WEBHOOK_FIELDS
    assert body["severity"] == "critical"
    assert body["deployment"] == PREFIX
    assert "401" in body["summary"]
    assert alert_state(client, keys, "breaker_open").status == "firing"


def test_a_firing_alert_repeats_after_alert_repeat_s(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """While it holds, the alert is sent again once alert_repeat_s has passed."""
    notifier = make_notifier(alert_repeat_s=0.3)
    trip(client, keys)
    notifier.pass_once()
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")]
    time.sleep(0.35)
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")] * 2


def test_an_alert_that_stops_holding_sends_one_resolved(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """The breaker closing sends one "resolved" with the firing's `since`, then nothing."""
    notifier = make_notifier()
    trip(client, keys)
    notifier.pass_once()
    close(client, keys)
    for _ in range(3):
        notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing"), ("breaker_open", "resolved")]
    assert receiver.bodies[0]["since"] == receiver.bodies[1]["since"]
    assert alert_state(client, keys, "breaker_open").status == "resolved"


def test_an_operator_pause_is_not_breaker_open(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """`jetti-relay pause` sends nothing: the operator knows (docs/alerts.md)."""
    Breaker(client, keys, probe_s=60.0).pause()
    make_notifier().pass_once()
    assert receiver.accepted() == []


def test_an_acknowledged_alert_does_not_repeat_but_still_resolves(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """After `acknowledge`, no repeats however long it holds; the resolution is sent."""
    notifier = make_notifier(alert_repeat_s=0.1)
    trip(client, keys)
    notifier.pass_once()
    state = acknowledge(client, keys, "breaker_open", "alice")
    assert state.to_dict()["acked_by"] == "alice"
    time.sleep(0.15)
    notifier.pass_once()
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")]
    close(client, keys)
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


def test_a_silenced_alert_sends_nothing_and_its_state_still_moves(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """Silenced: the firing is recorded but not sent; once unsilenced, it is sent."""
    notifier = make_notifier()
    silence(client, keys, "breaker_open", time.time() + 3600, "bob")
    trip(client, keys)
    notifier.pass_once()
    state = alert_state(client, keys, "breaker_open")
    assert state.status == "firing"
    assert state.to_dict()["silenced_by"] == "bob"
    assert receiver.accepted() == []
    unsilence(client, keys, "breaker_open", "bob")
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")]


def test_a_firing_never_sent_resolves_silently(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """A firing that began and ended under a silence is recorded as resolved; nobody is told
    of it afterwards (there was no firing message to resolve)."""
    notifier = make_notifier()
    silence(client, keys, "breaker_open", time.time() + 3600, "bob")
    trip(client, keys)
    notifier.pass_once()
    close(client, keys)
    notifier.pass_once()
    unsilence(client, keys, "breaker_open", "bob")
    notifier.pass_once()
    assert receiver.accepted() == []
    assert alert_state(client, keys, "breaker_open").status == "resolved"


def test_two_notifiers_send_each_message_once(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """Two notifier loops on one Redis: only the lease holder sends, so the firing and the
    resolution reach the receiver once each."""
    stop = threading.Event()
    notifiers = [make_notifier(holder="host-a:1"), make_notifier(holder="host-b:2")]
    threads = [n.start(stop) for n in notifiers]
    try:
        trip(client, keys)
        deadline = time.monotonic() + 5
        while not receiver.accepted() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # several more passes of both
        close(client, keys)
        while len(receiver.accepted()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    assert receiver.accepted() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


def test_a_new_leader_carries_on_without_sending_again(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """After the leader resigns, the next one finds the firing already sent (state in Redis)."""
    first = make_notifier(holder="host-a:1")
    trip(client, keys)
    first.pass_once()
    Leader(client, keys).resign(ROLE, holder="host-a:1")
    second = make_notifier(holder="host-b:2")
    assert second.pass_once() is not None
    assert receiver.accepted() == [("breaker_open", "firing")]
    close(client, keys)
    second.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing"), ("breaker_open", "resolved")]


def test_a_refused_send_is_sent_again_on_the_next_pass(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """The receiver answers 500: the message stays due, the error is recorded without the
    URL, and the next pass delivers it once."""
    notifier = make_notifier()
    receiver.statuses = [500]
    trip(client, keys)
    report = notifier.pass_once()
    assert report is not None and report.failed == [("breaker_open", "firing", "webhook")]
    error = alert_state(client, keys, "breaker_open").record.last_error
    assert error == "webhook: HTTP 500"
    notifier.pass_once()
    notifier.pass_once()
    assert receiver.accepted() == [("breaker_open", "firing")]
    assert alert_state(client, keys, "breaker_open").record.last_error is None


def test_slack_gets_an_incoming_webhook_body(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """With a Slack URL, Slack gets {"text", "blocks"}: the text names the alert, its status
    and the deployment; both sinks get the message."""
    notifier = make_notifier(notify_slack_url=receiver.url + "/slack")
    trip(client, keys)
    notifier.pass_once()
    slack = [b for b in receiver.bodies if "text" in b]
    assert len(slack) == 1 and receiver.accepted() == [("breaker_open", "firing")]
    assert set(slack[0]) == {"text", "blocks"}
    assert "[FIRING] breaker_open" in slack[0]["text"] and PREFIX in slack[0]["text"]
    assert all(block["type"] in {"section", "context"} for block in slack[0]["blocks"])


def test_without_a_sink_the_notifier_keeps_state_only(
    client: redis.Redis[bytes], keys: Keys, receiver: Receiver, make_notifier: MakeNotifier
) -> None:
    """Neither URL set: the alert is recorded for the console and the CLI, nothing is sent."""
    notifier = make_notifier(notify_webhook_url="")
    trip(client, keys)
    notifier.pass_once()
    assert alert_state(client, keys, "breaker_open").status == "firing"
    assert receiver.accepted() == []
