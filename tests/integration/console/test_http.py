"""The console over HTTP (httpx against the real `jetti-relay console` process, real Redis):
who may read and act, CSRF on cookie sessions, and the JSON twins' numbers for a seeded store.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from click.testing import CliRunner

from ops.cli import main as cli
from tests.fixtures.console import OPERATOR_TOKEN, READER_TOKEN, SINGLE_TOKEN, SeededConsole
from worker.core.states import DeadReason, OrderState
from worker.store.audit import AuditLog
from worker.store.breaker import Breaker

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logged_in(console: SeededConsole, token: str) -> tuple[httpx.Client, str]:
    """A client holding a session cookie from the login form, and the page's CSRF value."""
    client = httpx.Client(base_url=console.url, timeout=10.0)
    response = client.post("/login", data={"token": token}, follow_redirects=True)
    assert response.status_code == 200, response.text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
    assert match, "the page carries no CSRF value"
    return client, match.group(1)


def test_no_token_is_refused(seeded_console: SeededConsole) -> None:
    """Without a token the API answers 401 and a page sends the browser to the login form;
    an unknown token is 401 too."""
    assert httpx.get(f"{seeded_console.url}/api/overview").status_code == 401
    page = httpx.get(f"{seeded_console.url}/dead-letters")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    unknown = httpx.get(f"{seeded_console.url}/api/overview", headers=bearer("nope"))
    assert unknown.status_code == 401
    # a script that sent a wrong token to a page hears 401 too, not a login form
    assert httpx.get(f"{seeded_console.url}/orders", headers=bearer("nope")).status_code == 401
    assert httpx.get(f"{seeded_console.url}/healthz").text == "ok"


def test_overview_twin_has_the_seeded_numbers(seeded_console: SeededConsole) -> None:
    """The overview's JSON twin counts the seeded orders by state and dead letters by reason,
    and the last hour's received orders."""
    doc = httpx.get(f"{seeded_console.url}/api/overview", headers=bearer(READER_TOKEN)).json()
    seeded = seeded_console.seeded
    for state, count in seeded.states.items():
        assert doc["orders"][str(state)] == count
    assert doc["dead_letters"]["total"] == len(seeded.dead_keys)
    assert sum(doc["dead_letters"]["by_reason"].values()) == len(seeded.dead_keys)
    assert doc["dead_letters"]["by_reason"][str(DeadReason.INVALID_INPUT)] == 0
    assert doc["hour"]["received"] == sum(seeded.states.values())
    assert len(doc["minutes"]) == 60
    assert doc["breaker"]["state"] == "closed"


def test_dead_letter_listing_filters_and_entry(seeded_console: SeededConsole) -> None:
    """The dead-letter twin filters as `dlq list` (here by reason and key glob) and the entry
    twin is `dlq show` with emails masked."""
    url, headers = seeded_console.url, bearer(READER_TOKEN)
    rejected = httpx.get(f"{url}/api/dead-letters?reason=rejected&limit=200", headers=headers)
    rows = rejected.json()["rows"]
    assert rows and all(r["reason"] == "rejected" for r in rows)
    assert len(rows) == rejected.json()["by_reason"]["rejected"]
    shop_a = httpx.get(f"{url}/api/dead-letters?key=shop-a:*&limit=200", headers=headers).json()
    assert shop_a["rows"] and all(r["order_key"].startswith("shop-a:") for r in shop_a["rows"])
    key = seeded_console.seeded.dead_keys[0]
    entry = httpx.get(f"{url}/api/dead-letters/entry", params={"key": key}, headers=headers)
    assert entry.json()["order_key"] == key
    assert "@" not in json.dumps(entry.json()["raw"])  # the customer's email is masked
    assert "edit_raw" not in entry.json()  # a read-only user gets no unmasked copy
    missing = httpx.get(f"{url}/api/dead-letters/entry?key=nope", headers=headers)
    assert missing.status_code == 404


def test_orders_search_and_backlog(seeded_console: SeededConsole) -> None:
    """Orders search by prefix and state, and the backlog lists the seeded retry_wait orders
    with their next attempt."""
    url, headers = seeded_console.url, bearer(READER_TOKEN)
    found = httpx.get(f"{url}/api/orders?prefix=shop-b:&limit=500", headers=headers).json()
    assert found["rows"] and all(r["order_key"].startswith("shop-b:") for r in found["rows"])
    dead = httpx.get(f"{url}/api/orders?state=dead&limit=500", headers=headers).json()
    assert {r["order_key"] for r in dead["rows"]} == set(seeded_console.seeded.dead_keys)
    waiting = httpx.get(f"{url}/api/backlog?state=retry_wait&limit=500", headers=headers).json()
    assert len(waiting["rows"]) == seeded_console.seeded.states[OrderState.RETRY_WAIT]
    assert all(r["next_attempt_at"] for r in waiting["rows"])
    order = httpx.get(
        f"{url}/api/orders/entry", params={"key": waiting["rows"][0]["order_key"]}, headers=headers
    ).json()
    assert order["state"] == "retry_wait"
    assert order["payload_preview"]["payload"] is not None
    bad = httpx.get(f"{url}/api/orders?state=nonsense", headers=headers)
    assert bad.status_code == 400


def test_read_only_user_may_not_act(seeded_console: SeededConsole) -> None:
    """A read-only user's action is 403 and changes nothing."""
    response = httpx.post(f"{seeded_console.url}/api/fleet/pause", headers=bearer(READER_TOKEN))
    assert response.status_code == 403
    assert Breaker(seeded_console.client, seeded_console.keys, probe_s=1).state().state == "closed"


def test_csrf_guards_cookie_sessions(seeded_console: SeededConsole) -> None:
    """With the session cookie, an action without the CSRF value or with a wrong one is 403;
    with the page's value it is done and audited under the user's name. A Bearer request
    needs no CSRF value."""
    client, csrf = logged_in(seeded_console, OPERATOR_TOKEN)
    breaker = Breaker(seeded_console.client, seeded_console.keys, probe_s=1)
    try:
        assert client.post("/api/fleet/pause").status_code == 403
        wrong = client.post("/api/fleet/pause", headers={"X-CSRF-Token": csrf + "x"})
        assert wrong.status_code == 403
        assert breaker.state().state == "closed"
        done = client.post("/api/fleet/pause", headers={"X-CSRF-Token": csrf}, json={})
        assert done.status_code == 200, done.text
        assert breaker.state().state == "paused"
    finally:
        client.close()
    records = AuditLog(seeded_console.client, seeded_console.keys).read(action="fleet_pause")
    assert records[0].actor == "alice"
    resumed = httpx.post(f"{seeded_console.url}/api/fleet/resume", headers=bearer(SINGLE_TOKEN))
    assert resumed.status_code == 200
    assert breaker.state().state == "closed"


def test_edit_and_replay_refuses_an_invalid_order(seeded_console: SeededConsole) -> None:
    """A corrected raw order that breaks the contract is answered 422 with a problem per
    field, and the dead letter stays dead."""
    key = seeded_console.seeded.dead_keys[1]
    url, headers = seeded_console.url, bearer(OPERATOR_TOKEN)
    entry = httpx.get(f"{url}/api/dead-letters/entry", params={"key": key}, headers=headers)
    raw = json.loads(entry.json()["edit_raw"])
    raw["lines"][0]["quantity"] = 0
    raw["currency"] = "pounds"
    answer = httpx.post(
        f"{url}/api/dead-letters/replay", json={"key": key, "raw": json.dumps(raw)}, headers=headers
    )
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p.startswith("lines[0].quantity") for p in problems), problems
    assert any(p.startswith("currency") for p in problems), problems
    after = httpx.get(f"{url}/api/dead-letters/entry", params={"key": key}, headers=headers)
    assert after.json()["status"] == "dead"


def test_discard_is_audited_under_the_console_user(seeded_console: SeededConsole) -> None:
    """Discarding a pending order from the console makes it dead (discarded) and the audit
    log names the console user; discarding an order dead for another reason is refused (409)."""
    url, headers = seeded_console.url, bearer(OPERATOR_TOKEN)
    pending = httpx.get(f"{url}/api/backlog?state=pending&limit=1", headers=headers).json()
    key = pending["rows"][0]["order_key"]
    done = httpx.post(
        f"{url}/api/orders/discard", json={"key": key, "reason": "duplicate"}, headers=headers
    )
    assert done.status_code == 200, done.text
    order = httpx.get(f"{url}/api/orders/entry", params={"key": key}, headers=headers).json()
    assert order["state"] == "dead"
    assert order["dead_reason"] == "discarded"
    dead_key = seeded_console.seeded.dead_keys[2]
    refused = httpx.post(
        f"{url}/api/orders/discard", json={"key": dead_key, "reason": "no"}, headers=headers
    )
    assert refused.status_code == 409, refused.text
    records = AuditLog(seeded_console.client, seeded_console.keys).read(order_key=key)
    assert records and records[0].actor == "alice"


def test_bench_page_list_names_real_keys(seeded_console: SeededConsole) -> None:
    """`/api/pages` lists every page and twin with a real order and dead-letter key, and each
    answers 200."""
    headers = bearer(READER_TOKEN)
    paths = httpx.get(f"{seeded_console.url}/api/pages", headers=headers).json()["bench"]
    assert any(p.startswith("/api/orders/entry?key=") for p in paths)
    assert any(p.startswith("/dead-letters/entry?key=") for p in paths)
    with httpx.Client(base_url=seeded_console.url, headers=headers, timeout=10.0) as client:
        statuses = {p: client.get(p).status_code for p in paths}
    assert set(statuses.values()) == {200}, statuses


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "JETTI_RELAY_CONSOLE_TOKEN"),
        ({"JETTI_RELAY_CONSOLE_USERS": "ann:admin:tok"}, "unknown role"),
        ({"JETTI_RELAY_CONSOLE_USERS": "ann-without-token"}, "entry 1 is not name:role:token"),
    ],
)
def test_console_refuses_to_start_without_valid_users(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token, an unknown role or a malformed entry: exit 2 with one line naming it (and
    never the token)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["console", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "tok" not in result.output.replace("token", "")


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "/\t/evil.example", "x"],
)
def test_login_never_redirects_off_the_console(seeded_console: SeededConsole, target: str) -> None:
    """The login form's `next` only ever leads to a path of the console: an absolute URL, a
    scheme-relative one, a backslash (which browsers read as a slash) or a control character
    send the user to the overview instead."""
    response = httpx.post(
        f"{seeded_console.url}/login", data={"token": OPERATOR_TOKEN, "next": target}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    kept = httpx.post(
        f"{seeded_console.url}/login", data={"token": OPERATOR_TOKEN, "next": "/orders?state=dead"}
    )
    assert kept.headers["location"] == "/orders?state=dead"


def test_a_dead_letter_search_by_error_text_reports_what_it_examined(
    seeded_console: SeededConsole,
) -> None:
    """A filter only the entries can answer says how many index members it examined and, when
    the page's bound (ops/console/pages.py DEAD_SCAN_LIMIT, 1,000; the bound itself is tested
    on the store) did not stop it, that there is nothing older to search."""
    doc = httpx.get(
        f"{seeded_console.url}/api/dead-letters",
        params={"error": "no such text anywhere"},
        headers=bearer(READER_TOKEN),
    ).json()
    assert doc["rows"] == []
    assert (doc["examined"], doc["older_until"]) == (doc["total"], None)
