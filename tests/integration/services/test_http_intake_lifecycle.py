"""The HTTP intake's life: it refuses to start without a usable credential, stops cleanly on
SIGTERM, runs on a thread of a Python process, and one order sent with curl goes all the way
to the Jetti sandbox through a real worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.harness.ports import free_port
from producers.http import IntakeConfigError, start_http_intake
from tests.factories import raw_order
from tests.fixtures.cli import assert_one_clean_line, jetti_relay
from tests.fixtures.http_intake import TOKEN, IntakeFactory, curl
from tests.fixtures.pipeline import Harness, PipelineFactory
from tests.fixtures.sandbox import sent_body
from worker.core.exit_codes import ExitCode
from worker.core.states import OrderState
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_without_any_credential_http_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """`jetti-relay intake --http` with no token, HMAC secret or credentials file: exit 2
    (CONFIG) with one line naming the variables, before anything runs (the stream reader
    included: Redis is never reached)."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", "redis://127.0.0.1:1/0")

    result = jetti_relay("intake", "--http")

    assert_one_clean_line(result, ExitCode.CONFIG, "JETTI_RELAY_INTAKE_TOKEN")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_credentials_file_is_refused_naming_file_and_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An entry with an empty secret and two sources with overlapping id prefixes: exit 2, one
    line each, naming the file and the entry; no secret is printed."""
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nname = "a"\nid_prefix = "a-"\ntoken = "secret-of-a"\n'
        '[[source]]\nname = "b"\nid_prefix = "a-b"\ntoken = "secret-of-b"\n'
        '[[source]]\nname = "c"\nid_prefix = "c-"\nhmac_secret = ""\n'
    )
    monkeypatch.setenv("JETTI_RELAY_INTAKE_CREDENTIALS_FILE", str(sources))

    result = jetti_relay("intake", "--no-stream", "--http")

    assert_one_clean_line(result, ExitCode.CONFIG, str(sources))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "[[source]] #3 (c)" in lines[0] and "hmac_secret" in lines[0]
    assert "'a'" in lines[1] and "'b'" in lines[1] and "overlap" in lines[1]
    assert "secret-of" not in result.output


def test_sigterm_stops_it_cleanly(redis_url: str, start_http_intake: IntakeFactory) -> None:
    """SIGTERM: uvicorn lets requests finish, the writer drains, the process exits 0."""
    intake = start_http_intake(redis_url, JETTI_RELAY_INTAKE_TOKEN=TOKEN)

    assert intake.stop() == 0
    assert "http_intake_stopped" in [e["event"] for e in intake.events()]


def test_it_runs_on_a_thread_of_a_python_process(redis_url: str) -> None:
    """`start_http_intake` serves from a background thread (what a benchmark or an embedding
    process uses) until `stop()`, which returns once the server and the writer stopped."""
    settings = Settings(redis_url=redis_url, broker_url=redis_url, intake_token=TOKEN)
    running = start_http_intake(settings, port=free_port())
    try:
        answer = httpx.post(
            running.url + "/v1/orders",
            json=raw_order("t-1"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 202, answer.text
    finally:
        running.stop()
    assert not running.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/health")


def test_start_http_intake_refuses_without_credential(redis_url: str) -> None:
    """The Python entry point raises IntakeConfigError, the error the command turns into exit 2."""
    with pytest.raises(IntakeConfigError, match="needs a credential"):
        start_http_intake(Settings(redis_url=redis_url), port=free_port())


def test_an_order_sent_with_curl_reaches_the_sandbox(
    redis_url: str,
    harness: Harness,
    start_pipeline: PipelineFactory,
    start_http_intake: IntakeFactory,
    sandbox: Any,
) -> None:
    """curl -> HTTP intake -> ledger -> a real worker -> the Jetti sandbox: the sale is there
    under the order key the credential's query parameters made, and GET shows it submitted."""
    start_pipeline(concurrency=1)
    intake = start_http_intake(redis_url, JETTI_RELAY_INTAKE_TOKEN=TOKEN)
    auth = ("-H", f"Authorization: Bearer {TOKEN}")

    answer = curl(
        f"{intake.url}/v1/orders?id_prefix=web:&source=web",
        "-X",
        "POST",
        *auth,
        "-H",
        "Content-Type: application/json",
        data=json.dumps(raw_order("5001")).encode(),
    )

    assert answer.status == 202, answer.body
    harness.wait_states(["web:5001"], {OrderState.SUBMITTED})
    (sale,) = sandbox.history("web:5001")
    assert sent_body(sale)["externalId"] == "web:5001"
    status = curl(f"{intake.url}/v1/orders/web%3A5001", *auth).json()
    assert status["state"] == "submitted" and status["source"] == "web"
