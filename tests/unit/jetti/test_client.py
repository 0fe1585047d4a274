"""The Jetti client over httpx.MockTransport: requests in both modes and one class per answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from worker.core.errors import (
    ConfigurationError,
    JettiRelayError,
    JettiUnavailable,
    OutcomeUnknown,
    RateLimited,
    Rejected,
)
from worker.core.limits import DEFAULT_RETRY_AFTER_MAX_S
from worker.jetti.client import (
    MAX_EXCERPT_CHARS,
    JettiClient,
    parse_retry_after,
    retry_after_s,
)
from worker.settings import Settings
from worker.wiring import build_http_client, build_jetti_client

HASH = "hash-s3cret-value"
TOKEN = "token-s3cret-value"
ASYNC_URL = "https://inbound.example/webhooks/custom-channels/manual-sale.json"
API_URL = "https://api.example"
CHANNEL_ID = 77
BODY = b'{"externalId": "A-1"}'

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, mode: str = "async") -> JettiClient:
    settings = Settings(
        jetti_mode=mode,
        jetti_async_url=ASYNC_URL,
        jetti_api_url=API_URL,
        channel_id=CHANNEL_ID,
        webhook_hash=HASH,
        api_token=TOKEN,
    )
    return build_jetti_client(settings, httpx.Client(transport=httpx.MockTransport(handler)))


def answer(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> Handler:
    return lambda request: httpx.Response(status, content=body, headers=headers)


def fail_with(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(f"boom with {HASH} and {TOKEN}", request=request)

    return handler


def test_async_mode_posts_to_the_webhook_with_the_hash_header() -> None:
    """Async mode POSTs the body as JSON to the async URL with `jetti-webhook-hash`."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    result = make_client(handler).submit(BODY)
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", ASYNC_URL)
    assert request.headers["jetti-webhook-hash"] == HASH
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.content == BODY
    assert (result.status, result.sale_id) == (200, None)


def test_sync_mode_posts_to_the_channel_with_a_bearer_token_and_reads_the_sale_id() -> None:
    """Sync mode POSTs to /api/channels/{id}/manual-sale.json with a bearer token; sale_id = id."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 4321, "externalId": "A-1"})

    result = make_client(handler, mode="sync").submit(BODY)
    (request,) = seen
    assert str(request.url) == f"{API_URL}/api/channels/{CHANNEL_ID}/manual-sale.json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert "jetti-webhook-hash" not in request.headers
    assert (result.status, result.sale_id) == (201, 4321)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": "x"}', b'{"id": true}', b"{}"])
def test_sync_sale_id_is_none_when_the_answer_has_no_integer_id(body: bytes) -> None:
    """A 2xx without an integer `id` still succeeds, with sale_id None."""
    result = make_client(answer(200, body), mode="sync").submit(BODY)
    assert (result.status, result.sale_id) == (200, None)


@pytest.mark.parametrize(
    ("exc_type", "expected"),
    [
        (httpx.ConnectError, JettiUnavailable),
        (httpx.ConnectTimeout, JettiUnavailable),
        (httpx.PoolTimeout, JettiUnavailable),
        (httpx.ReadTimeout, OutcomeUnknown),
        (httpx.WriteTimeout, OutcomeUnknown),
        (httpx.RemoteProtocolError, OutcomeUnknown),
        (httpx.ReadError, OutcomeUnknown),
    ],
)
def test_transport_errors_split_on_whether_the_request_was_sent(
    exc_type: type[httpx.TransportError], expected: type[JettiRelayError]
) -> None:
    """Not sent -> JettiUnavailable(None); sent without answer -> OutcomeUnknown; both chained."""
    with pytest.raises(expected) as info:
        make_client(fail_with(exc_type)).submit(BODY)
    assert isinstance(info.value.__cause__, exc_type)
    if isinstance(info.value, JettiUnavailable):
        assert info.value.status is None
    assert HASH not in str(info.value) and TOKEN not in str(info.value)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_body_that_cannot_be_decoded_is_an_unknown_outcome(mode: str) -> None:
    """A 200 whose Content-Encoding lies (a proxy or WAF mangled it) raises OutcomeUnknown, not
    httpx.DecodingError, so no httpx frame holding the Authorization header reaches a log."""
    garbled = answer(200, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(OutcomeUnknown) as info:
        make_client(garbled, mode).submit(BODY)
    assert isinstance(info.value.__cause__, httpx.DecodingError)
    assert HASH not in str(info.value) and TOKEN not in str(info.value)


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
def test_retryable_statuses_raise_jetti_unavailable(status: int) -> None:
    """408, 409 and 5xx raise JettiUnavailable carrying the status, chained to httpx."""
    with pytest.raises(JettiUnavailable) as info:
        make_client(answer(status)).submit(BODY)
    assert info.value.status == status
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        ("async", 401),
        ("async", 403),
        ("sync", 401),
        ("sync", 403),
        ("sync", 404),
        ("async", 404),
        ("async", 405),
        ("async", 410),
    ],
)
def test_credential_and_channel_faults_raise_configuration_error(mode: str, status: int) -> None:
    """401/403 in either mode, 404 in sync mode (unknown channel), and 404/405/410 in async
    mode (reliability #10: a wrong URL, not one order's fault) are fleet configuration faults."""
    with pytest.raises(ConfigurationError) as info:
        make_client(answer(status, f"bad {HASH} {TOKEN}".encode()), mode=mode).submit(BODY)
    assert info.value.status == status
    assert HASH not in str(info.value) and TOKEN not in str(info.value)
    assert HASH not in info.value.detail and TOKEN not in info.value.detail


@pytest.mark.parametrize(("mode", "status"), [("async", 400), ("async", 422), ("sync", 422)])
def test_other_4xx_raise_rejected_with_a_masked_excerpt(mode: str, status: int) -> None:
    """Other 4xx raise Rejected with the body excerpt, hash and token masked as ***."""
    body = json.dumps({"error": f"bad hash {HASH} token {TOKEN}"}).encode()
    with pytest.raises(Rejected) as info:
        make_client(answer(status, body), mode=mode).submit(BODY)
    assert info.value.status == status
    assert "bad hash *** token ***" in info.value.excerpt
    assert HASH not in str(info.value) and TOKEN not in str(info.value)


def test_rejected_excerpt_is_at_most_500_chars() -> None:
    """A long 4xx body is cut to MAX_EXCERPT_CHARS."""
    with pytest.raises(Rejected) as info:
        make_client(answer(422, b"x" * 5000)).submit(BODY)
    assert len(info.value.excerpt) == MAX_EXCERPT_CHARS == 500


def test_429_with_retry_after_seconds() -> None:
    """A 429 with `Retry-After: 7` raises RateLimited(7.0, status=429)."""
    with pytest.raises(RateLimited) as info:
        make_client(answer(429, headers={"Retry-After": "7"})).submit(BODY)
    assert (info.value.retry_after_s, info.value.status) == (7.0, 429)


def test_429_with_retry_after_http_date() -> None:
    """A 429 with an HTTP-date Retry-After waits until that date."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    with pytest.raises(RateLimited) as info:
        make_client(
            answer(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
        ).submit(BODY)
    assert info.value.retry_after_s is not None
    assert 100.0 <= info.value.retry_after_s <= 121.0


def test_429_without_retry_after() -> None:
    """A 429 without Retry-After leaves retry_after_s None (the policy picks the default)."""
    with pytest.raises(RateLimited) as info:
        make_client(answer(429)).submit(BODY)
    assert info.value.retry_after_s is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", None),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    """Retry-After: seconds, HTTP-dates (a past date gives 0); garbage and a negative number
    give None (the caller's default pause)."""
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_s(value, now=now) == expected


@pytest.mark.parametrize(
    ("value", "seconds", "note"),
    [
        ("inf", None, "ignored"),
        ("Infinity", None, "ignored"),
        ("-inf", None, "ignored"),
        ("nan", None, "ignored"),
        ("NaN", None, "ignored"),
        ("-1", None, "ignored"),
        ("1e400", None, "ignored"),
        ("soon", None, "ignored"),
        ("", None, "ignored"),
        ("\x00\xff", None, "ignored"),
        ("Wed, 99 Foo 2015 07:28:10 GMT", None, "ignored"),
        ("31536000", 3600.0, "clamped"),
        ("1e9", 3600.0, "clamped"),
        ("99999999999999999999999", 3600.0, "clamped"),
        ("Fri, 01 Jan 2100 00:00:00 GMT", 3600.0, "clamped"),
        ("3600", 3600.0, None),
        ("12", 12.0, None),
    ],
)
def test_retry_after_extremes_are_bounded_or_ignored(
    value: str, seconds: float | None, note: str | None
) -> None:
    """reliability #8: a wait above the bound (a year, 1e9, a date in 2100) is clamped to
    RETRY_AFTER_MAX_S (default 1 h); inf, NaN, negatives and garbage are ignored (None: the
    default pause), and both say so in `note` so the caller can count them."""
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    parsed = parse_retry_after(value, max_s=DEFAULT_RETRY_AFTER_MAX_S, now=now)
    assert (parsed.seconds, parsed.note) == (seconds, note)


@pytest.mark.parametrize(
    ("header", "seconds", "note"),
    [
        ("inf", None, "ignored"),
        ("86400", 60.0, "clamped"),
        ("nan", None, "ignored"),
        ("30", 30.0, None),
    ],
)
def test_a_429s_retry_after_is_bounded_by_the_setting(
    header: str, seconds: float | None, note: str | None
) -> None:
    """The client applies JETTI_RELAY_RETRY_AFTER_MAX_S and hands the note on RateLimited."""
    settings = Settings(jetti_async_url=ASYNC_URL, webhook_hash=HASH, retry_after_max_s=60)
    client = build_jetti_client(
        settings,
        httpx.Client(transport=httpx.MockTransport(answer(429, headers={"Retry-After": header}))),
    )
    with pytest.raises(RateLimited) as info:
        client.submit(BODY)
    assert (info.value.retry_after_s, info.value.retry_after_note) == (seconds, note)


@pytest.mark.parametrize("value", ["0", "-5", "inf", "nan", "garbage"])
def test_retry_after_max_setting_must_be_a_positive_finite_number(value: str) -> None:
    """A bound of 0, a negative, inf or NaN is refused at start-up."""
    with pytest.raises(ValueError):
        Settings(retry_after_max_s=value)  # type: ignore[arg-type]


def test_build_http_client_applies_timeouts_and_pool_limits() -> None:
    """The HTTP client carries each configured timeout."""
    settings = Settings(
        http_connect_timeout_s=1.0,
        http_read_timeout_s=2.0,
        http_write_timeout_s=3.0,
        http_pool_timeout_s=4.0,
        submit_concurrency=3,
    )
    with build_http_client(settings) as http:
        assert http.timeout == httpx.Timeout(connect=1.0, read=2.0, write=3.0, pool=4.0)
