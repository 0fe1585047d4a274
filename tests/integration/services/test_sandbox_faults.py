"""Every fault the sandbox injects, seen from a real HTTP client."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.factories import sale_payload
from tests.fixtures.sandbox import Sandbox, bearer, send_async

pytestmark = pytest.mark.integration


def test_fail_next_fails_exactly_n_requests_then_recovers(sandbox: Sandbox) -> None:
    """Scripted mode: the next N requests get the status, the one after is served normally."""
    sandbox.set_faults(fail_next=2, fail_next_status=503)
    statuses = [send_async(sandbox, sale_payload()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert len(sandbox.history("1001")) == 1  # failed requests are not imported


def test_injected_429_carries_retry_after(sandbox: Sandbox) -> None:
    """rate_429=1 answers 429 with the configured Retry-After and imports nothing."""
    sandbox.set_faults(rate_429=1.0, retry_after_s=7)
    response = send_async(sandbox, sale_payload())
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert sandbox.stats()["versions_received"] == 0


@pytest.mark.parametrize("header", ["inf", "nan", "1e9", "Fri, 01 Jan 2100 00:00:00 GMT"])
def test_injected_429_can_carry_any_retry_after_text(sandbox: Sandbox, header: str) -> None:
    """retry_after_header is sent verbatim (the extremes a proxy might send, reliability #8)."""
    sandbox.set_faults(rate_429=1.0, retry_after_header=header)
    assert send_async(sandbox, sale_payload()).headers["retry-after"] == header


@pytest.mark.parametrize(
    "knob",
    [{"retry_after_header": "bad\nvalue"}, {"imports_page_cap": -1}, {"cancel_then_timeout": True}],
)
def test_bad_values_of_the_new_knobs_are_rejected(
    sandbox: Sandbox, knob: dict[str, object]
) -> None:
    """Malformed values of the undocumented-behaviour switches are a 400 naming the knob."""
    response = sandbox.client.post("/_sandbox/faults", json=knob)
    assert response.status_code == 400 and next(iter(knob)) in response.text


def test_error_rate_answers_one_of_the_configured_5xx(sandbox: Sandbox) -> None:
    """error_rate=1 answers a status drawn from error_statuses, on the sync endpoint too."""
    sandbox.set_faults(error_rate=1.0, error_statuses=[502])
    assert send_async(sandbox, sale_payload()).status_code == 502
    response = sandbox.client.post(sandbox.sync_url, json=sale_payload(), headers=bearer(sandbox))
    assert response.status_code == 502
    assert sandbox.stats()["requests"]["sync"] == {"502": 1}


def test_dropped_connection_is_a_transport_error(sandbox: Sandbox) -> None:
    """drop_rate=1 closes the connection mid-response: the client sees a reset or a cut body."""
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send_async(sandbox, sale_payload())
    assert sandbox.stats()["requests"]["async"] == {"dropped": 1}


def test_slow_response_times_out_the_client_but_the_import_still_lands(sandbox: Sandbox) -> None:
    """slow_rate=1 answers after slow_s; the async import is applied anyway (outcome unknown)."""
    sandbox.set_faults(slow_rate=1.0, slow_s=2.0)
    with pytest.raises(httpx.ReadTimeout):
        sandbox.client.post(
            sandbox.webhook_url,
            json=sale_payload(),
            headers={"jetti-webhook-hash": sandbox.webhook_hash},
            timeout=0.3,
        )
    sandbox.set_faults(slow_rate=0.0)
    assert [r["status"] for r in sandbox.imports(external_id="1001")] == ["success"]


def test_latency_is_added_to_responses(sandbox_factory: Callable[..., Sandbox]) -> None:
    """--latency-ms delays every Jetti response: a client timeout shorter than it expires."""
    sb = sandbox_factory(throttle=False, latency_ms=400)
    with pytest.raises(httpx.ReadTimeout):
        sb.client.post(
            sb.webhook_url,
            json=sale_payload(),
            headers={"jetti-webhook-hash": sb.webhook_hash},
            timeout=0.1,
        )
    response = sb.client.post(
        sb.webhook_url,
        json=sale_payload(),
        headers={"jetti-webhook-hash": sb.webhook_hash},
        timeout=5,
    )
    assert response.status_code == 200


def test_out_of_order_applies_a_later_version_before_an_earlier_one(sandbox: Sandbox) -> None:
    """out_of_order applies a batch newest-first: history shows v2 received before v1."""
    sandbox.set_faults(out_of_order=True, out_of_order_hold_s=0.5)
    v1, v2 = sale_payload(lines=1), sale_payload(lines=2)
    send_async(sandbox, v1)
    send_async(sandbox, v2)
    bodies = [json.loads(h["body"]) for h in sandbox.history("1001")]
    assert bodies == [v2, v1]
    assert len(sandbox.sales("1001")[0]["lineItems"]) == 1  # the stale v1 won, as with real races


def test_faults_can_target_one_endpoint(sandbox: Sandbox) -> None:
    """`endpoints` limits faults: sync fails while the async endpoint is served."""
    sandbox.set_faults(error_rate=1.0, endpoints=["sync"])
    assert send_async(sandbox, sale_payload()).status_code == 200
    response = sandbox.client.post(sandbox.sync_url, json=sale_payload(), headers=bearer(sandbox))
    assert response.status_code >= 500


def test_reset_clears_state_and_faults(sandbox: Sandbox) -> None:
    """reset() forgets sales, history, counters and faults."""
    send_async(sandbox, sale_payload())
    sandbox.set_faults(fail_next=5)
    sandbox.reset()
    assert sandbox.stats()["sales"] == 0 and sandbox.history("1001") == []
    assert send_async(sandbox, sale_payload()).status_code == 200


def test_unknown_fault_knob_is_rejected(sandbox: Sandbox) -> None:
    """A typo in a fault name is a 400 naming it, not a silently ignored knob."""
    response = sandbox.client.post("/_sandbox/faults", json={"eror_rate": 1})
    assert response.status_code == 400 and "eror_rate" in response.text


def test_async_throttle_is_configurable(sandbox_factory: Callable[..., Sandbox]) -> None:
    """--async-rate N answers 429 beyond N requests per second on the async endpoint."""
    sb = sandbox_factory(throttle=False, async_rate=2)
    statuses = [send_async(sb, sale_payload()).status_code for _ in range(6)]
    assert statuses.count(429) >= 2 and 2 <= statuses.count(200) <= 4
