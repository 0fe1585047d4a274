"""Amplification is capped (issue 12 point 10; reliability #12, #13), worker side, against a
real Redis and the sandbox over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_pipeline import raw_order
from worker.contract import parse_raw_order
from worker.ledger import NewVersion
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings
from worker.states import DeadReason, OrderState

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(redis_url: str, sandbox: Any) -> Iterator[Runtime]:
    rt = build_runtime(Settings(redis_url=redis_url, broker_url=redis_url, key_prefix="amp",
                                webhook_hash=sandbox.webhook_hash,
                                jetti_async_url=sandbox.webhook_url, max_line_items=5))
    yield rt
    rt.processor._executor.shutdown(wait=False)
    rt.redis.close()


def _record(rt: Runtime, order: dict[str, Any]) -> None:
    raw = json.dumps(order).encode()
    rt.ledger.record(NewVersion(order["id"], raw, parse_raw_order(order).updated_at, "test"),
                     now=time.time())


def test_the_worker_dead_letters_an_order_over_the_line_item_cap(
    runtime: Runtime, sandbox: Any
) -> None:
    """An order whose split exceeds JETTI_RELAY_MAX_LINE_ITEMS is a `transform_error` with the
    count and the limit in the dead letter; nothing reaches Jetti."""
    big = raw_order("big", lines=2)
    big["lines"][0].update(quantity=6, units=[{} for _ in range(6)])
    _record(runtime, big)
    runtime.processor.handle_batch(["big"], task_id="t")
    entry = runtime.ledger.get("big")
    assert entry is not None and entry.state is OrderState.DEAD
    letter = runtime.dead_letters.get("big")
    assert letter is not None and letter.reason is DeadReason.TRANSFORM_ERROR
    assert "the order would become 7 line items after splitting, more than the limit of 5" in (
        letter.error
    )
    assert sandbox.history("big") == []
