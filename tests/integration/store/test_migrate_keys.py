"""`jetti-relay migrate-keys` on a Redis written in the format before issue 12 (reliability #1).

The old data is written by hand with raw Redis commands, key names spelled as the old
`worker/core/keys.py` built them (raw order key inside the name), including the damage the review
describes: order `A` half-recorded because `A:events`'s hash held its events name, the DLQ index
taken over by the dead letter of order `idx:all` (so `X`'s dead letter never reached it), `X`'s
attempts name holding `X:attempts`'s dead letter, and an order frozen by a version in 2099.
The command runs as a subprocess; then the pipeline must deliver the orders.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from ops.commands.migrate import migrate_keys
from tests.factories import raw_order
from tests.fixtures.pipeline import Harness, PipelineFactory
from tests.fixtures.sandbox import sent_body
from worker.core.jsonio import dumps_canonical
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.ledger import Ledger, NewVersion, RecordOutcome

pytestmark = pytest.mark.integration

P = "jr"  # the default key prefix, which Harness uses
STAMP = "2026-11-27T10:00:00+00:00"
STAMP_MS = int(datetime.fromisoformat(STAMP).timestamp() * 1000)
FAR_FUTURE_MS = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)


def old_order(
    client: redis.Redis[bytes],
    key: str,
    *,
    state: str,
    now: float,
    ts_ms: int = STAMP_MS,
    events: bool = True,
    shed: bool = False,
) -> None:
    """A ledger entry as the old scripts wrote it: `jr:order:<raw key>` and its lists."""
    raw = dumps_canonical(raw_order(key, note="old"))
    seq = client.incr(f"{P}:seq")
    fields: dict[str, Any] = {
        "raw_hash": hashlib.sha256(raw).hexdigest(),
        "v_ts": ts_ms,
        "v_seq": seq,
        "first_seen_at": now,
        "enqueued_at": now,
        "source": "old",
        "attempts": 0,
        "d_started": 0,
        "d_finished": 0,
        "stale": 0,
        "state": state,
        "state_since": now,
    }
    if shed:
        fields["shed_at"] = now
        client.zadd(f"{P}:idx:tombstone", {key: now + 3600})
    else:
        fields["raw"] = raw
    client.hset(f"{P}:order:{key}", mapping=fields)
    client.zadd(f"{P}:idx:state:{state}", {key: now})
    if state in ("pending", "submitting", "retry_wait"):
        client.zadd(f"{P}:idx:enqueued", {key: now})
    if events:
        client.rpush(f"{P}:order:{key}:events", json.dumps({"type": "received", "at": now}))


def old_dead_letter(client: redis.Redis[bytes], key: str, *, now: float, index: bool) -> None:
    """A dead letter as the old `DeadLetters.put` wrote it (`index`: its ZADD on the DLQ index
    went through; after `idx:all` took that name over, every later one failed)."""
    client.hset(
        f"{P}:dead:{key}",
        mapping={
            "reason": "rejected",
            "status": "dead",
            "error": "HTTP 400",
            "last_dead_at": now,
            "first_dead_at": now,
            "status_since": now,
            "replay_count": 0,
            "email_hashes": "",
            "raw": dumps_canonical(raw_order(key)),
            "http_status": "400",
            "source": "old",
        },
    )
    client.rpush(
        f"{P}:dead:{key}:history", json.dumps({"at": now, "status": "dead", "reason": "rejected"})
    )
    if index:
        client.zadd(f"{P}:dead:idx:all", {key: now})
    client.zadd(f"{P}:dead:idx:reason:rejected", {key: now})
    client.zadd(f"{P}:dead:idx:status:dead", {key: now})


def write_old_store(client: redis.Redis[bytes]) -> None:
    now = time.time() - 60
    old_order(client, "A:events", state="pending", now=now)
    # A came second: record_one wrote its hash and indexes, then RPUSH onto A:events's hash
    # failed (WRONGTYPE); no events, no message.
    old_order(client, "A", state="pending", now=now, events=False)
    client.set(f"{P}:lock:A:events", "old-token", px=600_000)
    old_order(client, "F:1", state="submitted", now=now, ts_ms=FAR_FUTURE_MS)
    old_order(client, "T:1", state="submitted", now=now, shed=True)
    # `idx:all` was dead-lettered on an empty DLQ: its hash took the index name.
    old_order(client, "idx:all", state="dead", now=now)
    client.hset(
        f"{P}:dead:idx:all",
        mapping={
            "reason": "rejected",
            "status": "dead",
            "error": "HTTP 400",
            "last_dead_at": now,
            "first_dead_at": now,
            "status_since": now,
            "replay_count": 0,
            "email_hashes": "",
        },
    )
    client.zadd(f"{P}:dead:idx:reason:rejected", {"idx:all": now})
    client.zadd(f"{P}:dead:idx:status:dead", {"idx:all": now})
    for key in ("X:attempts", "X"):
        old_order(client, key, state="dead", now=now)
        old_dead_letter(client, key, now=now, index=False)


def migrate(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "migrate-keys", "--redis-url", redis_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_keys_renames_repairs_and_the_pipeline_delivers(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Old-format data, damaged by collisions and a 2099 version, is renamed and repaired; a
    dry run changes nothing; a second run finds nothing; then the orders go through."""
    harness = Harness(redis_url)
    client, keys = harness.client, harness.keys
    write_old_store(client)

    before = sorted(client.keys("*"))
    dry = migrate(redis_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would rename" in dry.stdout and dry.stdout.splitlines()[-1].startswith("dry run:")
    dry_json = migrate(redis_url, "--dry-run", "--json")
    planned = json.loads(dry_json.stdout)
    assert planned["dry_run"] and planned["republished"] == ["A"]
    assert {r["order_key"] for r in planned["reindexed"]} >= {"X", "X:attempts"}
    assert sorted(client.keys("*")) == before

    done = migrate(redis_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["complete"] and report["republished"] == ["A"]
    assert [v["order_key"] for v in report["versions_lowered"]] == ["F:1"]
    assert {r["order_key"] for r in report["reindexed"]} >= {"idx:all", "X", "X:attempts"}

    # Every per-order name is now the one `Keys` builds, with the right type.
    for key in ("A:events", "A", "F:1", "T:1", "idx:all", "X", "X:attempts"):
        assert client.type(keys.order(key)) == b"hash", key
    for key in ("A:events", "F:1", "T:1", "idx:all", "X", "X:attempts"):
        assert client.type(keys.order_events(key)) == b"list", key
    assert client.get(keys.lock("A:events")) == b"old-token"
    assert client.type(keys.dead_index()) == b"zset"
    for key in ("idx:all", "X", "X:attempts"):
        entry = harness.dead.get(key)
        assert entry is not None and entry.status is DeadStatus.DEAD, key
        assert entry.reason is DeadReason.REJECTED
    assert {e.order_key for e in harness.dead.list(limit=10)} == {"idx:all", "X", "X:attempts"}
    tomb = harness.ledger.get("T:1")
    assert tomb is not None and tomb.raw is None and tomb.state is OrderState.SUBMITTED
    assert any(e["type"] == "version_lowered" for e in harness.ledger.events("F:1"))

    again = migrate(redis_url, "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["renamed"] == [] and second["republished"] == []
    assert second["versions_lowered"] == [] and second["reindexed"] == []

    # The pipeline: A was re-published by the migration; A:events's message was still queued
    # in the old world (published here); F:1's real update now wins over the 2099 version.
    client.delete(f"{P}:lock:A:events", keys.lock("A:events"))
    harness.publisher.publish(["A:events"])
    start_pipeline()
    harness.wait_states(["A", "A:events"], {OrderState.SUBMITTED})
    for key in ("A", "A:events"):
        (sale,) = sandbox.history(key)
        assert sent_body(sale)["externalId"] == key
    update = raw_order("F:1", updated_at=datetime.now(UTC).isoformat(), note="real update")
    summary = harness.enqueue([update])
    assert summary.updated == 1 and summary.stale == 0
    harness.wait_states(["F:1"], {OrderState.SUBMITTED})
    (sale,) = sandbox.history("F:1")
    assert sent_body(sale)["saleDefaults"]["notes"] == "real update"
    # The DLQ takes new dead letters again.
    sandbox.set_faults(fail_next=1, fail_next_status=400)
    harness.enqueue([raw_order("after")])
    harness.wait_states(["after"], {OrderState.DEAD})
    assert harness.dead.stats().total == 4


def test_a_name_taken_under_both_formats_is_left_and_exit_1(redis_url: str) -> None:
    """An entry under both the old and the new name (a new release ran before the migration) is
    a conflict: left as is, printed, exit 1; lists under both names are merged, old first."""
    harness = Harness(redis_url)
    client, keys = harness.client, harness.keys
    now = time.time()
    old_order(client, "B:1", state="pending", now=now)
    client.hset(keys.order("B:1"), mapping={"state": "pending", "v_ts": STAMP_MS})
    client.rpush(keys.order_events("B:1"), json.dumps({"type": "new"}))
    result = CliRunner().invoke(migrate_keys, ["--redis-url", redis_url])
    assert result.exit_code == 1, result.output
    assert 'conflict: "jr:order:B:1"' in result.output
    assert client.exists(f"{P}:order:B:1") == 1
    events = [json.loads(e)["type"] for e in client.lrange(keys.order_events("B:1"), 0, -1)]
    assert events == ["received", "new"]
    assert client.exists(f"{P}:order:B:1:events") == 0


def test_a_large_store_reports_progress_on_stderr(
    redis_client: redis.Redis[bytes], redis_url: str
) -> None:
    """Not on a terminal, a run over thousands of index members prints progress lines on
    stderr (a batch job's log) and still ends with the summary line on stdout."""
    pipe = redis_client.pipeline(transaction=False)
    for i in range(2500):
        pipe.hset(f"{P}:order:bulk:{i}", mapping={"state": "submitted", "v_ts": STAMP_MS})
        pipe.zadd(f"{P}:idx:state:submitted", {f"bulk:{i}": 1.0})
    pipe.execute()
    result = migrate(redis_url)
    assert result.returncode == 0, result.stderr
    assert "migrate-keys: " in result.stderr and "of 2500 index members" in result.stderr
    assert result.stdout.splitlines()[-1].startswith("orders 2500, dead letters 0: rename 2500")
    assert redis_client.exists(f"{P}:order:bulk%3A7") == 1


def test_an_old_pending_cancellation_is_marked_terminal(redis_url: str) -> None:
    """An entry recorded before the `cancel` flag, whose stored raw order carries
    `cancelled_at`, is marked cancelled by the migration: a later copy without `cancelled_at`
    is then `after_cancel` (recorded, not sent) instead of replacing the cancellation."""
    harness = Harness(redis_url)
    client, keys = harness.client, harness.keys
    now = time.time() - 60
    old_order(client, "C:1", state="pending", now=now)
    cancelled = dumps_canonical({**raw_order("C:1"), "cancelled_at": STAMP})
    client.hset(f"{P}:order:C:1", "raw", cancelled)
    old_order(client, "C:2", state="pending", now=now)  # not a cancellation: left alone
    done = migrate(redis_url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cancels_marked"] == ["C:1"]
    assert client.hget(keys.order("C:1"), "cancel") == b"1"
    assert client.hget(keys.order("C:2"), "cancel") is None
    later = NewVersion(
        order_key="C:1",
        raw=dumps_canonical(raw_order("C:1", note="later")),
        updated_at=datetime(2026, 11, 27, 11, tzinfo=UTC),
        source="new",
    )
    result = Ledger(client, keys).record(later, now=time.time())
    assert result.outcome is RecordOutcome.AFTER_CANCEL
    assert client.hget(keys.order("C:1"), "raw") == cancelled


def test_a_frozen_order_takes_the_update_it_counted_stale(redis_url: str) -> None:
    """Frozen by a 2099 version, the order counted a real update (T1) stale. After the
    migration, that same update sent again wins; a copy older than T1 is still stale."""
    harness = Harness(redis_url)
    client = harness.client
    now = time.time() - 600
    old_order(client, "F:2", state="submitted", now=now, ts_ms=FAR_FUTURE_MS)
    t1 = datetime(2026, 11, 27, 11, tzinfo=UTC)
    t1_ms = int(t1.timestamp() * 1000)
    client.rpush(
        f"{P}:order:F:2:events",
        json.dumps(
            {
                "type": "received",
                "outcome": "stale",
                "ts_ms": t1_ms,
                "current_ts_ms": FAR_FUTURE_MS,
                "at": now + 60,
            }
        ),
    )
    done = migrate(redis_url, "--json")
    assert done.returncode == 0, done.stderr
    (lowered,) = json.loads(done.stdout)["versions_lowered"]
    assert (lowered["order_key"], lowered["to_ts_ms"]) == ("F:2", t1_ms - 1)
    older = raw_order(
        "F:2", updated_at=datetime(2026, 11, 27, 10, 30, tzinfo=UTC).isoformat(), note="older"
    )
    assert harness.enqueue([older]).stale == 1
    update = raw_order("F:2", updated_at=t1.isoformat(), note="the update counted stale")
    assert harness.enqueue([update]).updated == 1


def test_a_refusal_part_way_exits_5_and_a_rerun_finishes(own_redis_server: Any) -> None:
    """Redis refusing writes (OOM under noeviction) is exit 5, not 1 ("names left"); once
    Redis takes writes again the same command finishes the job."""
    client: redis.Redis[bytes] = redis.Redis.from_url(own_redis_server.url)
    try:
        # Renames need no memory; lowering a 2099 version writes (HSET), which OOM refuses.
        old_order(client, "O:1", state="pending", now=time.time() - 60, ts_ms=FAR_FUTURE_MS)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        refused = migrate(own_redis_server.url)
        assert refused.returncode == 5, refused.stderr
        assert "run migrate-keys again" in refused.stderr
        client.config_set("maxmemory", "0")
        done = migrate(own_redis_server.url)
        assert done.returncode == 0, done.stderr
        assert client.type(f"{P}:order:O%3A1") == b"hash"
        assert int(client.hget(f"{P}:order:O%3A1", "v_ts") or 0) < FAR_FUTURE_MS
    finally:
        client.config_set("maxmemory", "0")
        client.close()
