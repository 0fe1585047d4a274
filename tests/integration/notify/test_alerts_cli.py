"""`jetti-relay alerts`: list (`--json`), `ack`, `silence --for`, `unsilence`, with the actor
recorded and audited; `notify --once` runs one pass. Exit codes as the `--help` says."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.fixtures.cli import assert_one_clean_line, jetti_relay
from worker.core.keys import Keys
from worker.store.alerts import ALERT_NAMES
from worker.store.audit import AuditLog, os_user
from worker.store.breaker import Breaker

pytestmark = pytest.mark.integration

KEYS = Keys("t")  # cli_env's key prefix


@pytest.fixture
def breaker_firing(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> redis.Redis[bytes]:
    """The breaker tripped and one `notify --once` pass run (no sink: state only)."""
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", cli_env)
    client: redis.Redis[bytes] = redis.Redis.from_url(cli_env)
    Breaker(client, KEYS, probe_s=60).trip(reason="unauthorized", status=401, now=time.time())
    result = jetti_relay("notify", "--once")
    assert result.exit_code == 0, result.output
    return client


def test_alerts_json_lists_every_alert_with_its_state(breaker_firing: redis.Redis[bytes]) -> None:
    """`alerts --json`: one object per alert; the breaker fires, and no_live_worker (no Celery
    worker runs here to answer the real broker ping)."""
    result = jetti_relay("alerts", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [a["name"] for a in doc] == list(ALERT_NAMES)
    breaker = doc[0]
    assert (breaker["status"], breaker["severity"], breaker["acked"]) == (
        "firing",
        "critical",
        False,
    )
    assert [a["name"] for a in doc if a["status"] == "firing"] == ["breaker_open", "no_live_worker"]
    assert "2 of 5 alerts firing" in jetti_relay("alerts").stdout


def test_ack_and_silence_record_the_actor_and_are_audited(
    breaker_firing: redis.Redis[bytes],
) -> None:
    """`ack` and `silence --for 1h` name the OS user in the alert and in the audit log."""
    acked = json.loads(jetti_relay("alerts", "ack", "breaker_open", "--json").stdout)
    assert (acked["acked"], acked["acked_by"]) == (True, os_user())
    before = time.time()
    result = jetti_relay("alerts", "silence", "no_live_worker", "--for", "1h", "--json")
    silenced = json.loads(result.stdout)
    assert silenced["silenced_by"] == os_user()
    assert before + 3590 < silenced["silenced_until"] < time.time() + 3610
    actions = [r.action for r in AuditLog(breaker_firing, KEYS).read()]
    assert actions == ["alert_silence", "alert_ack"]
    assert not json.loads(jetti_relay("alerts", "unsilence", "no_live_worker", "--json").stdout)[
        "silenced"
    ]


def test_ack_of_an_alert_that_is_not_firing_exits_1(breaker_firing: redis.Redis[bytes]) -> None:
    """Nothing to acknowledge: one line, exit 1."""
    assert_one_clean_line(jetti_relay("alerts", "ack", "oldest_pending"), 1, "not firing")


def test_an_unknown_alert_or_a_bad_duration_is_a_usage_error(cli_env: str) -> None:
    """Exit 2 for a name that is no alert and for `--for soon`."""
    assert jetti_relay("alerts", "ack", "nope").exit_code == 2
    assert jetti_relay("alerts", "silence", "breaker_open", "--for", "soon").exit_code == 2


def test_notify_once_while_another_leads_exits_3(breaker_firing: redis.Redis[bytes]) -> None:
    """Another holder's lease: `notify --once` does nothing and exits 3 (NOT_LEADER)."""
    breaker_firing.set(KEYS.leader("notifier"), "elsewhere:1", px=60_000)
    assert_one_clean_line(jetti_relay("notify", "--once"), 3, "another process leads")


def test_alerts_without_redis_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis unreachable: one line, exit 4."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", "redis://127.0.0.1:1/0")
    assert_one_clean_line(jetti_relay("alerts"), 4, "cannot reach Redis")
