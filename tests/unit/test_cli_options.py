"""Review fixes that need no service: cancellation detection, the corrected order's id, the
`--redis-url` check and `preview --id-prefix`."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import cast

import click
import pytest
from click.testing import CliRunner

from ops.commands.preview import preview
from ops.options import redis_url_option
from worker.core.records import OrderEntry
from worker.pipeline.canceller import cancellation
from worker.pipeline.replayer import ReplayInputError, parse_corrected_raw

LINES = b'"lines": [{"sku": "A", "name": "Mug", "quantity": 1, "unit_price": "1"}]'


def _entry(raw: bytes) -> OrderEntry:
    return cast(OrderEntry, SimpleNamespace(raw=raw))


@pytest.mark.parametrize(
    "spelling",
    [
        b'"cancelled_at":"2026-11-27T10:00:00Z"',
        b'"cancelled_at" : "2026-11-27T10:00:00Z"',
        b'"cancelled_at"\n  :\t"2026-11-27T10:00:00Z"',
    ],
)
def test_a_cancellation_is_seen_whatever_the_spacing(spelling: bytes) -> None:
    """Producers store the original bytes: a pretty-printed `cancelled_at` is still a cancel."""
    order = cancellation(_entry(b'{"id": "o-1", ' + spelling + b", " + LINES + b"}"))
    assert order is not None and order.cancelled_at is not None


def test_a_cancelled_at_in_text_or_null_is_not_a_cancellation() -> None:
    assert (
        cancellation(_entry(b'{"id": "o-1", "notes": "cancelled_at: no", ' + LINES + b"}")) is None
    )
    assert cancellation(_entry(b'{"id": "o-1", "cancelled_at" : null, ' + LINES + b"}")) is None


def _raw(order_id: str) -> bytes:
    return b'{"id": "' + order_id.encode() + b'", ' + LINES + b"}"


def test_a_corrected_order_must_carry_the_stored_orders_id() -> None:
    """Key `shop-a:1001` is order 1001: a correction with id `1` (a suffix of the key) or
    `a:1001` is refused; with the stored id 1001 it is taken."""
    stored = _raw("1001")
    for wrong in ("1", "01", "a:1001"):
        with pytest.raises(ReplayInputError, match="is not the id of order"):
            parse_corrected_raw(
                _raw(wrong), order_key="shop-a:1001", where="fix.json", stored_raw=stored
            )
    assert parse_corrected_raw(
        _raw("1001"), order_key="shop-a:1001", where="fix.json", stored_raw=stored
    ).body


def test_without_a_stored_order_the_id_must_follow_a_prefix_separator() -> None:
    with pytest.raises(ReplayInputError):
        parse_corrected_raw(_raw("1"), order_key="shop-a:1001", where="fix.json")
    assert parse_corrected_raw(_raw("1001"), order_key="shop-a:1001", where="fix.json").body
    assert parse_corrected_raw(_raw("1001"), order_key="1001", where="fix.json").body


@click.command()
@redis_url_option
def _probe(redis_url: str | None) -> None:
    click.echo(f"url {redis_url}")


@pytest.mark.parametrize("url", ["foo", "http://127.0.0.1:7000/0", "redis://h:notaport/0"])
def test_a_malformed_redis_url_is_a_usage_error(url: str) -> None:
    result = CliRunner().invoke(_probe, ["--redis-url", url])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--redis-url" in result.stderr and "not a Redis URL" in result.stderr
    assert "Traceback" not in result.output


def test_a_good_redis_url_passes() -> None:
    result = CliRunner().invoke(_probe, ["--redis-url", "redis://127.0.0.1:7000/2"])
    assert result.exit_code == 0 and "url redis://127.0.0.1:7000/2" in result.stdout


def test_preview_id_prefix_gives_the_externalid_the_worker_sends() -> None:
    """The worker sends the order key (prefix + id) as externalId; preview shows the same."""
    order = _raw("1001").decode()
    result = CliRunner().invoke(preview, ["-", "--id-prefix", "shop-a:"], input=order)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["externalId"] == "shop-a:1001"
    plain = CliRunner().invoke(preview, ["-"], input=order)
    assert json.loads(plain.stdout.splitlines()[0])["externalId"] == "1001"
