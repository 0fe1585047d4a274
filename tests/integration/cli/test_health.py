"""`jetti-relay health`: a real subprocess judging a real Redis, real workers and a real pump."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from producers import enqueue
from tests.factories import raw_order
from tests.fixtures.exporter import run_health, seed_fleet
from tests.fixtures.pipeline import Harness, PipelineFactory, wait_until
from tests.fixtures.redis_server import free_port
from worker.core.states import OrderState

pytestmark = pytest.mark.integration


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in doc["checks"]}


def test_a_working_fleet_is_healthy(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Workers answer, orders flow, pump and sweeper run, breaker closed: exit 0, all ok."""
    harness = Harness(redis_url)
    start_pipeline()
    keys = [f"hl-{n}" for n in range(5)]
    enqueue([raw_order(k) for k in keys], client=harness.client, publisher=harness.publisher)
    harness.wait_states(keys, {OrderState.SUBMITTED})
    wait_until(
        lambda: bool(harness.client.hlen(harness.keys.heartbeat("sweeper"))),
        what="a sweeper heartbeat",
    )
    code, doc = run_health(redis_url)
    assert code == 0, doc
    assert doc["healthy"] is True
    # The test Redis keeps nothing on disk and has no maxmemory: only that is not ok.
    result = statuses(doc)
    assert result.pop("redis_server") == "warn", doc
    assert set(result.values()) == {"ok"}, doc
    workers = next(c for c in doc["checks"] if c["name"] == "workers")
    assert workers["value"] >= 1
    harness.client.close()


def test_problems_are_named_and_fail_the_exit_code(redis_url: str) -> None:
    """A tripped breaker and a sweeper that never ran fail; a dead letter only warns; a fresh
    pump heartbeat and a young backlog pass."""
    seed_fleet(redis_url)
    code, doc = run_health(redis_url, "--min-workers", "0")
    assert code == 1
    assert doc["healthy"] is False
    assert statuses(doc) == {
        "redis": "ok",
        "workers": "skip",
        "progress": "ok",
        "pump": "ok",
        "sweeper": "fail",
        "breaker": "fail",
        "throttle": "ok",
        "backlog": "ok",
        "dead_letters": "warn",
        "redis_server": "warn",
        "memory": "ok",
        "intake": "ok",
        "replication": "ok",
    }
    breaker = next(c for c in doc["checks"] if c["name"] == "breaker")
    assert "open" in breaker["detail"] and "401" in breaker["detail"]


def test_a_long_429_block_fails_the_throttle_check(redis_url: str) -> None:
    """reliability #8: a 429 block with more than `--max-block-s` left (a Retry-After pausing
    the fleet) fails `throttle`; a short one only warns."""
    import time

    import redis

    from worker.core.keys import Keys

    client = redis.Redis.from_url(redis_url)
    keys = Keys()
    client.set(keys.blocked_until(), repr(time.time() + 7200))
    client.set(keys.api_blocked_until("read"), repr(time.time() + 60))
    code, doc = run_health(redis_url, "--min-workers", "0", "--only", "throttle")
    check = next(c for c in doc["checks"] if c["name"] == "throttle")
    assert code == 1 and check["status"] == "fail", doc
    assert "fleet" in check["detail"] and "api_read" in check["detail"]
    client.delete(keys.blocked_until())
    code, doc = run_health(redis_url, "--min-workers", "0", "--only", "throttle")
    assert code == 0 and statuses(doc)["throttle"] == "warn", doc
    client.close()


def test_progress_fails_when_ready_orders_wait_and_nothing_is_handled(redis_url: str) -> None:
    """Orders ready for longer than --max-stall-s with no order handled within it is a stall;
    an order handled recently is progress even if older ones still wait."""
    seed_fleet(redis_url)  # pending since 100 s and 90 s; last handled 19 s ago
    _, recent = run_health(redis_url, "--only", "progress", "--max-stall-s", "60")
    assert statuses(recent)["progress"] == "ok"
    code, stalled = run_health(redis_url, "--only", "progress", "--max-stall-s", "10")
    assert code == 1
    assert statuses(stalled)["progress"] == "fail"
    assert "2 orders ready" in stalled["checks"][-1]["detail"]


def test_thresholds_are_options(redis_url: str) -> None:
    """--max-dead 0 turns one waiting dead letter into a failure; --max-oldest-waiting-s 50
    makes the 100 s old order a backlog failure."""
    seed_fleet(redis_url)
    code, doc = run_health(
        redis_url,
        "--only",
        "dead_letters",
        "--only",
        "backlog",
        "--max-dead",
        "0",
        "--max-oldest-waiting-s",
        "50",
    )
    assert code == 1
    assert statuses(doc) == {"redis": "ok", "dead_letters": "fail", "backlog": "fail"}


def test_no_worker_answering_is_unhealthy(redis_url: str) -> None:
    """Without any Celery worker the workers check fails after the ping timeout."""
    code, doc = run_health(redis_url, "--only", "workers", "--ping-timeout-s", "0.5")
    assert code == 1
    assert statuses(doc)["workers"] == "fail"


def test_redis_down_fails_once_and_skips_the_rest() -> None:
    """Unreachable Redis: the redis check fails with the error class, the others are skipped."""
    code, doc = run_health(f"redis://127.0.0.1:{free_port()}/0")
    assert code == 1
    result = statuses(doc)
    assert result["redis"] == "fail"
    assert {s for name, s in result.items() if name != "redis"} == {"skip"}


def test_human_output_has_one_line_per_check_and_a_summary(redis_url: str) -> None:
    """Without --json: a line per check, then the verdict with counts."""
    seed_fleet(redis_url)
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "health", "--redis-url", redis_url, "--min-workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1
    assert len(lines) == 14  # 13 checks (no reconciler: no token) and the summary
    assert lines[-1].startswith("UNHEALTHY: ")
    assert any(line.startswith("FAIL  breaker") for line in lines)


def test_the_intake_check_fails_on_an_unread_entry_and_warns_on_a_reject(
    redis_url: str, harness: Harness
) -> None:
    """An entry nobody read for longer than --max-intake-age-s fails `intake` (naming the
    missing consumer); once read and acknowledged it passes; a fresh reject warns."""
    import time

    from tests.fixtures.intake import KEYS, add_entry, consumer

    old_id = f"{int((time.time() - 600) * 1000)}-0"
    harness.client.xadd(KEYS.intake_stream(), {"order": b"{}"}, id=old_id)
    code, doc = run_health(redis_url, "--only", "intake")
    [check] = [c for c in doc["checks"] if c["name"] == "intake"]
    assert code == 1 and check["status"] == "fail", doc
    assert "no intake ever read it" in check["detail"]
    code, doc = run_health(redis_url, "--only", "intake", "--max-intake-age-s", "900")
    assert code == 0 and statuses(doc)["intake"] == "ok", doc

    intake = consumer(harness.client, harness.publisher)
    intake.poll()  # `{}` is no order: rejected, and the entry acknowledged
    code, doc = run_health(redis_url, "--only", "intake")
    assert code == 0 and statuses(doc)["intake"] == "warn", doc
    assert "newest reject" in doc["checks"][-1]["detail"]
    harness.client.delete(KEYS.intake_rejects())
    add_entry(harness.client, raw_order("hi-1"))
    intake.poll()
    code, doc = run_health(redis_url, "--only", "intake")
    assert code == 0 and statuses(doc)["intake"] == "ok", doc
