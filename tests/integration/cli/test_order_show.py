"""`jetti-relay order show KEY`: where is order X? Against real Redis, worker and sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result

from ops.commands.order import order
from producers import enqueue
from tests.fixtures.pipeline import PipelineFactory, wait_until
from worker.celery_app import create_app
from worker.core.keys import Keys
from worker.core.records import Attempt
from worker.core.states import DeadReason, OrderState
from worker.publisher import Publisher
from worker.settings import Settings
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger, NewVersion

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"


def raw_order(order_id: str, *, updated_at: str, note: str = "") -> dict[str, Any]:
    return {
        "id": order_id,
        "number": f"#{order_id}",
        "updated_at": updated_at,
        "notes": note,
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": EMAIL},
        "lines": [
            {"id": "l1", "sku": "SKU-1", "name": "Mug", "quantity": 1, "unit_price": "12.10"}
        ],
        "auto_connect_by_sku": True,
    }


class Shop:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
        self.ledger = Ledger(self.client, Keys())
        self.dead = DeadLetters(self.client, Keys())
        self.publisher = Publisher(create_app(Settings(redis_url=redis_url, broker_url=redis_url)))

    def send(self, *orders: dict[str, Any]) -> None:
        enqueue(list(orders), client=self.client, publisher=self.publisher)

    def show(self, *args: str) -> Result:
        return CliRunner().invoke(order, ["show", *args, "--redis-url", self.redis_url])

    def state(self, key: str) -> OrderState | None:
        entry = self.ledger.get(key)
        return entry.state if entry else None


@pytest.fixture
def shop(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", redis_url)
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "token-that-must-not-show")
    s = Shop(redis_url)
    yield s
    s.client.close()


def test_order_show_json_tells_where_a_submitted_order_is(
    shop: Shop, start_pipeline: PipelineFactory, sandbox_factory: Any
) -> None:
    """Two versions sent and a stale one ignored: the JSON gives the state, every version
    received, both attempts, the Jetti sale id, no dead letter and the timeline."""
    jetti = sandbox_factory(throttle=False)
    start_pipeline(
        JETTI_RELAY_JETTI_MODE="sync",
        JETTI_RELAY_RATE_PER_S="50",
        JETTI_RELAY_JETTI_API_URL=jetti.base_url,
        JETTI_RELAY_API_TOKEN=jetti.api_token,
        JETTI_RELAY_CHANNEL_ID=str(jetti.channel_id),
    )
    shop.send(raw_order("os-1", updated_at="2026-11-27T10:00:00+00:00", note="v1"))
    wait_until(lambda: shop.state("os-1") is OrderState.SUBMITTED, what="v1 submitted")
    shop.send(raw_order("os-1", updated_at="2026-11-27T11:00:00+00:00", note="v2"))
    wait_until(lambda: len(jetti.history("os-1")) == 2, what="v2 in Jetti")
    wait_until(lambda: shop.state("os-1") is OrderState.SUBMITTED, what="v2 submitted")
    shop.send(raw_order("os-1", updated_at="2026-11-27T09:00:00+00:00", note="v0"))

    result = shop.show("os-1", "--json")

    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["state"] == "submitted"
    assert view["versions_received"] == {"accepted": 1, "updated": 1, "stale": 1}
    assert [a["status"] for a in view["attempts"]] == [200, 200]
    (sale,) = jetti.sales("os-1")
    assert view["sale_id"] == sale["id"]
    assert view["dead_letter"] is None
    types = [e["type"] for e in view["timeline"]]
    assert types.count("received") == 3 and types.count("submitted") == 2
    assert "delivery_started" in types
    assert jetti.api_token not in result.output


def test_order_show_of_a_dead_order_names_its_dead_letter(shop: Shop) -> None:
    """A dead order shows its reason and dead-letter status; emails in errors are masked."""
    now = time.time()
    raw = orjson.dumps(raw_order("os-dead", updated_at="2026-11-27T10:00:00+00:00"))
    shop.ledger.record(NewVersion("os-dead", raw, None, "shop"), now=now)
    attempt = Attempt(
        at=now,
        status=422,
        error_class="Rejected",
        excerpt=f"customer {EMAIL} blocked",
        worker="w1",
        outcome="error",
    )
    shop.ledger.mark_dead("os-dead", reason=DeadReason.REJECTED, now=now, attempt=attempt)
    shop.dead.put(
        "os-dead",
        reason=DeadReason.REJECTED,
        raw=raw,
        payload=None,
        attempts=[attempt],
        source="shop",
        error=f"Jetti answered 422: {EMAIL}",
        now=now,
    )

    view = json.loads(shop.show("os-dead", "--json").output)
    text = shop.show("os-dead")

    assert view["state"] == "dead" and view["dead_reason"] == "rejected"
    assert view["dead_letter"]["status"] == "dead"
    assert view["dead_letter"]["reason"] == "rejected"
    assert EMAIL not in json.dumps(view) and EMAIL not in text.output
    assert text.exit_code == 0 and "dead letter: dead (rejected)" in text.output


def test_order_show_of_an_unknown_order_exits_3(shop: Shop) -> None:
    """Nothing under the key: a clear message and exit code 3."""
    result = shop.show("never-seen")
    assert result.exit_code == 3
    assert "no order and no dead letter" in result.output
