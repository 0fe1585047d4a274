"""`jetti-relay dlq replay` against a real Redis, the sandbox over HTTP and real worker processes.

Dead letters are made two ways: by the pipeline itself (Jetti answering 503 until the attempts
run out, an invalid raw order written past the producer), or directly through the ledger and the
dead-letter store when a test needs a precise starting point (a payload that differs from what
the current code builds, a replay killed between two steps).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.factories import built, new_version, one_line_order
from tests.fixtures.dead_letters import DeadLetterDesk
from tests.fixtures.ledger import submit
from tests.fixtures.pipeline import PipelineFactory, wait_until
from worker.core.jsonio import payload_hash
from worker.core.keys import ORDERS_QUEUE
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.store.audit import os_user
from worker.store.ledger import RecordOutcome

pytestmark = pytest.mark.integration


def test_replay_resolves_an_order_jetti_now_accepts(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Dead after 503s, replayed once Jetti is back: resolved, history kept, sent once."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    start_pipeline(JETTI_RELAY_MAX_ATTEMPTS="2")
    from producers import enqueue
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    app = create_app(Settings(redis_url=desk.redis_url, broker_url=desk.redis_url))
    enqueue([one_line_order("rp-1")], client=desk.client, publisher=Publisher(app))
    wait_until(lambda: desk.status("rp-1") is DeadStatus.DEAD, what="the dead letter")
    sandbox.set_faults(error_rate=0.0)

    result = desk.cli("replay", "rp-1")

    assert result.exit_code == 0, result.output
    assert "replayed 1" in result.output
    wait_until(lambda: desk.status("rp-1") is DeadStatus.RESOLVED, what="resolved")
    assert desk.history("rp-1") == ["dead", "replayed", "resolved"]
    assert len(sandbox.history("rp-1")) == 1
    entry = desk.ledger.get("rp-1")
    assert entry is not None and entry.state is OrderState.SUBMITTED
    assert [a.status for a in desk.ledger.attempts("rp-1")] == [503, 503, 200]


def test_replay_that_fails_again_is_dead_again_with_the_attempt_appended(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti still rejecting: the entry is dead again, its new attempts appended to the old."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    start_pipeline(JETTI_RELAY_MAX_ATTEMPTS="2")
    desk.make_dead("rp-2")

    result = desk.cli("replay", "rp-2")

    assert result.exit_code == 0, result.output
    wait_until(lambda: len(desk.history("rp-2")) == 3, what="the entry dead again")
    assert desk.history("rp-2") == ["dead", "replayed", "dead"]
    entry = desk.dead.get("rp-2")
    assert entry is not None and entry.status is DeadStatus.DEAD
    assert [a.status for a in entry.attempts] == [503, 503, 503]
    assert entry.replay_count == 1


def test_dry_run_sends_nothing_and_says_how_many(desk: DeadLetterDesk, sandbox: Any) -> None:
    """--dry-run plans every entry, prints a sample and changes nothing anywhere."""
    for n in range(3):
        desk.make_dead(f"dry-{n}")

    result = desk.cli("replay", "--all", "--dry-run", "--sample", "2")

    assert result.exit_code == 0, result.output
    assert "would send 3 of 3" in result.output
    assert sum(line.startswith("dry-") for line in result.output.splitlines()) == 2
    for n in range(3):
        assert desk.status(f"dry-{n}") is DeadStatus.DEAD
        entry = desk.ledger.get(f"dry-{n}")
        assert entry is not None and entry.state is OrderState.DEAD
    assert desk.client.llen(ORDERS_QUEUE) == 0
    assert desk.audit.count() == 0


def test_a_rerun_after_a_replay_killed_between_steps_sends_each_order_once(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Runs killed after arming (never published), and after marking replayed, are finished by
    the next run; a third run sends nothing; Jetti sees each order exactly once."""
    keys = ["kill-armed", "kill-marked", "kill-untouched"]
    for key in keys:
        desk.make_dead(key)
    # A run killed after step 2 (armed, nothing published) and one killed after step 3.
    desk.ledger.replay("kill-armed", now=time.time())
    desk.ledger.replay("kill-marked", now=time.time())
    entry = desk.dead.get("kill-marked")
    assert entry is not None
    desk.dead.mark_replayed("kill-marked", now=time.time(), if_dead_at=entry.last_dead_at)
    start_pipeline(JETTI_RELAY_STUCK_AFTER_S="600")

    first = desk.cli("replay", "--all")

    assert first.exit_code == 0, first.output
    assert "replayed 1, republished 2" in first.output
    wait_until(
        lambda: all(desk.status(k) is DeadStatus.RESOLVED for k in keys),
        what="every order resolved",
    )
    second = desk.cli("replay", "--all")
    assert second.exit_code == 0, second.output
    assert "replayed 0, republished 0" in second.output
    wait_until(lambda: desk.client.llen(ORDERS_QUEUE) == 0, what="the queue to drain")
    assert [len(sandbox.history(k)) for k in keys] == [1, 1, 1]


def test_a_replay_killed_with_sigkill_and_run_again_sends_each_order_once(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """kill -9 of a paced replay half-way, then a rerun: every order resolved, none sent twice."""
    keys = [f"k9-{n}" for n in range(6)]
    for key in keys:
        desk.make_dead(key)
    start_pipeline()
    command = [
        sys.executable,
        "-m",
        "ops.cli",
        "dlq",
        "replay",
        "--all",
        "--rate",
        "2",
        "--redis-url",
        desk.redis_url,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: any(desk.status(k) is not DeadStatus.DEAD for k in keys),
            what="the first replayed order",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    rerun = desk.cli("replay", "--all")

    assert rerun.exit_code == 0, rerun.output
    wait_until(
        lambda: all(desk.status(k) is DeadStatus.RESOLVED for k in keys),
        what="every order resolved",
    )
    wait_until(lambda: desk.client.llen(ORDERS_QUEUE) == 0, what="the queue to drain")
    assert [len(sandbox.history(k)) for k in keys] == [1] * len(keys)


def test_raw_file_fixes_an_invalid_order(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any, tmp_path: Path
) -> None:
    """A raw order the worker refused is corrected from a file: a bad file is refused with the
    path of each problem; a good one goes through, with a version above the stored one."""
    start_pipeline()
    bad = one_line_order("fix-1", quantity=0)
    bad_version = new_version(bad, source="shop")
    desk.ledger.record(bad_version, now=time.time())
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    app = create_app(Settings(redis_url=desk.redis_url, broker_url=desk.redis_url))
    Publisher(app).publish(["fix-1"])
    wait_until(lambda: desk.status("fix-1") is DeadStatus.DEAD, what="the invalid order")
    before = desk.ledger.get("fix-1")
    assert before is not None
    still_bad = tmp_path / "still-bad.json"
    still_bad.write_bytes(orjson.dumps(one_line_order("fix-1", quantity=-2)))
    wrong_id = tmp_path / "wrong-id.json"
    wrong_id.write_bytes(orjson.dumps(one_line_order("another")))
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps(one_line_order("fix-1", quantity=2)))

    refused = desk.cli("replay", "fix-1", "--raw-file", str(still_bad))
    wrong = desk.cli("replay", "fix-1", "--raw-file", str(wrong_id))
    result = desk.cli("replay", "fix-1", "--raw-file", str(fixed))

    assert refused.exit_code == 2
    assert f"{still_bad}: lines[0].quantity" in refused.output
    assert wrong.exit_code == 2 and "'another' is not the id" in wrong.output
    assert result.exit_code == 0, result.output
    wait_until(lambda: desk.status("fix-1") is DeadStatus.RESOLVED, what="resolved")
    assert [line["quantity"] for line in sandbox.last_sent("fix-1")["lineItems"]] == [2]
    after = desk.ledger.get("fix-1")
    assert after is not None and after.version > before.version
    # The producer re-sending the order it corrects (same updated_at) cannot undo the fix.
    assert desk.ledger.record(bad_version, now=time.time()).outcome is RecordOutcome.STALE


def test_a_correction_whose_id_is_only_a_suffix_of_the_key_is_refused(
    desk: DeadLetterDesk, tmp_path: Path
) -> None:
    """Key `shop-a:1001` is order 1001: a --raw-file with id `1` is refused (exit 2) and the order
    stays dead; with id 1001 it is replayed."""
    desk.make_dead("shop-a:1001", order=one_line_order("1001"))
    fix = tmp_path / "fix.json"
    fix.write_bytes(orjson.dumps(one_line_order("1", quantity=2)))

    result = desk.cli("replay", "shop-a:1001", "--raw-file", str(fix))

    assert result.exit_code == 2, result.output
    assert "is not the id of order" in result.stderr
    assert desk.state("shop-a:1001") is OrderState.DEAD
    fix.write_bytes(orjson.dumps(one_line_order("1001", quantity=2)))
    assert desk.cli("replay", "shop-a:1001", "--raw-file", str(fix)).exit_code == 0


def test_edit_opens_the_editor_on_the_stored_raw_order(
    desk: DeadLetterDesk,
    start_pipeline: PipelineFactory,
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--edit hands $EDITOR the stored raw order; what the engineer saves is what is sent."""
    desk.make_dead(
        "ed-1", reason=DeadReason.INVALID_INPUT, order=one_line_order("ed-1", quantity=0)
    )
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "doc = json.load(open(sys.argv[1]))\n"
        "doc['lines'][0]['quantity'] = 3\n"
        "json.dump(doc, open(sys.argv[1], 'w'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    start_pipeline()

    result = desk.cli("replay", "ed-1", "--edit")

    assert result.exit_code == 0, result.output
    wait_until(lambda: desk.status("ed-1") is DeadStatus.RESOLVED, what="resolved")
    assert [line["quantity"] for line in sandbox.last_sent("ed-1")["lineItems"]] == [3]


def test_resend_stored_sends_the_stored_payload_byte_for_byte(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """--resend-stored sends the dead letter's payload, not what the current code would build;
    the next delivery re-transforms again."""
    stored = built(one_line_order("rs-1"), notes="as stored")
    desk.make_dead("rs-1", payload=stored)
    start_pipeline()

    result = desk.cli("replay", "rs-1", "--resend-stored")

    assert result.exit_code == 0, result.output
    wait_until(lambda: desk.status("rs-1") is DeadStatus.RESOLVED, what="resolved")
    (version,) = sandbox.history("rs-1")
    assert version["payloadHash"] == payload_hash(stored)
    assert sandbox.last_sent("rs-1")["saleDefaults"]["notes"] == "as stored"
    entry = desk.ledger.get("rs-1")
    assert entry is not None and entry.resend_payload is None


def test_default_replay_re_transforms_the_raw_order(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Without --resend-stored the worker builds the payload from the raw order again."""
    desk.make_dead("rt-1", payload=built(one_line_order("rt-1"), notes="as stored"))
    start_pipeline()

    assert desk.cli("replay", "rt-1").exit_code == 0
    wait_until(lambda: desk.status("rt-1") is DeadStatus.RESOLVED, what="resolved")
    assert sandbox.last_sent("rt-1")["saleDefaults"].get("notes") != "as stored"


def test_replay_sends_a_payload_the_ledger_counted_as_accepted(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """An order Jetti's import log rejected after a 200 (rejected_by_jetti) still carries the
    hash of that payload; a replay sends it anyway instead of skipping it as delivered."""
    order = one_line_order("rbj-1")
    desk.make_dead("rbj-1", reason=DeadReason.REJECTED_BY_JETTI)
    submit(
        desk.ledger,
        desk.keys,
        "rbj-1",
        payload_hash=payload_hash(built(order)),
        line_ids=("rbj-1-l1",),
        sale_id=None,
        now=time.time(),
    )
    desk.ledger.mark_dead("rbj-1", reason=DeadReason.REJECTED_BY_JETTI, now=time.time())
    start_pipeline()

    assert desk.cli("replay", "rbj-1").exit_code == 0

    wait_until(lambda: desk.status("rbj-1") is DeadStatus.RESOLVED, what="resolved")
    assert len(sandbox.history("rbj-1")) == 1


def test_lines_changed_goes_through_only_when_the_engineer_accepts_it(
    desk: DeadLetterDesk, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """An update dropping a line already sent is held; a plain replay holds it again, and
    --accept-line-changes sends it."""
    start_pipeline()
    from producers import enqueue
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    publisher = Publisher(create_app(Settings(redis_url=desk.redis_url, broker_url=desk.redis_url)))
    two_lines = one_line_order("lc-1")
    two_lines["lines"].append(
        {"id": "lc-1-l2", "sku": "SKU-2", "name": "Cup", "quantity": 1, "unit_price": "3"}
    )
    enqueue([two_lines], client=desk.client, publisher=publisher)
    wait_until(
        lambda: desk.state("lc-1") is OrderState.SUBMITTED, what="the first version submitted"
    )
    one_line = one_line_order("lc-1")
    one_line["updated_at"] = "2026-11-27T11:00:00+00:00"
    enqueue([one_line], client=desk.client, publisher=publisher)
    wait_until(lambda: desk.status("lc-1") is DeadStatus.DEAD, what="lines_changed")

    assert desk.cli("replay", "lc-1").exit_code == 0
    wait_until(lambda: desk.history("lc-1") == ["dead", "replayed", "dead"], what="held again")
    assert desk.cli("replay", "lc-1", "--accept-line-changes").exit_code == 0

    wait_until(lambda: desk.status("lc-1") is DeadStatus.RESOLVED, what="resolved")
    assert [
        len(sent["lineItems"]) for sent in (json.loads(v["body"]) for v in sandbox.history("lc-1"))
    ] == [2, 1]


def test_replay_by_filter_takes_only_matching_entries_and_honours_limit(
    desk: DeadLetterDesk, sandbox: Any
) -> None:
    """Filters select entries (reason, key glob); --limit caps how many are sent."""
    for n in range(3):
        desk.make_dead(f"a:{n}")
    desk.make_dead("b:0", reason=DeadReason.REJECTED)

    result = desk.cli("replay", "--key", "a:*", "--reason", "retries_exhausted", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert "replayed 2" in result.output
    states = {k: desk.status(k) for k in ("a:0", "a:1", "a:2", "b:0")}
    assert sorted(map(str, states.values())) == ["dead", "dead", "replayed", "replayed"]
    assert states["b:0"] is DeadStatus.DEAD
    records = desk.audit.read(action="replay")
    assert len(records) == 2 and all(r.actor == os_user() for r in records)


def test_replay_usage_errors_exit_2(desk: DeadLetterDesk, tmp_path: Path) -> None:
    """No key and no filter, two modes at once, --raw-file with two keys: refused, exit 2."""
    desk.make_dead("u-1")
    assert desk.cli("replay").exit_code == 2
    assert desk.cli("replay", "u-1", "--resend-stored", "--edit").exit_code == 2
    raw = tmp_path / "r.json"
    raw.write_bytes(orjson.dumps(one_line_order("u-1")))
    assert desk.cli("replay", "u-1", "u-2", "--raw-file", str(raw)).exit_code == 2
    assert desk.status("u-1") is DeadStatus.DEAD


def test_replay_of_an_unknown_key_exits_3(desk: DeadLetterDesk) -> None:
    """A key with no dead letter is reported; when no named key has one, exit 3 (not found)."""
    result = desk.cli("replay", "nope")
    assert result.exit_code == 3
    assert "nope: no dead letter" in result.output


def test_replay_of_only_unknown_keys_exits_3(desk: DeadLetterDesk) -> None:
    """Only unknown keys: exit 3; a known key with an unknown one: exit 1 (done in part)."""
    result = desk.cli("replay", "nope-1", "nope-2")
    assert result.exit_code == 3, result.output
    assert "nope-1: no dead letter" in result.stderr
    desk.make_dead("known-1")
    assert desk.cli("replay", "known-1", "nope-1").exit_code == 1  # done in part
