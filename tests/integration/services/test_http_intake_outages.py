"""The HTTP intake when Redis cannot take orders: unreachable, or near its memory limit. The
sender gets 503 with Retry-After and nothing is acknowledged; once Redis is back, 202 again.
Each test owns its redis-server, as they stop it or shrink its memory."""

from __future__ import annotations

import json

import pytest
import redis

from tests.factories import raw_order
from tests.fixtures.http_intake import TOKEN, Answer, IntakeFactory, curl
from tests.fixtures.pipeline import wait_until
from tests.fixtures.redis_server import RedisServer

pytestmark = pytest.mark.integration

HEADERS = ("-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json")


def post_order(url: str, order_id: str) -> Answer:
    data = json.dumps(raw_order(order_id)).encode()
    return curl(f"{url}/v1/orders", "-X", "POST", *HEADERS, data=data)


def test_redis_unreachable_is_503_with_retry_after(
    own_redis_server: RedisServer, start_http_intake: IntakeFactory
) -> None:
    """With Redis stopped, POST answers 503 with Retry-After and /health 503; nothing was
    acknowledged, and the same order is accepted once Redis is back."""
    intake = start_http_intake(own_redis_server.url, JETTI_RELAY_INTAKE_TOKEN=TOKEN)
    assert post_order(intake.url, "before").status == 202

    own_redis_server.stop(kill=True)
    answer = post_order(intake.url, "during")
    health = curl(f"{intake.url}/health")

    assert answer.status == 503, answer.body
    assert int(answer.headers["retry-after"]) > 0
    assert "unreachable" in answer.json()["error"]
    assert health.status == 503 and health.json()["redis"] == "unreachable"
    own_redis_server.start()
    wait_until(lambda: post_order(intake.url, "during").status == 202, what="202 after restart")


def test_redis_near_maxmemory_is_503_before_writing(
    own_redis_server: RedisServer, start_http_intake: IntakeFactory
) -> None:
    """When used_memory / maxmemory is above JETTI_RELAY_INTAKE_MEMORY_LIMIT the intake refuses
    with 503 and Retry-After before writing (Redis itself would still accept the write); when
    memory is back under the limit, orders are taken again."""
    client: redis.Redis[bytes] = redis.Redis.from_url(own_redis_server.url)
    intake = start_http_intake(
        own_redis_server.url,
        JETTI_RELAY_INTAKE_TOKEN=TOKEN,
        JETTI_RELAY_INTAKE_MEMORY_LIMIT="0.5",
    )
    used = int(client.info("memory")["used_memory"])
    # About 80% full: over the intake's limit, under Redis's own (it would still write).
    client.config_set("maxmemory", str(int(used * 1.25)))

    answer = post_order(intake.url, "full")

    assert answer.status == 503, answer.body
    assert int(answer.headers["retry-after"]) > 0
    assert "maxmemory" in answer.json()["error"]
    assert client.dbsize() == 0
    client.config_set("maxmemory", "0")
    wait_until(lambda: post_order(intake.url, "full").status == 202, what="202 with memory free")
    client.close()
