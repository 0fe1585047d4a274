"""Logging configuration: one format for structlog and stdlib records, secrets and PII redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from worker import logconfig
from worker.settings import get_settings

HASH = "hash-value-never-logged"
TOKEN = "token-value-never-logged"
EMAIL = "jane.doe@example.com"


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Configure logging as JSON with both secrets set (as a process passes
    `settings.secret_values`); yield what the root handler writes."""
    monkeypatch.setenv("JETTI_RELAY_WEBHOOK_HASH", HASH)
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", TOKEN)
    get_settings.cache_clear()
    monkeypatch.setattr(logconfig, "_configured", None)
    logconfig.configure_logging("json", "INFO", secrets=get_settings().secret_values)
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logconfig._RelayHandler)]
    out = io.StringIO()
    handler.setStream(out)
    yield out
    logconfig.reset_logging()
    get_settings.cache_clear()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_secret_and_email_never_reach_the_output(stream: io.StringIO) -> None:
    """A structlog event carrying a secret and an email renders with both masked."""
    structlog.get_logger("t").info(
        "order_failed",
        detail=f"hash {HASH} token {TOKEN}",
        email=EMAIL,
        note=f"contact {EMAIL}",
    )
    text = stream.getvalue()
    assert HASH not in text and TOKEN not in text and EMAIL not in text
    (event,) = lines(stream)
    assert event["event"] == "order_failed"
    assert event["detail"] == "hash *** token ***"
    assert event["email"] == "***"
    assert event["level"] == "info" and "timestamp" in event


def test_personal_keys_are_masked_in_nested_dicts(stream: io.StringIO) -> None:
    """Name, phone and address keys (any case, nested) are replaced with ***."""
    structlog.get_logger("t").info(
        "order_seen",
        order_key="A-1",
        customer_info={
            "firstName": "Jane",
            "LAST_NAME": "Doe",
            "Phone": "+31 6 1234",
            "shipping": {
                "line1": "Main St 1",
                "Line2": "Apt 2",
                "zip": "1011",
                "city": "Amsterdam",
            },
        },
    )
    (event,) = lines(stream)
    assert event["order_key"] == "A-1"
    assert event["customer_info"] == {
        "firstName": "***",
        "LAST_NAME": "***",
        "Phone": "***",
        "shipping": {"line1": "***", "Line2": "***", "zip": "***", "city": "***"},
    }


def test_stdlib_records_share_the_format_and_the_redaction(stream: io.StringIO) -> None:
    """A plain stdlib record (as Celery logs) comes out as the same JSON, secrets masked."""
    logging.getLogger("celery.worker").warning("token %s for %s", TOKEN, EMAIL)
    (event,) = lines(stream)
    assert event["event"] == "token *** for ***"
    assert event["level"] == "warning" and event["logger"] == "celery.worker"


def test_secret_in_a_traceback_is_masked(stream: io.StringIO) -> None:
    """Exception text is rendered before redaction, so a secret inside it is masked too."""
    try:
        raise RuntimeError(f"leaked {HASH}")
    except RuntimeError:
        structlog.get_logger("t").exception("crashed")
    assert HASH not in stream.getvalue()
    assert "leaked ***" in stream.getvalue()


def test_configure_is_idempotent(stream: io.StringIO) -> None:
    """Calling configure_logging again installs no second handler."""
    logconfig.configure_logging("json", "INFO", secrets=())
    logconfig.configure_logging("json", "INFO", secrets=())
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logconfig._RelayHandler)]
    assert len(ours) == 1


def test_console_format_is_redacted_too(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console renderer gets the same redaction."""
    logconfig.configure_logging("console", "INFO", secrets=())
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logconfig._RelayHandler)]
    out = io.StringIO()
    handler.setStream(out)
    structlog.get_logger("t").info("hello", email=EMAIL, detail=TOKEN)
    text = out.getvalue()
    assert "hello" in text
    assert EMAIL not in text and TOKEN not in text
