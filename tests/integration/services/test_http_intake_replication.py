"""The HTTP intake with JETTI_RELAY_MIN_REPLICAS_ACK=1, on a real primary and replica: 202 only
once the replica holds the order; while it cannot confirm, 503 `replication_unconfirmed` with
Retry-After (the order already on the primary, the resend `unchanged` and accepted); and a
primary refusing writes for want of in-sync replicas (NOREPLICAS) is a 503 that says so.
One intake process for the module, on the module's replicated group."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from ops.harness.ha import RedisHA
from producers.http.writer import REPLICATION_UNCONFIRMED
from tests.factories import raw_order
from tests.fixtures.http_intake import TOKEN, Answer, IntakeFactory, IntakeProcess, curl
from tests.fixtures.pipeline import wait_until
from tests.fixtures.replication import Replicated
from worker.core.keys import Keys
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

HEADERS = ("-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json")
KEYS = Keys()
TIMEOUT_S = 0.2


@pytest.fixture(scope="module")
def intake(
    replicated_group: RedisHA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IntakeProcess]:
    """One HTTP intake on the group's primary, waiting for one replica at most 0.2 s."""
    factory = IntakeFactory(tmp_path_factory.mktemp("http-intake-replication"))
    yield factory(
        replicated_group.nodes[0].url,
        JETTI_RELAY_INTAKE_TOKEN=TOKEN,
        JETTI_RELAY_MIN_REPLICAS_ACK="1",
        JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S=str(TIMEOUT_S),
    )
    factory.stop_all()


def post_order(intake: IntakeProcess, order_id: str) -> Answer:
    data = json.dumps(raw_order(order_id)).encode()
    return curl(f"{intake.url}/v1/orders", "-X", "POST", *HEADERS, data=data)


def test_an_order_the_replica_holds_is_202(replicated: Replicated, intake: IntakeProcess) -> None:
    """With the replica up: 202, and the replica holds the order."""
    answer = post_order(intake, "h-1")

    assert answer.status == 202, answer.body
    replica = replicated.replica_client()
    assert replica.exists(KEYS.order("h-1"))
    replica.close()


def test_unconfirmed_replication_is_503_and_the_resend_is_202_unchanged(
    replicated: Replicated, intake: IntakeProcess
) -> None:
    """Replica frozen: 503 with Retry-After, `error` replication_unconfirmed and a detail
    that says the order is on the primary; the ledger holds it. Replica back: the same
    request is 202, the order `unchanged`."""
    with replicated.replica_stopped():
        answer = post_order(intake, "h-2")
        assert Ledger(replicated.client, KEYS).get("h-2") is not None

    assert answer.status == 503, answer.body
    assert int(answer.headers["retry-after"]) > 0
    body = answer.json()
    assert body["error"] == REPLICATION_UNCONFIRMED == "replication_unconfirmed"
    assert "recorded on the Redis primary" in body["detail"]
    assert "0 of 1 replicas" in body["detail"]

    again = post_order(intake, "h-2")

    assert again.status == 202, again.body
    assert again.json()["orders"][0]["outcome"] == "unchanged"


def test_a_primary_short_of_replicas_is_503_saying_why(
    replicated: Replicated, intake: IntakeProcess
) -> None:
    """Under min-replicas-to-write with the replica frozen past the lag bound, the primary
    refuses (NOREPLICAS): 503 with Retry-After, not replication_unconfirmed (nothing was
    recorded), and the reason names min-replicas-to-write."""
    replicated.refuse_writes_without_replicas()
    with replicated.replica_stopped():
        wait_until(lambda: refused(replicated), what="the primary refusing writes")
        answer = post_order(intake, "h-3")
        assert Ledger(replicated.client, KEYS).get("h-3") is None

    assert answer.status == 503, answer.body
    assert int(answer.headers["retry-after"]) > 0
    body = answer.json()
    assert body["error"] != REPLICATION_UNCONFIRMED
    assert "min-replicas-to-write" in body["error"]


def test_the_openapi_document_names_replication_unconfirmed(intake: IntakeProcess) -> None:
    """The 503 of POST /v1/orders documents the `replication_unconfirmed` answer."""
    document = curl(f"{intake.url}/openapi.json").json()
    described = document["paths"]["/v1/orders"]["post"]["responses"]["503"]["description"]

    assert REPLICATION_UNCONFIRMED in described
    assert "detail" in document["components"]["schemas"]["Error"]["properties"]


def refused(replicated: Replicated) -> bool:
    try:
        replicated.client.set("probe", "1")
    except redis.ResponseError:
        return True
    return False
