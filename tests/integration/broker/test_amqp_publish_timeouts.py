"""A producer on RabbitMQ never waits on the broker longer than the configured timeouts.

Two stand-ins for a stuck RabbitMQ, both real TCP on loopback: a port whose connections the
kernel accepts and nobody answers (a broker that froze before the AMQP handshake), and a proxy
in front of the machine's RabbitMQ that stops forwarding on command (a connection that went
half-open after the handshake: a partition, a frozen broker host). Through either, a publish
must end with the producer's "broker unreachable" error within bounded time, not hang until
TCP keepalive gives up (2 h).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from producers import EnqueueInterrupted, connect, enqueue
from tests.factories import raw_order
from tests.fixtures.rabbitmq import AmqpBroker
from worker.settings import Settings

pytestmark = pytest.mark.integration

# A test that fails hangs until this bound, instead of forever. The timeouts below give up in
# about 6 s (a read timeout, then Celery's 3 publish retries, each a handshake that times out).
HANG_GUARD_S = 60.0
FAST_TIMEOUTS_S = 1.0


class FreezingProxy:
    """A TCP proxy to `upstream` that forwards both ways until `freeze()`; from then on it
    forwards nothing, keeps every connection open, and accepts new ones without forwarding
    them. `close()` closes everything (and so wakes a client still waiting)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self._frozen.is_set():
                continue
            upstream = socket.create_connection(self._upstream)
            self._sockets.append(upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self._frozen.is_set():
                # Swallowed: the connection stays open and silent until the test ends.
                self._closed.wait()
                return
            try:
                target.sendall(data)
            except OSError:
                return


@pytest.fixture
def rabbitmq_proxy(amqp_broker: AmqpBroker) -> Iterator[tuple[FreezingProxy, str]]:
    """A `FreezingProxy` in front of the test's RabbitMQ and the broker URL through it."""
    url = urlsplit(amqp_broker.url)
    proxy = FreezingProxy((url.hostname or "127.0.0.1", url.port or 5672))
    yield (
        proxy,
        url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{proxy.port}").geturl(),
    )
    proxy.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port whose connections the kernel accepts (backlog) and nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        yield int(sock.getsockname()[1])


def settings_for(redis_url: str, broker_url: str, key_prefix: str) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        broker_url=broker_url,
        key_prefix=key_prefix,
        redis_connect_timeout_s=FAST_TIMEOUTS_S,
        redis_socket_timeout_s=FAST_TIMEOUTS_S,
    )


def outcome_within(call: Callable[[], object], bound_s: float) -> BaseException | None:
    """What `call` raised (None if it returned), failing the test if it has not ended after
    `bound_s`: a hang is reported as one, not as a wrong result."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test, which asserts on it
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound_s)
    assert not thread.is_alive(), f"still waiting on the broker after {bound_s:g} s"
    return raised[0] if raised else None


def test_a_publish_whose_confirm_never_comes_fails_as_broker_unreachable(
    redis_url: str, amqp_broker: AmqpBroker, rabbitmq_proxy: tuple[FreezingProxy, str]
) -> None:
    """The producers library (`connect`, `enqueue`) on a RabbitMQ connection that goes silent
    after it was established: the publish waiting for its confirm gives up after the socket
    timeout and `enqueue` raises `EnqueueInterrupted` (unreachable) at the chunk reached.

    Without py-amqp's read timeout the confirm wait blocks on the socket with no bound (the
    handshake has the connect timeout, a read after it nothing) and this test fails at its
    hang guard: checked by removing `read_timeout` from `BrokerOptions.transport_options`."""
    proxy, url = rabbitmq_proxy
    relay = connect(settings_for(redis_url, url, amqp_broker.key_prefix))
    try:
        enqueue([raw_order("before")], **relay.kwargs())
        proxy.freeze()
        raised = outcome_within(
            lambda: enqueue([raw_order("after")], **relay.kwargs()), HANG_GUARD_S
        )
    finally:
        relay.close()
    assert isinstance(raised, EnqueueInterrupted), raised
    assert raised.unreachable
    assert raised.position == 0


def test_a_publisher_idle_beyond_the_read_timeout_still_publishes(
    redis_url: str, amqp_broker: AmqpBroker
) -> None:
    """The read timeout bounds a wait for the broker, not a connection's life: a publisher on
    the real RabbitMQ that stayed idle longer than it publishes again on the same connection,
    and every message arrives in the queue."""
    relay = connect(settings_for(redis_url, amqp_broker.url, amqp_broker.key_prefix))
    try:
        # The app's own configuration: what the publisher runs with, not what was asked for.
        options = relay.publisher._app.conf.broker_transport_options
        assert options["read_timeout"] == options["write_timeout"] == FAST_TIMEOUTS_S
        assert relay.publisher.publish(["idle-1"]) == 1
        time.sleep(3 * FAST_TIMEOUTS_S)
        assert relay.publisher.publish(["idle-2", "idle-3"], batch_size=1) == 2
        assert relay.publisher.queue_length() == 3
    finally:
        relay.close()


def test_enqueue_exits_4_on_a_rabbitmq_that_never_answers(
    redis_url: str, amqp_broker: AmqpBroker, silent_port: int
) -> None:
    """`jetti-relay enqueue` with the ledger up and a broker that accepts connections but never
    speaks: exit 4 (unreachable) at the first line, within bounded time. The handshake is
    bounded by the connect timeout (py-amqp drains it with that timeout), so this held before
    the read timeout too: it guards the path from the command to its exit code."""
    env = {
        **os.environ,
        "JETTI_RELAY_REDIS_URL": redis_url,
        "JETTI_RELAY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{silent_port}//",
        "JETTI_RELAY_KEY_PREFIX": amqp_broker.key_prefix,
        "JETTI_RELAY_REDIS_CONNECT_TIMEOUT_S": str(FAST_TIMEOUTS_S),
        "JETTI_RELAY_REDIS_SOCKET_TIMEOUT_S": str(FAST_TIMEOUTS_S),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "enqueue", "-"],
        input=json.dumps(raw_order("A")) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert done.returncode == 4, done.stderr
