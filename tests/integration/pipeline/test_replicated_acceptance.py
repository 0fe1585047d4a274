"""Replicated acceptance (issue 15, item 2): with JETTI_RELAY_MIN_REPLICAS_ACK N > 0 an order is
acknowledged upstream only once the primary and N replicas hold it.

Against a real primary and replica (one group for the module): the replica is frozen with
SIGSTOP, so WAIT times out while the primary keeps accepting writes. The library then raises
`ReplicationUnconfirmed` with the order already in the primary's ledger; the CLI exits 6; the
stream intake keeps the entry pending. Sending again after the replica is back is idempotent and
confirmed. A primary under `min-replicas-to-write` refuses instead (NOREPLICAS), and says so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from ops.commands.enqueue import EXIT_REDIS_REFUSED, EXIT_UNREPLICATED
from ops.commands.enqueue import enqueue as enqueue_command
from producers import EnqueueInterrupted, EnqueueSummary, ReplicationUnconfirmed, enqueue
from tests.factories import minimal_order, raw_order
from tests.fixtures.intake import add_entry, consumer, pending
from tests.fixtures.pipeline import wait_until
from tests.fixtures.replication import Replicated
from worker.celery_app import create_app
from worker.core.keys import Keys
from worker.publisher import Publisher
from worker.settings import Settings, get_settings
from worker.store.ledger import Ledger
from worker.store.replication import ReplicaFence

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # after the orders' updated_at
KEYS = Keys()
# Short: every unconfirmed case waits this long once.
TIMEOUT_S = 0.2


@pytest.fixture
def publisher(replicated: Replicated) -> Publisher:
    """The real publisher, its broker the primary itself (Redis as broker, the default)."""
    return Publisher(create_app(Settings(redis_url=replicated.url)), batch_size=10)


def send(
    replicated: Replicated, publisher: Publisher, *order_ids: str, **kwargs: Any
) -> EnqueueSummary:
    """`enqueue` the minimal orders `order_ids` on the primary, waiting for one replica."""
    options: dict[str, Any] = {
        "client": replicated.client,
        "min_replicas_ack": 1,
        "min_replicas_ack_timeout_s": TIMEOUT_S,
        **kwargs,
    }
    return enqueue(
        [minimal_order(i) for i in order_ids], publisher=publisher, keys=KEYS, now=T0, **options
    )


def on_replica(replicated: Replicated, order_key: str) -> bool:
    client = replicated.replica_client()
    try:
        return bool(client.exists(KEYS.order(order_key)))
    finally:
        client.close()


def wait_calls(client: redis.Redis[bytes]) -> int:
    """WAIT commands the server ran since its statistics were reset."""
    stats = client.info("commandstats").get("cmdstat_wait")
    return int(stats["calls"]) if stats else 0


def test_an_order_the_replica_holds_is_accepted(
    replicated: Replicated, publisher: Publisher
) -> None:
    """With the replica up, enqueue returns normally, and the replica holds the order."""
    summary = send(replicated, publisher, "r-1")

    assert summary.accepted == 1
    assert on_replica(replicated, "r-1")


def test_unconfirmed_replication_says_send_again_and_the_resend_is_confirmed(
    replicated: Replicated, publisher: Publisher
) -> None:
    """Replica frozen: ReplicationUnconfirmed (an EnqueueInterrupted) with 0 of 1 replicas, at
    position 0, though the primary's ledger holds the order. Replica back: sending the same
    order again finds it `unchanged` and is confirmed."""
    with replicated.replica_stopped():
        with pytest.raises(ReplicationUnconfirmed) as stopped:
            send(replicated, publisher, "r-2")
        assert Ledger(replicated.client, KEYS).get("r-2") is not None

    error = stopped.value
    assert isinstance(error, EnqueueInterrupted)
    assert (error.acked, error.wanted, error.position, error.unreachable) == (0, 1, 0, False)
    assert error.summary.accepted == 1
    assert "recorded on the primary, replication unconfirmed (0 of 1" in str(error)
    assert "sending again is safe" in str(error)

    again = send(replicated, publisher, "r-2")

    assert again.unchanged == 1
    assert on_replica(replicated, "r-2")


def test_a_resend_by_another_producer_is_not_confirmed_either(
    replicated: Replicated, publisher: Publisher
) -> None:
    """A second producer (its own connection, open from before) resends an order the first
    one wrote while the replica was frozen: its copy is `unchanged`, and it is not told the
    order is safe either, since the replica still lacks the first copy."""
    other: redis.Redis[bytes] = redis.Redis(port=replicated.primary.port)
    other.ping()  # its connection predates the first producer's write
    replicated.wait_acknowledged()
    try:
        with replicated.replica_stopped():
            with pytest.raises(ReplicationUnconfirmed):
                send(replicated, publisher, "r-3")
            with pytest.raises(ReplicationUnconfirmed) as resent:
                send(replicated, publisher, "r-3", client=other)
            assert resent.value.summary.unchanged == 1
    finally:
        other.close()


def test_the_fence_makes_wait_cover_writes_of_other_connections(
    replicated: Replicated,
) -> None:
    """WAIT alone covers its own connection's writes: after a write on one connection, the
    first WAIT on another connection, quiet since the replica last acknowledged, counts the
    frozen replica as in sync. `ReplicaFence.confirm` on such a connection does not."""
    quiet: redis.Redis[bytes] = redis.Redis(port=replicated.primary.port)
    fenced_client: redis.Redis[bytes] = redis.Redis(port=replicated.primary.port)
    quiet.ping()
    fenced_client.ping()
    replicated.wait_acknowledged()
    fence = ReplicaFence(fenced_client, KEYS, replicas=1, timeout_s=TIMEOUT_S)
    try:
        with replicated.replica_stopped():
            replicated.client.set("written-elsewhere", "1")
            bare = quiet.wait(1, int(TIMEOUT_S * 1000))
            fenced = fence.confirm()
    finally:
        quiet.close()
        fenced_client.close()

    assert bare == 1  # the pitfall: the quiet connection's WAIT returns at once
    assert fenced == 0


def test_no_replicas_asked_no_wait_and_no_fence(
    replicated: Replicated, publisher: Publisher
) -> None:
    """N = 0 (the default) sends no WAIT and writes no fence: today's round trips exactly. The
    same counter sees the one WAIT of an N = 1 call."""
    send(replicated, publisher, "r-4", min_replicas_ack=0)

    assert wait_calls(replicated.client) == 0
    assert not replicated.client.exists(KEYS.replication_fence())

    send(replicated, publisher, "r-5")

    assert wait_calls(replicated.client) == 1
    assert replicated.client.exists(KEYS.replication_fence())


def test_the_library_default_follows_the_settings(
    replicated: Replicated, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the keyword arguments, enqueue waits for JETTI_RELAY_MIN_REPLICAS_ACK replicas
    within JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S."""
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK", "1")
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S", str(TIMEOUT_S))
    get_settings.cache_clear()
    with replicated.replica_stopped(), pytest.raises(ReplicationUnconfirmed) as stopped:
        enqueue(
            [minimal_order("r-6")],
            client=replicated.client,
            publisher=publisher,
            keys=KEYS,
            now=T0,
        )
    assert stopped.value.timeout_s == TIMEOUT_S


def test_a_primary_short_of_replicas_refuses_and_says_so(
    replicated: Replicated, publisher: Publisher
) -> None:
    """Under `min-replicas-to-write 1` with the replica frozen past the lag bound, the primary
    refuses the write (NOREPLICAS): an EnqueueInterrupted that is a refusal, not unreachable,
    not "recorded on the primary", with `no_replicas` set; nothing was recorded."""
    replicated.refuse_writes_without_replicas()
    with replicated.replica_stopped():
        wait_until(lambda: refused(replicated.client), what="the primary refusing writes")
        with pytest.raises(EnqueueInterrupted) as stopped:
            send(replicated, publisher, "r-7", min_replicas_ack=0)

    error = stopped.value
    assert not isinstance(error, ReplicationUnconfirmed)
    assert error.no_replicas and not error.unreachable
    assert "NOREPLICAS" in error.detail
    assert Ledger(replicated.client, KEYS).get("r-7") is None


def refused(client: redis.Redis[bytes]) -> bool:
    try:
        client.set("probe", "1")
    except redis.ResponseError:
        return True
    return False


# --- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli_on_primary(replicated: Replicated, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`jetti-relay enqueue` settings: the primary, one replica to wait for, a short timeout."""
    monkeypatch.setenv("JETTI_RELAY_REDIS_URL", replicated.url)
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK", "1")
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S", str(TIMEOUT_S))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_exits_6_while_unconfirmed_and_0_on_the_resend(
    replicated: Replicated, cli_on_primary: None, tmp_path: Path
) -> None:
    """Exit 6 (UNREPLICATED) with the one-line reason and the line reached; the same file once
    the replica is back exits 0, the order `unchanged`."""
    source = tmp_path / "orders.jsonl"
    source.write_text(json.dumps(minimal_order("c-1")) + "\n" + json.dumps(minimal_order("c-2")))

    with replicated.replica_stopped():
        failed = CliRunner().invoke(enqueue_command, [str(source)])

    assert failed.exit_code == EXIT_UNREPLICATED == 6, failed.output
    assert "line 1 and its chunk are recorded on the Redis primary" in failed.stderr
    assert "replication unconfirmed (0 of 1 replicas within 0.2 s" in failed.stderr
    assert "run the same input again" in failed.stderr

    rerun = CliRunner().invoke(enqueue_command, [str(source), "--json"])

    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["unchanged"] == 2


def test_cli_exits_5_naming_the_missing_replicas(
    replicated: Replicated, cli_on_primary: None, tmp_path: Path
) -> None:
    """A primary refusing writes for want of replicas: exit 5, and the message says why."""
    source = tmp_path / "orders.jsonl"
    source.write_text(json.dumps(minimal_order("c-3")))
    replicated.refuse_writes_without_replicas()

    with replicated.replica_stopped():
        wait_until(lambda: refused(replicated.client), what="the primary refusing writes")
        failed = CliRunner().invoke(enqueue_command, [str(source)])

    assert failed.exit_code == EXIT_REDIS_REFUSED, failed.output
    assert "fewer replicas than its min-replicas-to-write are in sync" in failed.stderr


# --- the stream intake -------------------------------------------------------------------------
def test_stream_intake_keeps_the_entry_pending_until_the_replica_confirms(
    replicated: Replicated, publisher: Publisher
) -> None:
    """While the replica is frozen the entry is recorded but not acknowledged (a transient
    failure: the batch is kept); once the replica is back the loop acknowledges it, and the
    entry was delivered once (the wait did not count as a failed delivery)."""
    client = replicated.client
    intake = consumer(client, publisher, min_replicas_ack=1, min_replicas_ack_timeout_s=TIMEOUT_S)
    add_entry(client, raw_order("s-1"))

    with replicated.replica_stopped():
        with pytest.raises(ReplicationUnconfirmed):
            intake.poll()
        assert pending(client) == 1
        assert Ledger(client, KEYS).get("s-1") is not None

    stop = threading.Event()
    thread = threading.Thread(target=intake.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: pending(client) == 0, what="the entry acknowledged")
    finally:
        stop.set()
        thread.join(timeout=10)

    assert (intake.counts.read, intake.counts.acked) == (1, 1)
    assert on_replica(replicated, "s-1")
