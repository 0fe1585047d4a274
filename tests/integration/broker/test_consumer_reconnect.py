"""The Celery worker back on its broker promptly after the broker comes back: a real
`jetti-relay worker` on a private Redis (ledger and broker) that is restarted under it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import raw_order
from tests.fixtures.pipeline import Harness, PipelineFactory
from tests.fixtures.redis_server import RedisServer
from worker.broker_consumer import RECONNECT_FIRST_PAUSE_S, RECONNECT_PAUSE_STEP_S
from worker.core.states import OrderState

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url(own_redis_server: RedisServer) -> str:
    """This module's ledger and broker: a private Redis the test may restart."""
    return own_redis_server.url


def test_the_consumer_retries_the_broker_within_a_second_and_consumes_after_a_restart(
    harness: Harness,
    start_pipeline: PipelineFactory,
    own_redis_server: RedisServer,
    sandbox: Any,
) -> None:
    """Redis down for 2 s under a running worker: Celery's consumer tries to reconnect after
    half a second, then one second, not kombu's default 2 s then 4 s (its own log lines say
    so), and an order enqueued once Redis is back is submitted."""
    worker = start_pipeline(concurrency=1)
    harness.enqueue([raw_order("rc-1")])
    harness.wait_states(["rc-1"], {OrderState.SUBMITTED})

    own_redis_server.restart(down_s=2.0)
    harness.enqueue([raw_order("rc-2")])
    harness.wait_states(["rc-2"], {OrderState.SUBMITTED})

    log = worker.log_path.read_text(errors="replace")  # whole: `log()` keeps only its end
    # Celery words a pause under 1 s as "now": the first try waits RECONNECT_FIRST_PAUSE_S, the
    # second one more step (kombu's defaults: 2 s, then 4 s).
    second_pause_s = RECONNECT_FIRST_PAUSE_S + RECONNECT_PAUSE_STEP_S
    assert f"Trying again in {second_pause_s:.2f} second" in log, log[-3000:]
    assert "Trying again in 2.00 seconds... (1/" not in log
