"""Which brokers the settings accept, and the timeout each one is checked against."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.broker import BrokerKind, BrokerOptions, broker_kind
from worker.settings import Settings, check_timeouts, describe_validation_error

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache.example:6380/0", "redis"),
        ("sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379", "sentinel"),
        (AMQP, "amqp"),
        ("pyamqp://guest@localhost//", "amqp"),
    ],
)
def test_a_supported_broker_url_is_accepted_with_its_kind(url: str, kind: str) -> None:
    """Every scheme the relay runs on passes the settings and names its broker kind."""
    assert Settings(_env_file=None, broker_url=url).broker_url == url
    assert broker_kind(url) == kind


@pytest.mark.parametrize("url", ["sqs://key:secret@", "memory://", "localhost:5672"])
def test_an_unsupported_broker_scheme_is_refused_when_settings_load(url: str) -> None:
    """A scheme kombu would take but the relay does not support fails at settings time, with
    the schemes that work; the URL itself (it may carry a password) is not repeated."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, broker_url=url)
    (message,) = describe_validation_error(caught.value)
    assert message.startswith("JETTI_RELAY_BROKER_URL: ")
    assert "unsupported broker scheme" in message
    assert "amqp://" in message
    assert "secret" not in message


def test_on_rabbitmq_the_hard_limit_must_stay_below_the_consumer_timeout() -> None:
    """On amqp the hard limit is checked against RabbitMQ's consumer_timeout, and the Redis
    visibility timeout (which nothing uses there) is not."""
    amqp = Settings(_env_file=None, broker_url=AMQP, broker_consumer_timeout_s=200)
    problems = check_timeouts(amqp.model_copy(update={"hard_time_limit_s": 250}), "prefork")
    assert any("BROKER_CONSUMER_TIMEOUT_S" in p for p in problems)
    ignored_visibility = amqp.model_copy(update={"visibility_timeout_s": 10})
    assert check_timeouts(ignored_visibility, "prefork") == []


def test_on_redis_the_consumer_timeout_is_not_checked() -> None:
    """A Redis broker is held to its visibility timeout only."""
    settings = Settings(_env_file=None, broker_consumer_timeout_s=1)
    assert check_timeouts(settings, "prefork") == []


def test_rabbitmq_options_declare_a_quorum_queue_and_confirm_publishes() -> None:
    """The amqp options: quorum queue with the delivery limit, publisher confirms, quorum QoS
    detection, and control/event exchanges of the deployment's own for a non-default queue."""
    options = BrokerOptions(kind="amqp", delivery_limit=7)
    assert options.queue_arguments() == {"x-queue-type": "quorum", "x-delivery-limit": 7}
    transport = options.transport_options(
        connect_timeout_s=2, socket_timeout_s=5, publish_only=True
    )
    assert transport["confirm_publish"]
    conf = options.celery_conf("jetti-relay.orders.shop2")
    assert conf["worker_detect_quorum_queues"] is True
    assert conf["control_exchange"] == "jetti-relay.orders.shop2.control"
    assert conf["event_exchange"] == "jetti-relay.orders.shop2.events"
    assert "control_exchange" not in options.celery_conf("jetti-relay.orders")
    assert BrokerOptions(kind="redis").celery_conf("jetti-relay.orders.shop2") == {}


@pytest.mark.parametrize("kind", ["redis", "sentinel"])
def test_a_redis_consumer_gives_up_on_a_silent_primary_within_the_socket_timeout(
    kind: BrokerKind,
) -> None:
    """Kombu reads the consumer's BRPOP in its event loop, where no socket timeout applies; its
    health check interval is what drops a BRPOP the server never answers (a frozen or cut-off
    primary after a failover). It follows the socket timeout instead of kombu's 25 s."""
    options = BrokerOptions(kind=kind)
    transport = options.transport_options(
        connect_timeout_s=2, socket_timeout_s=2.5, publish_only=False
    )
    assert transport["health_check_interval"] == 3
    assert transport["socket_timeout"] == 2.5


def test_a_rabbitmq_publisher_gives_up_reading_and_writing_after_the_socket_timeout() -> None:
    """A publish-only app's amqp sockets time out reads and writes at the socket timeout (a
    confirm that never comes raises); the worker's consuming app keeps blocking sockets, read
    by Celery's event loop, with the connect timeout only."""
    options = BrokerOptions(kind="amqp")
    publishing = options.transport_options(
        connect_timeout_s=2, socket_timeout_s=7, publish_only=True
    )
    assert (publishing["read_timeout"], publishing["write_timeout"]) == (7, 7)
    assert publishing["connect_timeout"] == 2
    consuming = options.transport_options(
        connect_timeout_s=2, socket_timeout_s=7, publish_only=False
    )
    assert "read_timeout" not in consuming
    assert "write_timeout" not in consuming
    assert consuming["connect_timeout"] == 2
