"""The producer never stops half-way without saying so, and clocks cannot freeze an order.

Against a real Redis that refuses writes part-way (out of memory under `noeviction`, a key of
the wrong type): the exit code tells a refusal from rejected orders, the message and the JSON
summary give the position reached, and running the same input again publishes at once every
order still pending (reliability review #2, L5; issue 12 points 2 and 3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from ops.commands.enqueue import EXIT_REDIS, EXIT_REDIS_REFUSED, EXIT_REJECTED
from ops.commands.enqueue import enqueue as enqueue_command
from producers import EnqueueInterrupted, enqueue
from tests.factories import minimal_order
from tests.fixtures.broker import published_keys
from tests.fixtures.redis_server import RedisServer
from worker.celery_app import create_app
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # 2027-01-15: the raw orders' updated_at (2026-11-27) is in the past
KEYS = Keys("t")


class RefuseWritesAfterFirstPublish:
    """The real publisher; once it has published, Redis is made to refuse writes (OOM)."""

    def __init__(self, inner: Publisher, client: redis.Redis[bytes]) -> None:
        self._inner = inner
        self._client = client
        self.tripped = False

    def publish(self, order_keys: Sequence[str]) -> int:
        sent = self._inner.publish(order_keys)
        if not self.tripped:
            self.tripped = True
            # A real refusal: noeviction and a limit far below what Redis already uses.
            self._client.config_set("maxmemory-policy", "noeviction")
            self._client.config_set("maxmemory", "1")
        return sent


@pytest.fixture
def oom_redis(own_redis_server: RedisServer) -> Iterator[redis.Redis[bytes]]:
    client: redis.Redis[bytes] = redis.Redis.from_url(own_redis_server.url)
    yield client
    client.config_set("maxmemory", "0")
    client.close()


def test_out_of_memory_part_way_stops_with_the_position_and_a_rerun_publishes_the_rest(
    own_redis_server: RedisServer, oom_redis: redis.Redis[bytes]
) -> None:
    """OOM after the first chunk: EnqueueInterrupted (a refusal, not unreachable) at position
    2 with the summary so far; after Redis recovers, the same input enqueues and publishes
    everything still pending at once."""
    publisher = Publisher(create_app(Settings(redis_url=own_redis_server.url)), batch_size=10)
    orders = [minimal_order(f"o{i}") for i in range(6)]
    refusing = RefuseWritesAfterFirstPublish(publisher, oom_redis)

    with pytest.raises(EnqueueInterrupted) as stopped:
        enqueue(orders, client=oom_redis, publisher=refusing, keys=KEYS, now=T0, chunk_size=2)

    assert stopped.value.position == 2
    assert not stopped.value.unreachable
    assert "OOM" in stopped.value.detail or "maxmemory" in stopped.value.detail
    assert stopped.value.summary.accepted == 2
    assert isinstance(stopped.value.__cause__, redis.ResponseError)
    oom_redis.config_set("maxmemory", "0")

    again = enqueue(orders, client=oom_redis, publisher=publisher, keys=KEYS, now=T0 + 1)

    assert (again.accepted, again.unchanged) == (4, 2)
    assert sorted(published_keys(oom_redis)) == sorted(["o0", "o1", *(f"o{i}" for i in range(6))])


# --- the command ----------------------------------------------------------------------------


def write_lines(path: Path, orders: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    return path


def test_cli_exits_5_naming_the_line_when_redis_refuses_and_a_rerun_completes(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """A WRONGTYPE refusal (a key of the wrong type where order b's timeline goes) used to be a
    traceback and exit 1, the "some orders rejected" code. It is exit 5, with the line reached
    on stderr; once the key is repaired, the same file completes and every order is published
    (a and b, recorded by the failed run but never published, at once)."""
    source = write_lines(
        tmp_path / "orders.jsonl", [minimal_order("a"), minimal_order("b"), minimal_order("c")]
    )
    redis_client.set(KEYS.order_events("b"), "not a list")

    failed = CliRunner().invoke(enqueue_command, [str(source)])

    assert failed.exit_code == EXIT_REDIS_REFUSED, failed.output
    assert "refused a command at line 1" in failed.stderr
    assert "WRONGTYPE" in failed.stderr
    assert "run the same input again" in failed.stderr
    assert failed.stdout.startswith("incomplete (stopped at line 1): ")
    assert published_keys(redis_client) == []

    redis_client.delete(KEYS.order_events("b"))
    rerun = CliRunner().invoke(enqueue_command, [str(source)])

    assert rerun.exit_code == 0, rerun.output
    assert sorted(published_keys(redis_client)) == ["a", "b", "c"]
    ledger = Ledger(redis_client, KEYS)
    assert all((e := ledger.get(k)) is not None and e.state is OrderState.PENDING for k in "abc")


def test_cli_json_reports_where_a_refusal_stopped_the_run(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """`--json` on a run stopped part-way: complete false, exit code, position and error."""
    source = write_lines(tmp_path / "orders.jsonl", [minimal_order("a"), minimal_order("b")])
    redis_client.set(KEYS.order_events("a"), "not a list")

    result = CliRunner().invoke(enqueue_command, [str(source), "--json"])

    assert result.exit_code == EXIT_REDIS_REFUSED
    summary = json.loads(result.stdout)
    assert summary["complete"] is False
    assert summary["exit_code"] == EXIT_REDIS_REFUSED
    assert summary["stopped_at"] == {"line": 1}
    assert "WRONGTYPE" in summary["error"]


def test_cli_exits_4_when_redis_is_unreachable(tmp_path: Path) -> None:
    """Nothing listens on the URL: exit 4 (unreachable), not 1 or 5."""
    from tests.fixtures.redis_server import free_port

    source = write_lines(tmp_path / "orders.jsonl", [minimal_order("a")])
    url = f"redis://127.0.0.1:{free_port()}/0"
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(enqueue_command, [str(source), "--redis-url", url, "--json"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == EXIT_REDIS, result.output
    assert json.loads(result.stdout)["stopped_at"] == {"item": 1}  # one object: item 1


def test_cli_json_lists_rejected_stale_and_after_cancel_keys(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """`enqueue --json` prints the summary with every rejected key (reason and line), every
    stale key and every copy ignored after a cancellation, with its line."""
    cancelled = {
        **minimal_order("c", updated_at="2026-11-27T12:30:00Z"),
        "cancelled_at": "2026-11-27T12:30:00Z",
    }
    source = write_lines(
        tmp_path / "orders.jsonl",
        [
            minimal_order("a", updated_at="2026-11-27T13:00:00Z"),
            minimal_order("a", updated_at="2026-11-27T11:00:00Z"),
            minimal_order("bad", quantity=0),
            minimal_order("c"),
            cancelled,
            minimal_order("c", updated_at="2026-11-27T14:00:00Z"),
        ],
    )

    result = CliRunner().invoke(enqueue_command, [str(source), "--id-prefix", "x-", "--json"])

    assert result.exit_code == EXIT_REJECTED, result.output
    summary = json.loads(result.stdout)
    assert summary["complete"] is True
    assert (summary["accepted"], summary["updated"], summary["stale"]) == (2, 1, 1)
    assert (summary["after_cancel"], summary["rejected"]) == (1, 1)
    assert summary["stale_keys"] == [{"line": 2, "key": "x-a"}]
    assert summary["after_cancel_keys"] == [{"line": 6, "key": "x-c"}]
    [rejection] = summary["rejections"]
    assert (rejection["line"], rejection["key"]) == (3, "x-bad")
    assert rejection["reason"].startswith("lines[0].quantity:")


def test_cli_lists_stale_keys_in_its_human_output(cli_env: str, tmp_path: Path) -> None:
    """Without --json, each stale copy is named on stderr with its line; exit 0."""
    source = write_lines(
        tmp_path / "orders.jsonl",
        [minimal_order("a", updated_at="2026-11-27T13:00:00Z"), minimal_order("a")],
    )

    result = CliRunner().invoke(enqueue_command, [str(source)])

    assert result.exit_code == 0, result.output
    assert "line 2: stale 'a'" in result.stderr
    assert "stale 1," in result.stdout


# --- clocks ---------------------------------------------------------------------------------


def test_far_future_updated_at_is_refused_at_the_edge_with_the_limit(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """Issue 12's sequence: 2099, then a correct copy, then a cancellation without updated_at.
    The 2099 copy is refused (field path, value, limit); the correct copy is recorded and the
    cancellation, later by arrival, is recorded too instead of being stale."""
    cancel = {**minimal_order("k"), "cancelled_at": "2026-11-27T12:05:00Z"}
    del cancel["updated_at"]
    source = write_lines(
        tmp_path / "orders.jsonl",
        [minimal_order("k", updated_at="2099-01-01T00:00:00Z"), minimal_order("k"), cancel],
    )

    result = CliRunner().invoke(enqueue_command, [str(source)])

    assert result.exit_code == EXIT_REJECTED, result.output
    assert "line 1: updated_at: 2099-01-01T00:00:00+00:00 is" in result.stderr
    assert "more than the 86400 s allowed (JETTI_RELAY_MAX_FUTURE_SKEW_S)" in result.stderr
    assert result.stdout.strip().endswith("accepted 1, updated 1, unchanged 0, stale 0, rejected 1")
    entry = Ledger(redis_client, KEYS).get("k")
    assert entry is not None and entry.raw is not None and b"cancelled_at" in entry.raw


def test_the_future_skew_is_a_setting(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JETTI_RELAY_MAX_FUTURE_SKEW_S widens the bound: a copy 2 days ahead passes with 3 days."""
    import datetime as dt

    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    source = write_lines(tmp_path / "orders.jsonl", [minimal_order("k", updated_at=ahead)])

    refused = CliRunner().invoke(enqueue_command, [str(source)])
    monkeypatch.setenv("JETTI_RELAY_MAX_FUTURE_SKEW_S", str(3 * 86400))
    get_settings.cache_clear()
    allowed = CliRunner().invoke(enqueue_command, [str(source)])

    assert refused.exit_code == EXIT_REJECTED
    assert allowed.exit_code == 0, allowed.output


# --- edge validation (review L4) --------------------------------------------------------------


def big_order(order_id: str) -> dict[str, Any]:
    """A valid order whose JSON is just over 1 MiB (a long note)."""
    return {**minimal_order(order_id), "notes": "x" * (1024 * 1024)}


def test_a_mapping_over_the_document_cap_is_rejected_like_a_line(
    redis_client: redis.Redis[bytes],
) -> None:
    """A Python mapping handed to the library obeys the 1 MiB per-document cap of lines: it
    used to be recorded, then dead-lettered by the worker as invalid_input."""
    summary = enqueue(
        [big_order("big"), minimal_order("ok")],
        client=redis_client,
        publisher=_NoPublish(),
        keys=KEYS,
        now=T0,
    )

    assert (summary.accepted, summary.rejected) == (1, 1)
    [rejection] = summary.rejections
    assert (rejection.position, rejection.order_id) == (0, "big")
    assert "larger than 1048576 bytes" in rejection.describe()


def test_an_array_item_over_the_document_cap_is_rejected_with_its_item_number(
    cli_env: str, tmp_path: Path, redis_client: redis.Redis[bytes]
) -> None:
    """JSON-array items obey the same per-document cap as JSON Lines."""
    source = tmp_path / "orders.json"
    source.write_text(json.dumps([minimal_order("a"), big_order("big")]))

    result = CliRunner().invoke(enqueue_command, [str(source)])

    assert result.exit_code == EXIT_REJECTED, result.output
    assert "item 2: $: document is" in result.stderr
    assert published_keys(redis_client) == ["a"]


class _NoPublish:
    """Records what would be published (the test needs no broker)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def publish(self, order_keys: Sequence[str]) -> int:
        self.keys += order_keys
        return 1
