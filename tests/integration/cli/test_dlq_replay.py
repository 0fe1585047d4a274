"""`jetti-relay dlq` against a real Redis, the sandbox over HTTP and real worker processes.

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
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result

from ops.dlq.cli import dlq
from tests.fixtures.pipeline import PipelineFactory, wait_until
from worker.core.contract import parse_raw_order
from worker.core.jsonio import dumps_canonical, loads_document, payload_hash
from worker.core.keys import ORDERS_QUEUE, Keys
from worker.core.records import Attempt
from worker.core.rules import Rules
from worker.core.states import DeadReason, DeadStatus, OrderState
from worker.core.transform import transform
from worker.store.audit import AuditLog, os_user
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger, NewVersion, RecordOutcome

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"


def raw_order(
    order_id: str, *, email: str = EMAIL, quantity: int = 1, note: str = ""
) -> dict[str, Any]:
    return {
        "id": order_id,
        "number": f"#{order_id}",
        "updated_at": "2026-11-27T10:00:00+00:00",
        "notes": note,
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": email},
        "shipping_address": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "line1": "1 Main St",
            "city": "London",
            "zip": "N1",
            "country": "GB",
        },
        "lines": [
            {
                "id": f"{order_id}-l1",
                "sku": "SKU-1",
                "name": "Mug",
                "quantity": quantity,
                "unit_price": "12.10",
            }
        ],
        "auto_connect_by_sku": True,
    }


class Books:
    """The stores of one test, and the CLI pointed at the test Redis."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
        self.keys = Keys()
        self.ledger = Ledger(self.client, self.keys)
        self.dead = DeadLetters(self.client, self.keys)
        self.audit = AuditLog(self.client, self.keys)

    def cli(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(dlq, [*args, "--redis-url", self.redis_url], input=input)

    def make_dead(
        self,
        key: str,
        *,
        reason: DeadReason = DeadReason.RETRIES_EXHAUSTED,
        order: dict[str, Any] | None = None,
        payload: bytes | None = None,
        excerpt: str = "Jetti unavailable (503)",
        now: float | None = None,
    ) -> None:
        """An order the pipeline gave up on: ledger DEAD, dead letter with one attempt."""
        at = time.time() if now is None else now
        raw = orjson.dumps(order or raw_order(key))
        recorded = self.ledger.record(NewVersion(key, raw, None, "shop"), now=at)
        attempt = Attempt(
            at=at,
            status=503,
            error_class="JettiUnavailable",
            excerpt=excerpt,
            worker="w1",
            outcome="error",
        )
        self.ledger.mark_dead(key, reason=reason, now=at, attempt=attempt)
        if payload is None and reason is not DeadReason.INVALID_INPUT:
            payload = built(order or raw_order(key))
        self.dead.put(
            key,
            reason=reason,
            raw=raw,
            payload=payload,
            payload_version=recorded.version,
            attempts=self.ledger.attempts(key),
            source="shop",
            error=f"Jetti unavailable (503): {excerpt}",
            now=at,
        )

    def state(self, key: str) -> OrderState | None:
        entry = self.ledger.get(key)
        return entry.state if entry else None

    def status(self, key: str) -> DeadStatus | None:
        entry = self.dead.get(key)
        return entry.status if entry else None

    def history(self, key: str) -> list[str]:
        entry = self.dead.get(key)
        return [str(h.status) for h in entry.history] if entry else []


def built(order: dict[str, Any], **changes: Any) -> bytes:
    """The payload the current code builds for `order`, with `saleDefaults` changes."""
    payload = transform(parse_raw_order(order), Rules.empty()).payload
    payload["saleDefaults"].update(changes)
    return dumps_canonical(payload)


def sent_body(sandbox: Any, key: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(sandbox.history(key)[-1]["body"])
    return body


@pytest.fixture
def books(redis_url: str, monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> Iterator[Books]:
    # The CLI reads Settings from the environment: the test Redis, and the secrets it must mask.
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_BROKER_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_WEBHOOK_HASH", sandbox.webhook_hash)
    b = Books(redis_url)
    yield b
    b.client.close()


# --- replay through the pipeline ------------------------------------------------------------


def test_replay_resolves_an_order_jetti_now_accepts(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Dead after 503s, replayed once Jetti is back: resolved, history kept, sent once."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    start_pipeline(JETTI_RELAY_MAX_ATTEMPTS="2")
    from producers import enqueue
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    app = create_app(Settings(redis_url=books.redis_url, broker_url=books.redis_url))
    enqueue([raw_order("rp-1")], client=books.client, publisher=Publisher(app))
    wait_until(lambda: books.status("rp-1") is DeadStatus.DEAD, what="the dead letter")
    sandbox.set_faults(error_rate=0.0)

    result = books.cli("replay", "rp-1")

    assert result.exit_code == 0, result.output
    assert "replayed 1" in result.output
    wait_until(lambda: books.status("rp-1") is DeadStatus.RESOLVED, what="resolved")
    assert books.history("rp-1") == ["dead", "replayed", "resolved"]
    assert len(sandbox.history("rp-1")) == 1
    entry = books.ledger.get("rp-1")
    assert entry is not None and entry.state is OrderState.SUBMITTED
    assert [a.status for a in books.ledger.attempts("rp-1")] == [503, 503, 200]


def test_replay_that_fails_again_is_dead_again_with_the_attempt_appended(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Jetti still rejecting: the entry is dead again, its new attempts appended to the old."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    start_pipeline(JETTI_RELAY_MAX_ATTEMPTS="2")
    books.make_dead("rp-2")

    result = books.cli("replay", "rp-2")

    assert result.exit_code == 0, result.output
    wait_until(lambda: len(books.history("rp-2")) == 3, what="the entry dead again")
    assert books.history("rp-2") == ["dead", "replayed", "dead"]
    entry = books.dead.get("rp-2")
    assert entry is not None and entry.status is DeadStatus.DEAD
    assert [a.status for a in entry.attempts] == [503, 503, 503]
    assert entry.replay_count == 1


def test_dry_run_sends_nothing_and_says_how_many(books: Books, sandbox: Any) -> None:
    """--dry-run plans every entry, prints a sample and changes nothing anywhere."""
    for n in range(3):
        books.make_dead(f"dry-{n}")

    result = books.cli("replay", "--all", "--dry-run", "--sample", "2")

    assert result.exit_code == 0, result.output
    assert "would send 3 of 3" in result.output
    assert sum(line.startswith("dry-") for line in result.output.splitlines()) == 2
    for n in range(3):
        assert books.status(f"dry-{n}") is DeadStatus.DEAD
        entry = books.ledger.get(f"dry-{n}")
        assert entry is not None and entry.state is OrderState.DEAD
    assert books.client.llen(ORDERS_QUEUE) == 0
    assert books.audit.count() == 0


def test_a_rerun_after_a_replay_killed_between_steps_sends_each_order_once(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Runs killed after arming (never published), and after marking replayed, are finished by
    the next run; a third run sends nothing; Jetti sees each order exactly once."""
    keys = ["kill-armed", "kill-marked", "kill-untouched"]
    for key in keys:
        books.make_dead(key)
    # A run killed after step 2 (armed, nothing published) and one killed after step 3.
    books.ledger.replay("kill-armed", now=time.time())
    books.ledger.replay("kill-marked", now=time.time())
    entry = books.dead.get("kill-marked")
    assert entry is not None
    books.dead.mark_replayed("kill-marked", now=time.time(), if_dead_at=entry.last_dead_at)
    start_pipeline(JETTI_RELAY_STUCK_AFTER_S="600")

    first = books.cli("replay", "--all")

    assert first.exit_code == 0, first.output
    assert "replayed 1, republished 2" in first.output
    wait_until(
        lambda: all(books.status(k) is DeadStatus.RESOLVED for k in keys),
        what="every order resolved",
    )
    second = books.cli("replay", "--all")
    assert second.exit_code == 0, second.output
    assert "replayed 0, republished 0" in second.output
    wait_until(lambda: books.client.llen(ORDERS_QUEUE) == 0, what="the queue to drain")
    assert [len(sandbox.history(k)) for k in keys] == [1, 1, 1]


def test_a_replay_killed_with_sigkill_and_run_again_sends_each_order_once(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """kill -9 of a paced replay half-way, then a rerun: every order resolved, none sent twice."""
    keys = [f"k9-{n}" for n in range(6)]
    for key in keys:
        books.make_dead(key)
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
        books.redis_url,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: any(books.status(k) is not DeadStatus.DEAD for k in keys),
            what="the first replayed order",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    rerun = books.cli("replay", "--all")

    assert rerun.exit_code == 0, rerun.output
    wait_until(
        lambda: all(books.status(k) is DeadStatus.RESOLVED for k in keys),
        what="every order resolved",
    )
    wait_until(lambda: books.client.llen(ORDERS_QUEUE) == 0, what="the queue to drain")
    assert [len(sandbox.history(k)) for k in keys] == [1] * len(keys)


def test_raw_file_fixes_an_invalid_order(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any, tmp_path: Path
) -> None:
    """A raw order the worker refused is corrected from a file: a bad file is refused with the
    path of each problem; a good one goes through, with a version above the stored one."""
    start_pipeline()
    bad = raw_order("fix-1", quantity=0)
    bad_version = NewVersion(
        "fix-1", orjson.dumps(bad), datetime.fromisoformat(bad["updated_at"]), "shop"
    )
    books.ledger.record(bad_version, now=time.time())
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    app = create_app(Settings(redis_url=books.redis_url, broker_url=books.redis_url))
    Publisher(app).publish(["fix-1"])
    wait_until(lambda: books.status("fix-1") is DeadStatus.DEAD, what="the invalid order")
    before = books.ledger.get("fix-1")
    assert before is not None
    still_bad = tmp_path / "still-bad.json"
    still_bad.write_bytes(orjson.dumps(raw_order("fix-1", quantity=-2)))
    wrong_id = tmp_path / "wrong-id.json"
    wrong_id.write_bytes(orjson.dumps(raw_order("another")))
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps(raw_order("fix-1", quantity=2)))

    refused = books.cli("replay", "fix-1", "--raw-file", str(still_bad))
    wrong = books.cli("replay", "fix-1", "--raw-file", str(wrong_id))
    result = books.cli("replay", "fix-1", "--raw-file", str(fixed))

    assert refused.exit_code == 2
    assert f"{still_bad}: lines[0].quantity" in refused.output
    assert wrong.exit_code == 2 and "'another' is not the id" in wrong.output
    assert result.exit_code == 0, result.output
    wait_until(lambda: books.status("fix-1") is DeadStatus.RESOLVED, what="resolved")
    assert [line["quantity"] for line in sent_body(sandbox, "fix-1")["lineItems"]] == [2]
    after = books.ledger.get("fix-1")
    assert after is not None and after.version > before.version
    # The producer re-sending the order it corrects (same updated_at) cannot undo the fix.
    assert books.ledger.record(bad_version, now=time.time()).outcome is RecordOutcome.STALE


def test_edit_opens_the_editor_on_the_stored_raw_order(
    books: Books,
    start_pipeline: PipelineFactory,
    sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--edit hands $EDITOR the stored raw order; what the engineer saves is what is sent."""
    books.make_dead("ed-1", reason=DeadReason.INVALID_INPUT, order=raw_order("ed-1", quantity=0))
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "doc = json.load(open(sys.argv[1]))\n"
        "doc['lines'][0]['quantity'] = 3\n"
        "json.dump(doc, open(sys.argv[1], 'w'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    start_pipeline()

    result = books.cli("replay", "ed-1", "--edit")

    assert result.exit_code == 0, result.output
    wait_until(lambda: books.status("ed-1") is DeadStatus.RESOLVED, what="resolved")
    assert [line["quantity"] for line in sent_body(sandbox, "ed-1")["lineItems"]] == [3]


def test_resend_stored_sends_the_stored_payload_byte_for_byte(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """--resend-stored sends the dead letter's payload, not what the current code would build;
    the next delivery re-transforms again."""
    stored = built(raw_order("rs-1"), notes="as stored")
    books.make_dead("rs-1", payload=stored)
    start_pipeline()

    result = books.cli("replay", "rs-1", "--resend-stored")

    assert result.exit_code == 0, result.output
    wait_until(lambda: books.status("rs-1") is DeadStatus.RESOLVED, what="resolved")
    (version,) = sandbox.history("rs-1")
    assert version["payloadHash"] == payload_hash(stored)
    assert sent_body(sandbox, "rs-1")["saleDefaults"]["notes"] == "as stored"
    entry = books.ledger.get("rs-1")
    assert entry is not None and entry.resend_payload is None


def test_default_replay_re_transforms_the_raw_order(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Without --resend-stored the worker builds the payload from the raw order again."""
    books.make_dead("rt-1", payload=built(raw_order("rt-1"), notes="as stored"))
    start_pipeline()

    assert books.cli("replay", "rt-1").exit_code == 0
    wait_until(lambda: books.status("rt-1") is DeadStatus.RESOLVED, what="resolved")
    assert sent_body(sandbox, "rt-1")["saleDefaults"].get("notes") != "as stored"


def test_replay_sends_a_payload_the_ledger_counted_as_accepted(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """An order Jetti's import log rejected after a 200 (rejected_by_jetti) still carries the
    hash of that payload; a replay sends it anyway instead of skipping it as delivered."""
    order = raw_order("rbj-1")
    books.make_dead("rbj-1", reason=DeadReason.REJECTED_BY_JETTI)
    entry = books.ledger.get("rbj-1")
    assert entry is not None
    books.ledger.mark_submitted(
        "rbj-1",
        version=entry.version,
        payload_hash=payload_hash(built(order)),
        line_ids=["rbj-1-l1"],
        sale_id=None,
        now=time.time(),
    )
    books.ledger.mark_dead("rbj-1", reason=DeadReason.REJECTED_BY_JETTI, now=time.time())
    start_pipeline()

    assert books.cli("replay", "rbj-1").exit_code == 0

    wait_until(lambda: books.status("rbj-1") is DeadStatus.RESOLVED, what="resolved")
    assert len(sandbox.history("rbj-1")) == 1


def test_lines_changed_goes_through_only_when_the_engineer_accepts_it(
    books: Books, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """An update dropping a line already sent is held; a plain replay holds it again, and
    --accept-line-changes sends it."""
    start_pipeline()
    from producers import enqueue
    from worker.celery_app import create_app
    from worker.publisher import Publisher
    from worker.settings import Settings

    publisher = Publisher(
        create_app(Settings(redis_url=books.redis_url, broker_url=books.redis_url))
    )
    two_lines = raw_order("lc-1")
    two_lines["lines"].append(
        {"id": "lc-1-l2", "sku": "SKU-2", "name": "Cup", "quantity": 1, "unit_price": "3"}
    )
    enqueue([two_lines], client=books.client, publisher=publisher)
    wait_until(
        lambda: books.state("lc-1") is OrderState.SUBMITTED, what="the first version submitted"
    )
    one_line = raw_order("lc-1")
    one_line["updated_at"] = "2026-11-27T11:00:00+00:00"
    enqueue([one_line], client=books.client, publisher=publisher)
    wait_until(lambda: books.status("lc-1") is DeadStatus.DEAD, what="lines_changed")

    assert books.cli("replay", "lc-1").exit_code == 0
    wait_until(lambda: books.history("lc-1") == ["dead", "replayed", "dead"], what="held again")
    assert books.cli("replay", "lc-1", "--accept-line-changes").exit_code == 0

    wait_until(lambda: books.status("lc-1") is DeadStatus.RESOLVED, what="resolved")
    assert [
        len(sent["lineItems"]) for sent in (json.loads(v["body"]) for v in sandbox.history("lc-1"))
    ] == [2, 1]


def test_replay_by_filter_takes_only_matching_entries_and_honours_limit(
    books: Books, sandbox: Any
) -> None:
    """Filters select entries (reason, key glob); --limit caps how many are sent."""
    for n in range(3):
        books.make_dead(f"a:{n}")
    books.make_dead("b:0", reason=DeadReason.REJECTED)

    result = books.cli("replay", "--key", "a:*", "--reason", "retries_exhausted", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert "replayed 2" in result.output
    states = {k: books.status(k) for k in ("a:0", "a:1", "a:2", "b:0")}
    assert sorted(map(str, states.values())) == ["dead", "dead", "replayed", "replayed"]
    assert states["b:0"] is DeadStatus.DEAD
    records = books.audit.read(action="replay")
    assert len(records) == 2 and all(r.actor == os_user() for r in records)


def test_replay_usage_errors_exit_2(books: Books, tmp_path: Path) -> None:
    """No key and no filter, two modes at once, --raw-file with two keys: refused, exit 2."""
    books.make_dead("u-1")
    assert books.cli("replay").exit_code == 2
    assert books.cli("replay", "u-1", "--resend-stored", "--edit").exit_code == 2
    raw = tmp_path / "r.json"
    raw.write_bytes(orjson.dumps(raw_order("u-1")))
    assert books.cli("replay", "u-1", "u-2", "--raw-file", str(raw)).exit_code == 2
    assert books.status("u-1") is DeadStatus.DEAD


def test_replay_of_an_unknown_key_exits_3(books: Books) -> None:
    """A key with no dead letter is reported; when no named key has one, exit 3 (not found)."""
    result = books.cli("replay", "nope")
    assert result.exit_code == 3
    assert "nope: no dead letter" in result.output


# --- inspection -----------------------------------------------------------------------------


def test_list_filters_and_json(books: Books) -> None:
    """list --json returns the matching entries newest first, without raw orders or emails."""
    now = time.time()
    books.make_dead("l-old", now=now - 7200)
    books.make_dead("l-new", now=now, excerpt=f"customer {EMAIL} unknown")
    books.make_dead("l-rej", reason=DeadReason.REJECTED, now=now)

    everything = books.cli("list", "--json")
    recent = books.cli("list", "--json", "--since", "1h", "--reason", "retries_exhausted")
    by_text = books.cli("list", "--json", "--error", "UNKNOWN")
    table = books.cli("list")

    assert [r["order_key"] for r in json.loads(everything.output)] == ["l-rej", "l-new", "l-old"]
    assert [r["order_key"] for r in json.loads(recent.output)] == ["l-new"]
    assert [r["order_key"] for r in json.loads(by_text.output)] == ["l-new"]
    assert EMAIL not in everything.output and "raw" not in json.loads(everything.output)[0]
    assert table.exit_code == 0 and "l-old" in table.output


def test_stats_by_reason_and_oldest(books: Books) -> None:
    """stats counts entries by reason and status and gives the oldest still-dead entry."""
    now = time.time()
    books.make_dead("s-1", now=now - 3600)
    books.make_dead("s-2", reason=DeadReason.REJECTED, now=now)
    books.dead.mark_resolved("s-2", now=now)

    data = json.loads(books.cli("stats", "--json").output)

    assert data["total"] == 2
    assert data["dead_by_reason"]["retries_exhausted"] == 1
    assert data["by_reason"]["rejected"] == 1 and data["dead_by_reason"]["rejected"] == 0
    assert data["by_status"] == {"dead": 1, "replayed": 0, "resolved": 1}
    assert data["oldest_dead_at"] == pytest.approx(now - 3600)
    assert books.cli("stats").exit_code == 0


def test_show_masks_secrets_and_personal_data(books: Books, sandbox: Any) -> None:
    """show prints raw order, payload, attempts and error with the webhook hash and the
    customer's data masked; an unknown key exits 3."""
    books.make_dead("sh-1", excerpt=f"hash {sandbox.webhook_hash} refused for {EMAIL}")

    view = json.loads(books.cli("show", "sh-1", "--json").output)
    text = books.cli("show", "sh-1")
    missing = books.cli("show", "nope")

    assert view["raw"]["id"] == "sh-1" and view["payload"]["externalId"] == "sh-1"
    assert len(view["attempts"]) == 1 and view["ledger_state"] == "dead"
    for output in (json.dumps(view), text.output):
        assert sandbox.webhook_hash not in output
        assert EMAIL not in output and "Lovelace" not in output
    assert "[secret]" in view["error"]
    assert missing.exit_code == 3


# --- export, purge, erase, audit ------------------------------------------------------------


def test_export_masks_personal_data_unless_asked(
    books: Books, tmp_path: Path, sandbox: Any
) -> None:
    """export writes one JSON object per entry; personal data is masked unless
    --include-personal-data, which is audited; secrets are masked always."""
    books.make_dead("ex-1", excerpt=f"hash {sandbox.webhook_hash}")
    books.make_dead("ex-2")
    masked_file, full_file = tmp_path / "masked.jsonl", tmp_path / "full.jsonl"

    assert books.cli("export", "-o", str(masked_file)).exit_code == 0
    assert books.cli("export", "-o", str(full_file), "--include-personal-data").exit_code == 0

    rows = [json.loads(line) for line in masked_file.read_text().splitlines()]
    assert sorted(r["order_key"] for r in rows) == ["ex-1", "ex-2"]
    assert EMAIL not in masked_file.read_text() and "Lovelace" not in masked_file.read_text()
    assert rows[0]["raw"]["customer"]["email"] == "***"
    assert EMAIL in full_file.read_text()
    for path in (masked_file, full_file):
        assert sandbox.webhook_hash not in path.read_text()
    (record,) = books.audit.read(action="export")
    assert record.details["personal_data"] is True


def test_purge_requires_yes_and_exports_first(books: Books, tmp_path: Path) -> None:
    """Without --yes nothing is deleted; with it the entries go to the export, then away."""
    books.make_dead("pu-1")
    books.make_dead("pu-2")
    books.make_dead("keep", reason=DeadReason.REJECTED)
    export = tmp_path / "purged.jsonl"

    refused = books.cli("purge", "--reason", "retries_exhausted")
    no_filter = books.cli("purge", "--yes")
    assert refused.exit_code == 2 and "would delete 2" in refused.output
    assert no_filter.exit_code == 2
    assert books.dead.get("pu-1") is not None

    done = books.cli("purge", "--reason", "retries_exhausted", "--yes", "--export-to", str(export))

    assert done.exit_code == 0, done.output
    assert books.dead.get("pu-1") is None and books.dead.get("pu-2") is None
    assert books.dead.get("keep") is not None
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert sorted(r["order_key"] for r in exported) == ["pu-1", "pu-2"]
    assert all(r["attempts"] for r in exported)
    (record,) = books.audit.read(action="purge")
    assert sorted(record.order_keys) == ["pu-1", "pu-2"] and record.actor == os_user()


def test_purge_takes_the_dead_ledger_entry_with_the_dead_letter(books: Books) -> None:
    """A purged dead letter's DEAD ledger entry goes too (DEAD entries are never shed:
    reliability review #17); one still DEAD whose letter stays, and one replayed since, stay."""
    books.make_dead("pl-gone")
    books.make_dead("pl-kept", reason=DeadReason.REJECTED)
    books.make_dead("pl-back")
    books.ledger.rearm("pl-back", now=time.time())
    done = books.cli("purge", "--reason", "retries_exhausted", "--yes", "--no-export")
    assert done.exit_code == 0, done.output
    assert books.ledger.get("pl-gone") is None and books.ledger.events("pl-gone") == []
    assert books.state("pl-kept") is OrderState.DEAD
    assert books.state("pl-back") is OrderState.PENDING
    dead_index = books.client.zrange(books.keys.state_index(OrderState.DEAD), 0, -1)
    assert dead_index == [b"pl-kept"]


def test_erase_removes_a_customers_data_from_dead_letters_and_the_ledger(
    books: Books, sandbox: Any
) -> None:
    """erase --email rewrites that customer's dead letters and settled ledger orders, leaves
    other customers alone, reports an order still in flight (exit 1) and audits by hash."""
    books.make_dead("er-dead")
    books.ledger.record(
        NewVersion("er-sent", orjson.dumps(raw_order("er-sent")), None, None), now=time.time()
    )
    books.ledger.mark_dead("er-sent", reason=DeadReason.REJECTED, now=time.time())
    books.ledger.record(
        NewVersion("er-wait", orjson.dumps(raw_order("er-wait")), None, None), now=time.time()
    )
    other = raw_order("er-other", email="grace@example.com")
    books.make_dead("er-other", order=other)

    assert books.cli("erase", "--email", EMAIL).exit_code == 2  # needs --yes
    result = books.cli("erase", "--email", "ADA@example.com", "--yes")

    assert result.exit_code == 1, result.output
    assert "er-wait" in result.output
    entry = books.dead.get("er-dead")
    assert entry is not None and entry.erased_at is not None
    assert EMAIL.encode() not in (entry.raw or b"") and b"Lovelace" not in (entry.raw or b"")
    for key in ("er-dead", "er-sent"):
        order = books.ledger.get(key)
        assert order is not None and order.raw is not None
        assert EMAIL.encode() not in order.raw and b"Lovelace" not in order.raw
        assert loads_document(order.raw)["lines"][0]["sku"] == "SKU-1"
    waiting = books.ledger.get("er-wait")
    assert waiting is not None and EMAIL.encode() in (waiting.raw or b"")
    untouched = books.dead.get("er-other")
    assert untouched is not None and b"grace@example.com" in (untouched.raw or b"")
    (record,) = books.audit.read(action="erase")
    assert EMAIL not in json.dumps(record.to_dict())
    assert sorted(record.order_keys) == ["er-dead", "er-sent"]


def test_audit_lists_who_did_what(books: Books) -> None:
    """Every replay is in `dlq audit`, with the OS user, the time and the order key."""
    books.make_dead("au-1")
    before = time.time()
    assert books.cli("replay", "au-1").exit_code == 0

    records = json.loads(books.cli("audit", "--json", "--action", "replay").output)
    table = books.cli("audit")

    assert [(r["actor"], r["order_keys"]) for r in records] == [(os_user(), ["au-1"])]
    assert records[0]["at"] >= before
    assert table.exit_code == 0 and "au-1" in table.output


def test_unreachable_redis_exits_4(books: Books) -> None:
    """A Redis that does not answer is one line on stderr and exit code 4, no traceback."""
    result = CliRunner().invoke(dlq, ["stats", "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 4
    assert "cannot reach Redis" in result.output


@pytest.mark.parametrize(
    "command", ["list", "stats", "show", "replay", "export", "purge", "erase", "audit"]
)
def test_every_command_has_help_with_exit_codes(command: str) -> None:
    """`--help` works without Redis and documents the exit codes."""
    result = CliRunner().invoke(dlq, [command, "--help"])
    assert result.exit_code == 0
    assert "Exit codes: 0 done" in result.output and "--redis-url" in result.output


def test_iter_entries_pages_through_ties_and_a_time_bound(books: Books) -> None:
    """Bulk commands see every matching entry exactly once, even when more entries than a page
    share one dead-letter time, and never one dead-lettered after the bound."""
    from worker.store.dead_query import DeadFilter, iter_entries

    for n in range(250):
        books.dead.put(
            f"tie-{n}",
            reason=DeadReason.REJECTED,
            raw=b"{}",
            payload=None,
            attempts=(),
            source=None,
            error="422",
            now=1000.0,
        )
    for n in range(30):
        books.dead.put(
            f"spread-{n}",
            reason=DeadReason.REJECTED,
            raw=b"{}",
            payload=None,
            attempts=(),
            source=None,
            error="422",
            now=900.0 + n,
        )
    books.dead.put(
        "late",
        reason=DeadReason.REJECTED,
        raw=b"{}",
        payload=None,
        attempts=(),
        source=None,
        error="422",
        now=5000.0,
    )

    keys = [
        e.order_key for e in iter_entries(books.dead, DeadFilter().bounded(2000.0), page_size=100)
    ]

    assert len(keys) == len(set(keys)) == 280
    assert "late" not in keys
