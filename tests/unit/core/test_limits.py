"""Producer, settings and worker agree on the limits of worker.core.limits (reliability #9).

A key or a batch the producer accepts but the worker refuses used to get the whole message
dead-lettered as `message:<digest>`, its orders left PENDING forever.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from ops.commands.enqueue import enqueue as enqueue_command
from ops.commands.preview import preview
from producers.enqueue import key_limits_problem
from worker.celery_app import create_app
from worker.core.limits import MAX_ID_PREFIX_CHARS, MAX_KEYS_PER_MESSAGE, MAX_ORDER_KEY_CHARS
from worker.publisher import Publisher
from worker.settings import Settings
from worker.tasks import parse_message


def message(keys: list[object]) -> dict[str, object]:
    return {"v": 1, "keys": keys}


def test_a_bad_key_is_dropped_alone() -> None:
    """An over-long or non-string entry is dropped; the message's other keys are kept."""
    long_key = "k" * (MAX_ORDER_KEY_CHARS + 1)
    parsed = parse_message(message(["a", long_key, "b", 7, ""]))
    assert parsed.keys == ["a", "b"]
    assert [index for index, _ in parsed.dropped] == [1, 3, 4]
    assert str(MAX_ORDER_KEY_CHARS) in parsed.dropped[0][1]


def test_a_key_of_exactly_the_limit_is_kept() -> None:
    key = "k" * MAX_ORDER_KEY_CHARS
    assert parse_message(message([key])).keys == [key]


def test_a_message_without_any_good_key_is_refused_whole() -> None:
    with pytest.raises(ValueError, match="no valid order key"):
        parse_message(message(["k" * (MAX_ORDER_KEY_CHARS + 1)]))


def test_too_many_keys_is_refused_whole() -> None:
    parse_message(message([f"k{i}" for i in range(MAX_KEYS_PER_MESSAGE)]))
    with pytest.raises(ValueError, match=str(MAX_KEYS_PER_MESSAGE)):
        parse_message(message([f"k{i}" for i in range(MAX_KEYS_PER_MESSAGE + 1)]))


def test_batch_size_above_the_message_limit_is_a_settings_error() -> None:
    """JETTI_RELAY_BATCH_SIZE above MAX_KEYS_PER_MESSAGE is refused, naming the variable."""
    assert Settings(batch_size=MAX_KEYS_PER_MESSAGE).batch_size == MAX_KEYS_PER_MESSAGE
    with pytest.raises(ValidationError, match="JETTI_RELAY_BATCH_SIZE is 1001"):
        Settings(batch_size=MAX_KEYS_PER_MESSAGE + 1)


def test_batch_size_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETTI_RELAY_BATCH_SIZE", "2000")
    with pytest.raises(ValidationError, match=f"at most {MAX_KEYS_PER_MESSAGE}"):
        Settings()


def test_publisher_refuses_a_batch_the_worker_would_refuse() -> None:
    app = create_app(Settings())
    with pytest.raises(ValueError, match=str(MAX_KEYS_PER_MESSAGE)):
        Publisher(app, batch_size=MAX_KEYS_PER_MESSAGE + 1)


def test_order_key_limits_name_the_limit() -> None:
    """The producer's per-order check: key and prefix length, with the limit in the message."""
    assert key_limits_problem("x" * MAX_ORDER_KEY_CHARS) is None
    problem = key_limits_problem("x" * (MAX_ORDER_KEY_CHARS + 1))
    assert problem is not None and f"at most {MAX_ORDER_KEY_CHARS}" in problem.message
    prefix = "p" * (MAX_ID_PREFIX_CHARS + 1)
    problem = key_limits_problem(prefix + "1", id_prefix=prefix)
    assert problem is not None and f"at most {MAX_ID_PREFIX_CHARS}" in problem.message
    assert key_limits_problem("\ud800") is not None
    assert parse_message(message(["\ud800", "ok"])).keys == ["ok"]
    assert key_limits_problem("订单:1 {x}") is None


def test_cli_refuses_a_long_id_prefix_before_reading_anything() -> None:
    """`enqueue --id-prefix` longer than the limit is a usage error (exit 2) naming the limit."""
    result = CliRunner().invoke(
        enqueue_command,
        ["-", "--id-prefix", "p" * (MAX_ID_PREFIX_CHARS + 1), "--redis-url", "redis://127.0.0.1:1"],
        input="{}",
    )
    assert result.exit_code == 2
    assert f"at most {MAX_ID_PREFIX_CHARS}" in result.output


def test_cli_refuses_a_batch_size_above_the_message_limit() -> None:
    result = CliRunner().invoke(
        enqueue_command,
        ["-", "--batch-size", str(MAX_KEYS_PER_MESSAGE + 1), "--redis-url", "redis://127.0.0.1:1"],
        input="{}",
    )
    assert result.exit_code == 2


def test_preview_refuses_the_id_prefix_enqueue_refuses() -> None:
    """`preview --id-prefix` shows what the worker would send: the same bound as `enqueue`."""
    result = CliRunner().invoke(
        preview, ["-", "--id-prefix", "p" * (MAX_ID_PREFIX_CHARS + 1)], input="{}"
    )
    assert result.exit_code == 2
    assert f"at most {MAX_ID_PREFIX_CHARS}" in result.output
