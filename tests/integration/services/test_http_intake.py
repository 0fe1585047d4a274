"""The HTTP intake over real HTTP: `jetti-relay intake --http` in its own process, fed by the real
`curl` binary (a non-Python client), checked in the ledger and on the broker queue.

Every test here shares one intake process (`shared_http_intake`: the deployment's token and
HMAC secret, plus per-source credentials for shop-a and shop-b) on the session's Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from typing import Any
from urllib.parse import quote

import pytest
import redis

from tests.factories import EMAIL, raw_order
from tests.fixtures.broker import published_keys
from tests.fixtures.http_intake import (
    HMAC_SECRET,
    SHOP_A_TOKEN,
    SHOP_B_SECRET,
    TEST_MAX_BODY_BYTES,
    TOKEN,
    Answer,
    IntakeProcess,
    curl,
)
from worker.core.contract import RawOrder
from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.store.ledger import Ledger

pytestmark = pytest.mark.integration

JSON = ("-H", "Content-Type: application/json")
NDJSON = ("-H", "Content-Type: application/x-ndjson")
BEARER = ("-H", f"Authorization: Bearer {TOKEN}")
SHOP_A = ("-H", f"Authorization: Bearer {SHOP_A_TOKEN}")
OUTCOMES = ("accepted", "updated", "unchanged", "stale", "after_cancel", "rejected")


def body_of(*orders: dict[str, Any] | str) -> bytes:
    """NDJSON: each order on its own line (a str is written as it is)."""
    lines = [o if isinstance(o, str) else json.dumps(o) for o in orders]
    return ("\n".join(lines) + "\n").encode()


def post(intake: IntakeProcess, *args: str, data: bytes, query: str = "") -> Answer:
    return curl(f"{intake.url}/v1/orders{query}", "-X", "POST", *args, data=data)


def get(intake: IntakeProcess, key: str, *args: str) -> Answer:
    return curl(f"{intake.url}/v1/orders/{quote(key, safe='')}", *args)


def counts(**nonzero: int) -> dict[str, int]:
    return {o: nonzero.get(o, 0) for o in OUTCOMES}


def sign(secret: str, data: bytes) -> tuple[str, str]:
    digest = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    return ("-H", f"X-Jetti-Relay-Signature: sha256={digest}")


@pytest.fixture
def ledger(redis_client: redis.Redis[bytes]) -> Ledger:
    return Ledger(redis_client, Keys())


def test_one_json_order_is_recorded_and_published_before_the_answer(
    shared_http_intake: IntakeProcess, redis_client: redis.Redis[bytes], ledger: Ledger
) -> None:
    """POST one order as application/json: 202 `accepted` with its key, and by then the ledger
    holds it PENDING and its key is on the broker queue."""
    answer = post(shared_http_intake, *BEARER, *JSON, data=json.dumps(raw_order("w-1")).encode())

    assert answer.status == 202, answer.body
    assert answer.json()["counts"] == counts(accepted=1)
    assert answer.json()["orders"] == [{"position": 1, "key": "w-1", "outcome": "accepted"}]
    entry = ledger.get("w-1")
    assert entry is not None and entry.state is OrderState.PENDING
    assert published_keys(redis_client) == ["w-1"]


def test_an_ndjson_batch_answers_each_order_by_line(
    shared_http_intake: IntakeProcess, redis_client: redis.Redis[bytes], ledger: Ledger
) -> None:
    """Each non-empty line is one order, numbered by its line: new, invalid (with the field
    path of every problem), not JSON, identical, older, newer, all in one request."""
    first = raw_order("n-1", updated_at="2026-11-27T10:00:00+00:00")
    data = body_of(
        first,
        raw_order("n-2", quantity=0),
        "",
        "{not json",
        first,
        raw_order("n-1", updated_at="2026-11-27T09:00:00+00:00"),
        raw_order("n-3"),
        raw_order("n-1", updated_at="2026-11-27T11:00:00+00:00"),
        {"number": "#no-id"},
    )

    answer = post(shared_http_intake, *BEARER, *NDJSON, data=data)

    assert answer.status == 202, answer.body
    assert answer.json()["counts"] == counts(
        accepted=2, updated=1, unchanged=1, stale=1, rejected=3
    )
    orders = {o["position"]: o for o in answer.json()["orders"]}
    assert sorted(orders) == [1, 2, 4, 5, 6, 7, 8, 9]
    assert [orders[p]["outcome"] for p in (1, 5, 6, 7, 8)] == [
        "accepted",
        "unchanged",
        "stale",
        "accepted",
        "updated",
    ]
    assert orders[2]["key"] == "n-2" and orders[2]["outcome"] == "rejected"
    assert [p["path"] for p in orders[2]["problems"]] == ["lines[0].quantity", "lines[1].quantity"]
    assert orders[4] == {
        "position": 4,
        "key": None,
        "outcome": "rejected",
        "problems": [{"path": "$", "message": orders[4]["problems"][0]["message"]}],
    }
    assert {p["path"] for p in orders[9]["problems"]} >= {"id", "lines"}
    assert ledger.get("n-2") is None
    assert sorted(set(published_keys(redis_client))) == ["n-1", "n-3"]


@pytest.mark.parametrize(
    ("media", "data"),
    [
        (JSON, json.dumps(raw_order("bad-1", quantity=0)).encode()),
        (NDJSON, body_of(raw_order("bad-1", quantity=0), "[1, 2]")),
    ],
    ids=["json", "ndjson"],
)
def test_a_request_without_any_valid_order_is_400_with_every_problem(
    shared_http_intake: IntakeProcess,
    redis_client: redis.Redis[bytes],
    media: tuple[str, str],
    data: bytes,
) -> None:
    """When no order is valid the answer is 400, still with each order's problems; nothing is
    recorded or published."""
    answer = post(shared_http_intake, *BEARER, *media, data=data)

    assert answer.status == 400, answer.body
    assert answer.json()["error"] == "no valid order in the request"
    first = answer.json()["orders"][0]
    assert first["key"] == "bad-1" and first["outcome"] == "rejected"
    assert first["problems"][0]["path"] == "lines[0].quantity"
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("media", [JSON, NDJSON], ids=["json", "ndjson"])
def test_an_empty_body_is_400(shared_http_intake: IntakeProcess, media: tuple[str, str]) -> None:
    """A body with no order at all (only blank lines) is refused as a whole: 400, no orders."""
    answer = post(shared_http_intake, *BEARER, *media, data=b"\n \n")

    assert answer.status == 400
    assert answer.json()["orders"] == [] and answer.json()["error"]


ORDER = json.dumps(raw_order("auth-1")).encode()


@pytest.mark.parametrize(
    "credential",
    [
        (),
        ("-H", "Authorization: Bearer not-the-token"),
        ("-H", "Authorization: Basic dXNlcjpwYXNz"),
        sign(HMAC_SECRET, b"another body"),
        sign("not-the-secret", ORDER),
        ("-H", "X-Jetti-Relay-Signature: " + sign(HMAC_SECRET, ORDER)[1].split(": sha256=")[1]),
    ],
    ids=["none", "wrong-token", "not-bearer", "other-body", "wrong-secret", "no-scheme"],
)
def test_without_a_valid_credential_the_answer_is_401(
    shared_http_intake: IntakeProcess,
    redis_client: redis.Redis[bytes],
    credential: tuple[str, ...],
) -> None:
    """No credential, a wrong token, a signature of other bytes or with another key: 401 with
    WWW-Authenticate, and nothing written."""
    answer = post(shared_http_intake, *credential, *JSON, data=ORDER)

    assert answer.status == 401, answer.body
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert redis_client.dbsize() == 0


def test_a_body_signed_with_openssl_is_accepted(
    shared_http_intake: IntakeProcess, ledger: Ledger
) -> None:
    """The shell recipe of docs/intake.md: openssl signs the body, curl sends it; both the
    deployment's HMAC secret and shop-b's per-source secret are accepted."""
    script = (
        'SIG=$(printf %s "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed "s/^.*= //")\n'
        'curl -sS -o /dev/null -w "%{http_code}" -X POST "$URL" '
        '-H "Content-Type: application/json" '
        '-H "X-Jetti-Relay-Signature: sha256=$SIG" --data-binary "$BODY"'
    )
    for secret, order_id, key in ((HMAC_SECRET, "sig-1", "sig-1"), (SHOP_B_SECRET, "7", "b-7")):
        env = {
            "PATH": "/usr/bin:/bin",
            "BODY": json.dumps(raw_order(order_id)),
            "SECRET": secret,
            "URL": f"{shared_http_intake.url}/v1/orders",
        }
        done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert done.stdout == "202", done.stderr
        entry = ledger.get(key)
        assert entry is not None


def test_a_signed_request_may_not_name_a_prefix_or_source(
    shared_http_intake: IntakeProcess, redis_client: redis.Redis[bytes]
) -> None:
    """The signature covers the body only: the same signed body replayed with
    `?id_prefix=a-&source=shop-a` would land under shop-a's keys, so it is refused with 403."""
    body = json.dumps(raw_order("replayed")).encode()
    signature = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()

    answer = post(
        shared_http_intake,
        *JSON,
        "-H",
        f"X-Jetti-Relay-Signature: sha256={signature}",
        data=body,
        query="?id_prefix=a-&source=shop-a",
    )

    assert answer.status == 403, answer.body
    assert "signature" in answer.json()["error"]
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_413(
    shared_http_intake: IntakeProcess, redis_client: redis.Redis[bytes], chunked: bool
) -> None:
    """Over JETTI_RELAY_INTAKE_MAX_BODY_BYTES: 413, whether Content-Length announces it or a
    chunked body only turns out too long while read. Nothing is written."""
    line = json.dumps(raw_order("big")).encode() + b"\n"
    data = line * (TEST_MAX_BODY_BYTES // len(line) + 1)
    framing = ("-H", "Transfer-Encoding: chunked") if chunked else ()

    answer = post(shared_http_intake, *BEARER, *NDJSON, *framing, data=data)

    assert answer.status == 413, answer.body
    assert str(TEST_MAX_BODY_BYTES) in answer.json()["error"]
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "content_type", ["text/csv", "application/x-www-form-urlencoded", "application/xml"]
)
def test_other_media_types_are_415(shared_http_intake: IntakeProcess, content_type: str) -> None:
    """Only application/json and application/x-ndjson are orders."""
    answer = post(shared_http_intake, *BEARER, "-H", f"Content-Type: {content_type}", data=ORDER)

    assert answer.status == 415


def test_a_per_source_credential_sets_the_prefix_and_source(
    shared_http_intake: IntakeProcess, ledger: Ledger
) -> None:
    """shop-a's token writes `a-<id>` with source shop-a; the deployment's token may name the
    prefix and source itself with query parameters."""
    own = post(shared_http_intake, *SHOP_A, *JSON, data=json.dumps(raw_order("11")).encode())
    named = post(
        shared_http_intake,
        *BEARER,
        *JSON,
        data=json.dumps(raw_order("11")).encode(),
        query="?source=erp&id_prefix=e-",
    )

    assert own.json()["orders"][0]["key"] == "a-11"
    assert named.json()["orders"][0]["key"] == "e-11"
    a, e = ledger.get("a-11"), ledger.get("e-11")
    assert a is not None and a.source == "shop-a"
    assert e is not None and e.source == "erp"


@pytest.mark.parametrize("query", ["?id_prefix=b-", "?source=shop-b", "?source=&id_prefix="])
def test_a_per_source_credential_may_not_choose_prefix_or_source(
    shared_http_intake: IntakeProcess, redis_client: redis.Redis[bytes], query: str
) -> None:
    """A request with a per-source credential that tries to set them is refused with 403 and
    a message saying why; nothing is written."""
    answer = post(
        shared_http_intake, *SHOP_A, *JSON, data=json.dumps(raw_order("12")).encode(), query=query
    )

    assert answer.status == 403
    assert "id_prefix" in answer.json()["error"]
    assert redis_client.dbsize() == 0


STATUS_FIELDS = {
    "request_id",
    "key",
    "state",
    "state_since",
    "attempts",
    "sale_id",
    "dead_reason",
    "source",
    "updated_at",
    "first_seen_at",
    "enqueued_at",
    "submitted_at",
    "next_attempt_at",
}


def test_get_order_tells_where_an_order_is_without_personal_data(
    shared_http_intake: IntakeProcess,
) -> None:
    """GET /v1/orders/{key} (URL-encoded, any characters) answers state, attempts, sale id,
    times; no raw body and nothing of the customer. An unknown key is 404."""
    key = "odd/key ä?#%"
    post(shared_http_intake, *BEARER, *JSON, data=json.dumps(raw_order(key)).encode())

    answer = get(shared_http_intake, key, *BEARER)

    assert answer.status == 200, answer.body
    status = answer.json()
    assert set(status) == STATUS_FIELDS
    assert status["key"] == key and status["state"] == "pending"
    assert status["attempts"] == 0 and status["sale_id"] is None
    assert status["updated_at"] == "2026-11-27T10:00:00.000Z"
    for personal in (EMAIL, "Lovelace", "Main St", "London"):
        assert personal.encode() not in answer.body
    missing = get(shared_http_intake, "no-such-order", *BEARER)
    assert missing.status == 404 and missing.json()["error"]


def test_a_per_source_credential_reads_only_its_own_orders(
    shared_http_intake: IntakeProcess,
) -> None:
    """shop-a reads `a-` keys only: shop-b's order is 404 to it, though it exists; a signed GET
    (the signature covers the request target) reads shop-b's own."""
    order = json.dumps(raw_order("21")).encode()
    post(shared_http_intake, *SHOP_A, *JSON, data=order)
    post(shared_http_intake, *sign(SHOP_B_SECRET, order), *JSON, data=order)

    assert get(shared_http_intake, "a-21", *SHOP_A).status == 200
    assert get(shared_http_intake, "b-21", *SHOP_A).status == 404
    assert get(shared_http_intake, "b-21", *BEARER).status == 200
    signed = get(shared_http_intake, "b-21", *sign(SHOP_B_SECRET, b"/v1/orders/b-21"))
    assert signed.status == 200 and signed.json()["source"] == "shop-b"
    assert get(shared_http_intake, "b-21", *sign(SHOP_B_SECRET, b"/v1/orders/b-22")).status == 401


def test_the_request_id_is_echoed_and_logged_once_per_request(
    shared_http_intake: IntakeProcess,
) -> None:
    """X-Request-Id comes back (unusable characters dropped) in the header and the body, and
    the access log has one event for it: the path template, not the key; no personal data."""
    answer = get(shared_http_intake, "w-77", *BEARER, "-H", "X-Request-Id: trace<1>:ab")
    generated = curl(f"{shared_http_intake.url}/health")

    assert answer.headers["x-request-id"] == "trace1:ab" == answer.json()["request_id"]
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    post(shared_http_intake, *BEARER, *JSON, data=ORDER, query="")
    events = [e for e in shared_http_intake.events() if e.get("request_id") == "trace1:ab"]
    assert [(e["event"], e["method"], e["path"], e["status"]) for e in events] == [
        ("http_request", "GET", "/v1/orders/{key}", 404)
    ]
    assert events[0]["duration_ms"] >= 0
    log_text = shared_http_intake.log_path.read_text()
    assert "w-77" not in log_text and EMAIL not in log_text and TOKEN not in log_text


def test_health_and_openapi_need_no_credential(shared_http_intake: IntakeProcess) -> None:
    """/health answers 200 while Redis does; /openapi.json is an OpenAPI 3.1 document whose
    every reference resolves and whose order body is the raw-order contract."""
    health = curl(f"{shared_http_intake.url}/health")
    document = curl(f"{shared_http_intake.url}/openapi.json").json()

    assert health.status == 200 and health.json()["status"] == "ok"
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/v1/orders",
        "/v1/orders/{key}",
        "/health",
        "/openapi.json",
    }
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    contract = RawOrder.model_json_schema()
    assert schemas["RawOrder"]["required"] == contract["required"]
    assert set(schemas["RawOrder"]["properties"]) == set(contract["properties"])
    assert set(contract["$defs"]) <= set(schemas)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
