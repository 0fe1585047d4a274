"""The Python producer stays the fast path and gets safer (issue 14 point 5).

`enqueue()` without `keys` writes under the configured prefix; getting a publisher leaves the
caller's Celery app alone; two deployments (two prefixes) on one Redis database never consume
each other's messages, with real workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis

from producers import enqueue
from tests.factories import minimal_order, raw_order
from tests.fixtures.broker import published_keys
from tests.fixtures.pipeline import PipelineFactory, wait_until
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.settings import Settings
from worker.store.ledger import Ledger
from worker.wiring import publisher as publisher_for

pytestmark = pytest.mark.integration


def test_enqueue_without_keys_writes_under_the_configured_prefix(
    cli_env: str, redis_client: redis.Redis[bytes]
) -> None:
    """With JETTI_RELAY_KEY_PREFIX=t (cli_env) and no `keys`, the order lands under `t`, where
    the workers read, not under the library default `jr`."""
    publisher = publisher_for(Settings(redis_url=cli_env, key_prefix="t"))
    summary = enqueue([minimal_order("cfg-1")], client=redis_client, publisher=publisher)
    assert summary.accepted == 1
    assert Ledger(redis_client, Keys("t")).get("cfg-1") is not None
    assert Ledger(redis_client, Keys("jr")).get("cfg-1") is None


_CALLER_WITH_ITS_OWN_APP = """
import json, sys
import celery
mine = celery.Celery("upstream-app")
mine.set_current()
from producers import connect, enqueue
relay = connect()
summary = enqueue([json.loads(sys.argv[1])], **relay.kwargs())
relay.publisher.publish(["extra-key"])
relay.close()
print(json.dumps({
    "accepted": summary.accepted,
    "current": celery.current_app.main,
    "same_object": celery.current_app._get_current_object() is mine,
    "relay_app_loaded": "worker.celery_app" in sys.modules,
}))
"""


def test_publishing_leaves_the_callers_current_celery_app_unchanged(
    cli_env: str, redis_client: redis.Redis[bytes]
) -> None:
    """An upstream service with its own Celery app calls `connect()`, enqueues and publishes:
    `celery.current_app` is still its app, and the relay's app module was never imported."""
    done = subprocess.run(
        [sys.executable, "-c", _CALLER_WITH_ITS_OWN_APP, json.dumps(minimal_order("own-1"))],
        capture_output=True,
        text=True,
        env={**os.environ, "JETTI_RELAY_BROKER_URL": cli_env},
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert out == {
        "accepted": 1,
        "current": "upstream-app",
        "same_object": True,
        "relay_app_loaded": False,
    }
    assert sorted(published_keys(redis_client)) == ["extra-key", "own-1"]


def test_two_prefixes_on_one_database_never_take_each_others_messages(
    redis_url: str, start_pipeline: PipelineFactory, sandbox: Any
) -> None:
    """Deployment `a` runs a worker, deployment `b` has none yet: `a` delivers its order and
    leaves `b`'s message on `b`'s queue, its order PENDING and untouched; `b`'s worker then
    delivers it. Each order reaches Jetti once."""
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    deployments = {p: Settings(redis_url=redis_url, key_prefix=p) for p in ("a", "b")}
    start_pipeline(JETTI_RELAY_KEY_PREFIX="a")
    for prefix, settings in deployments.items():
        enqueue(
            [raw_order(f"{prefix}-order")],
            client=client,
            publisher=publisher_for(settings),
            keys=Keys(prefix),
        )
    ledgers = {p: Ledger(client, Keys(p)) for p in deployments}

    def state(prefix: str) -> OrderState | None:
        entry = ledgers[prefix].get(f"{prefix}-order")
        return entry.state if entry else None

    wait_until(lambda: state("a") is OrderState.SUBMITTED, what="a's order in Jetti")
    # a's worker has been consuming all along: b's message is still where b's producer put it.
    assert published_keys(client, Keys("b").orders_queue()) == ["b-order"]
    assert state("b") is OrderState.PENDING
    assert sandbox.history("b-order") == []
    start_pipeline(JETTI_RELAY_KEY_PREFIX="b")
    wait_until(lambda: state("b") is OrderState.SUBMITTED, what="b's order in Jetti")
    assert [len(sandbox.history(f"{p}-order")) for p in deployments] == [1, 1]
    client.close()
