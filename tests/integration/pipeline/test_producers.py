"""Producers against a real Redis: validation at the edge, ledger outcomes, what gets published.

Published messages are read back from the broker list the way a worker would receive them, so
these tests see exactly what Celery sent and no worker is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from ops.commands.enqueue import enqueue as enqueue_command
from producers import EnqueueSummary, enqueue
from tests.factories import minimal_order
from tests.fixtures.broker import published, published_keys
from worker.celery_app import create_app
from worker.core.keys import MESSAGE_SCHEMA_VERSION, ORDERS_QUEUE, Keys
from worker.core.limits import MAX_SOURCE_CHARS
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
KEYS = Keys("t")


@pytest.fixture
def publisher(redis_url: str) -> Publisher:
    return Publisher(create_app(Settings(redis_url=redis_url)), batch_size=10)


@pytest.fixture
def run(redis_client: redis.Redis[bytes], publisher: Publisher) -> Any:
    """`run(orders, **options)`: enqueue on the test Redis with a fixed clock."""

    def _run(orders: list[Any], **options: Any) -> EnqueueSummary:
        return enqueue(
            orders, client=redis_client, publisher=publisher, keys=KEYS, now=T0, **options
        )

    return _run


def test_new_orders_are_accepted_and_published_in_small_versioned_messages(
    run: Any, redis_client: redis.Redis[bytes]
) -> None:
    """Every new order is ACCEPTED and its key sent, 10 keys per message, schema version 1."""
    summary = run([minimal_order(f"o{i}") for i in range(25)])

    assert (summary.accepted, summary.rejected, summary.messages) == (25, 0, 3)
    bodies = published(redis_client)
    assert [len(b["keys"]) for b in bodies] == [10, 10, 5]
    assert all(b["v"] == MESSAGE_SCHEMA_VERSION for b in bodies)
    assert published_keys(redis_client) == [f"o{i}" for i in range(25)]


def test_resends_are_counted_as_unchanged_updated_or_stale(run: Any) -> None:
    """A byte-identical re-send is unchanged, a newer one updated, an older one stale."""
    run([minimal_order("a"), minimal_order("b"), minimal_order("c")])

    summary = run(
        [
            minimal_order("a"),
            minimal_order("b", updated_at="2026-11-27T13:00:00Z"),
            minimal_order("c", updated_at="2026-11-27T11:00:00Z"),
        ]
    )

    assert (summary.accepted, summary.updated, summary.unchanged, summary.stale) == (0, 1, 1, 1)
    assert summary.rejected == 0


def test_malformed_order_is_rejected_with_its_position_and_the_rest_go_through(
    run: Any, redis_client: redis.Redis[bytes]
) -> None:
    """A bad order is reported with its index, id and field path; its neighbours are enqueued."""
    summary = run(
        [minimal_order("a"), minimal_order("bad", quantity=0), b"{not json", minimal_order("c")]
    )

    assert (summary.accepted, summary.rejected) == (2, 2)
    first, second = summary.rejections
    assert (first.position, first.order_id) == (1, "bad")
    assert [p.path for p in first.problems] == ["lines[0].quantity"]
    assert (second.position, second.order_id) == (2, None)
    assert published_keys(redis_client) == ["a", "c"]


def test_only_keys_the_ledger_says_to_publish_are_published(
    run: Any, redis_client: redis.Redis[bytes]
) -> None:
    """An update to an order still queued coalesces: no second message carries its key."""
    run([minimal_order("a")])
    redis_client.delete(ORDERS_QUEUE)

    summary = run([minimal_order("a", updated_at="2026-11-27T13:00:00Z"), minimal_order("b")])

    assert (summary.updated, summary.accepted) == (1, 1)
    assert published_keys(redis_client) == ["b"]


def test_same_key_twice_in_one_call_is_recorded_in_order(
    run: Any, redis_client: redis.Redis[bytes]
) -> None:
    """Two versions of one order in one chunk: the first accepted, the second updates it."""
    summary = run([minimal_order("a"), minimal_order("a", updated_at="2026-11-27T13:00:00Z")])

    assert (summary.accepted, summary.updated) == (1, 1)
    entry = Ledger(redis_client, KEYS).get("a")
    assert entry is not None and entry.raw is not None
    assert b"13:00:00Z" in entry.raw
    assert published_keys(redis_client) == ["a"]


def test_bytes_are_stored_as_given_under_the_prefixed_key(
    run: Any, redis_client: redis.Redis[bytes]
) -> None:
    """Raw bytes are validated and stored untouched; the key is id_prefix + id."""
    body = json.dumps(minimal_order("1001"), indent=2).encode()

    summary = run([body], id_prefix="shop-a:", source="shop-a")

    assert summary.accepted == 1
    entry = Ledger(redis_client, KEYS).get("shop-a:1001")
    assert entry is not None
    assert (entry.raw, entry.source) == (body, "shop-a")


def test_chunks_do_not_change_the_outcome(run: Any, redis_client: redis.Redis[bytes]) -> None:
    """Small chunks record and publish everything exactly once."""
    summary = run([minimal_order(f"o{i}") for i in range(7)], chunk_size=3)

    assert summary.accepted == 7
    assert published_keys(redis_client) == [f"o{i}" for i in range(7)]


# --- the command ----------------------------------------------------------------------------


def test_cli_enqueues_json_lines_and_reports_bad_lines(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """Bad lines go to stderr with their line number and path; exit 1; the rest are enqueued."""
    lines = [
        json.dumps(minimal_order("a")),
        "",
        json.dumps(minimal_order("b", quantity=0)),
        json.dumps(minimal_order("c")),
    ]
    source = tmp_path / "orders.jsonl"
    source.write_text("\n".join(lines) + "\n")

    result = CliRunner().invoke(
        enqueue_command, [str(source), "--redis-url", cli_env, "--id-prefix", "x-"]
    )

    assert result.exit_code == 1, result.output
    assert "line 3: lines[0].quantity:" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "accepted 2, updated 0, unchanged 0, stale 0, rejected 1"
    )
    assert published_keys(redis_client) == ["x-a", "x-c"]


def test_cli_reads_an_array_and_exits_0_when_all_went_through(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """A JSON array is read item by item; a second run finds everything unchanged and, as the
    orders are still PENDING (no worker here), publishes them again at once (review L5)."""
    source = tmp_path / "orders.json"
    source.write_text(json.dumps([minimal_order("a"), minimal_order("b")]))

    first = CliRunner().invoke(enqueue_command, [str(source), "--batch-size", "1"])
    second = CliRunner().invoke(enqueue_command, [str(source)])

    assert first.exit_code == 0, first.output
    assert "accepted 2," in first.stdout
    assert second.exit_code == 0
    assert "unchanged 2," in second.stdout
    assert [len(b["keys"]) for b in published(redis_client)] == [1, 1, 2]


def test_cli_reports_item_numbers_for_arrays(cli_env: str, tmp_path: Path) -> None:
    """A bad array item is reported as `item N` (counting from 1)."""
    source = tmp_path / "orders.json"
    source.write_text(json.dumps([minimal_order("a"), minimal_order("b", quantity=0)]))

    result = CliRunner().invoke(enqueue_command, [str(source)])

    assert result.exit_code == 1
    assert "item 2: lines[0].quantity:" in result.stderr


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b'[{"id": '])
def test_cli_exits_2_on_unreadable_input(cli_env: str, tmp_path: Path, content: bytes) -> None:
    """Empty, non-UTF-8 or broken-array input enqueues nothing and exits 2."""
    source = tmp_path / "orders.json"
    source.write_bytes(content)

    result = CliRunner().invoke(enqueue_command, [str(source)])

    assert result.exit_code == 2
    assert "cannot read" in result.stderr


# --- amplification cap (reliability #12) -------------------------------------------------------

RULES_FILE = Path(__file__).resolve().parents[2] / "data" / "rules" / "example.toml"


def _engraved(order_id: str, quantity: int) -> dict[str, Any]:
    """An order whose one line the example rules split into `quantity` line items."""
    order = minimal_order(order_id, quantity=quantity)
    order["lines"][0]["sku"] = "ENGRAVE-1"
    return order


def test_an_order_over_the_line_item_cap_is_refused_at_the_edge(run: Any) -> None:
    """Lines with `units` always split, so the producer counts them without the rules; with
    the worker's rules it counts split SKUs too. Without the rules a split SKU is not known to
    split: the worker's own check is the final one."""
    with_units = minimal_order("units", quantity=3)
    with_units["lines"][0]["units"] = [{}, {}, {}]
    summary = run([with_units, _engraved("engraved", 3)], max_line_items=2)
    assert [r.position for r in summary.rejections] == [0]
    assert "more than the limit of 2" in summary.rejections[0].describe()
    assert summary.accepted == 1
    from worker.core.rules import load_rules

    summary = run([_engraved("engraved-2", 3)], max_line_items=2, rules=load_rules(RULES_FILE))
    assert summary.rejected == 1 and summary.accepted == 0


def test_the_cli_refuses_with_the_workers_rules_and_cap(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jetti-relay enqueue` reads JETTI_RELAY_RULES_FILE and JETTI_RELAY_MAX_LINE_ITEMS as the
    worker does and refuses the order at the edge with the worker's message."""
    monkeypatch.setenv("JETTI_RELAY_RULES_FILE", str(RULES_FILE))
    monkeypatch.setenv("JETTI_RELAY_MAX_LINE_ITEMS", "2")
    get_settings.cache_clear()
    source = tmp_path / "orders.jsonl"
    source.write_text(
        json.dumps(_engraved("big", 3)) + "\n" + json.dumps(minimal_order("ok")) + "\n"
    )
    result = CliRunner().invoke(enqueue_command, [str(source), "--redis-url", cli_env])
    assert result.exit_code == 1, result.output
    assert "line 1: lines: the order would become 3 line items" in result.stderr


# Run in a fresh interpreter: what `jetti-relay enqueue` loads, from its import to its publish.
_ENQUEUE_AND_LIST_MODULES = """
import json, sys
from click.testing import CliRunner
from ops.commands.enqueue import enqueue
result = CliRunner().invoke(enqueue, ["-"], input=sys.argv[1])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(sys.modules)))
"""


def test_the_enqueue_command_publishes_without_the_workers_app_tasks_or_services(
    cli_env: str, redis_client: redis.Redis[bytes]
) -> None:
    """Producers publish by task name on the broker (`worker.wiring.publisher`): enqueueing
    loads neither `worker.celery_app`, `worker.tasks`, `worker.runtime` nor `worker.pipeline`,
    and the message still names the import task."""
    done = subprocess.run(
        [sys.executable, "-c", _ENQUEUE_AND_LIST_MODULES, json.dumps(minimal_order("solo"))],
        capture_output=True,
        text=True,
        env={**os.environ, "JETTI_RELAY_BROKER_URL": cli_env},
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout.splitlines()[-1])
    worker_side = [
        m
        for m in loaded
        if m in ("worker.celery_app", "worker.tasks", "worker.runtime")
        or m.startswith("worker.pipeline")
    ]
    assert worker_side == []
    assert published_keys(redis_client) == ["solo"]


_CONNECT_AND_ENQUEUE = """
import json, sys
from producers import connect, enqueue
relay = connect()
summary = enqueue([json.loads(sys.argv[1])], **relay.kwargs(), id_prefix="shop-a:")
relay.close()
print(json.dumps({"accepted": summary.accepted, "prefix": relay.keys.prefix,
                  "modules": sorted(sys.modules)}))
"""


def test_connect_gives_enqueue_the_configured_redis_prefix_and_broker(
    cli_env: str, redis_client: redis.Redis[bytes]
) -> None:
    """`producers.connect()` reads the JETTI_RELAY_* settings as the worker does: the order lands
    under the configured key prefix (`t`, not the default `jr`) and its key is published, and the
    worker's Celery app, tasks and services are never imported into the upstream's process."""
    done = subprocess.run(
        [sys.executable, "-c", _CONNECT_AND_ENQUEUE, json.dumps(minimal_order("c-1"))],
        capture_output=True,
        text=True,
        env={**os.environ, "JETTI_RELAY_BROKER_URL": cli_env},
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert (out["accepted"], out["prefix"]) == (1, "t")
    assert Ledger(redis_client, Keys("t")).get("shop-a:c-1") is not None
    assert Ledger(redis_client, Keys("jr")).get("shop-a:c-1") is None
    assert published_keys(redis_client) == ["shop-a:c-1"]
    assert not [
        m
        for m in out["modules"]
        if m in ("worker.celery_app", "worker.tasks", "worker.runtime")
        or m.startswith("worker.pipeline")
    ]


def test_a_source_over_the_limit_is_refused_with_its_path(run: Any) -> None:
    """The `source` cap (worker.core.limits.MAX_SOURCE_CHARS) is one check for every way in:
    here the library; a stream entry and an HTTP `?source=` go through the same validation."""
    summary = run([minimal_order("src-1")], source="s" * (MAX_SOURCE_CHARS + 1))
    assert summary.rejected == 1
    [problem] = summary.rejections[0].problems
    assert problem.path == "source"
    assert str(MAX_SOURCE_CHARS) in problem.message
    assert run([minimal_order("src-2")], source="s" * MAX_SOURCE_CHARS).accepted == 1
