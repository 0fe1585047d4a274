"""Amplification is capped (issue 12 point 10; reliability #12, #13), worker side, against a
real Redis and the sandbox over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import raw_order
from worker.core.contract import parse_raw_order
from worker.core.states import DeadReason, OrderState
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings
from worker.store.ledger import NewVersion

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(redis_url: str, sandbox: Any) -> Iterator[Runtime]:
    rt = build_runtime(
        Settings(
            redis_url=redis_url,
            broker_url=redis_url,
            key_prefix="amp",
            webhook_hash=sandbox.webhook_hash,
            jetti_async_url=sandbox.webhook_url,
            max_line_items=5,
        )
    )
    yield rt
    rt.close()


def _record(rt: Runtime, order: dict[str, Any]) -> None:
    raw = json.dumps(order).encode()
    rt.ledger.record(
        NewVersion(order["id"], raw, parse_raw_order(order).updated_at, "test"), now=time.time()
    )


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


def test_resend_stored_never_sends_an_older_version_than_the_ledger_holds(
    runtime: Runtime, sandbox: Any
) -> None:
    """The review's scenario (#13): v1 is rejected 422 and its payload P1 stored; v2 arrives and
    fails its transform (the dead letter keeps P1, raw v2); `dlq replay --resend-stored` must
    not send P1 and record v2 as sent. It is refused with a clear reason; nothing is armed."""
    from worker.core.replay_plan import Action, ReplayMode
    from worker.pipeline.replayer import Replayer
    from worker.store.audit import AuditLog

    v1 = raw_order("rs", updated_at="2026-11-27T10:00:00+00:00", note="first")
    _record(runtime, v1)
    sandbox.set_faults(fail_next=1, fail_next_status=422)
    runtime.processor.handle_batch(["rs"], task_id="t1")
    letter = runtime.dead_letters.get("rs")
    assert letter is not None and letter.reason is DeadReason.REJECTED
    p1 = letter.payload
    assert p1 is not None and b"first" in p1

    v2 = raw_order("rs", updated_at="2026-11-27T11:00:00+00:00", note="second")
    v2["lines"][0].update(quantity=6, units=[{} for _ in range(6)])  # over the cap of 5
    _record(runtime, v2)
    runtime.processor.handle_batch(["rs"], task_id="t2")
    letter = runtime.dead_letters.get("rs")
    assert letter is not None and letter.reason is DeadReason.TRANSFORM_ERROR
    assert letter.payload == p1  # kept, with the version it was built from

    replayer = Replayer(
        ledger=runtime.ledger,
        dead_letters=runtime.dead_letters,
        publisher=runtime.publisher,
        audit=AuditLog(runtime.redis, runtime.keys),
        actor="test",
    )
    step = replayer.replay(letter, mode=ReplayMode.RESEND_STORED)
    assert step.action is Action.NOT_REPLAYABLE
    assert "older version" in step.why
    entry = runtime.ledger.get("rs")
    assert entry is not None and entry.state is OrderState.DEAD and entry.resend_payload is None
