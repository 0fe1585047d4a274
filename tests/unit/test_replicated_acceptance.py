"""What each path tells upstream when replication is unconfirmed or the primary lacks replicas,
without a server (tests/integration/pipeline/test_replicated_acceptance.py runs them for real).
"""

from __future__ import annotations

import pytest
import redis

from ops.commands.enqueue import EXIT_REDIS_REFUSED, EXIT_UNREPLICATED, exit_code, stop_message
from producers.enqueue import (
    Candidate,
    EnqueueInterrupted,
    EnqueueSummary,
    OnResult,
    ReplicationUnconfirmed,
    replica_fence,
)
from producers.http.writer import REPLICATION_UNCONFIRMED, GroupCommitWriter, IntakeUnavailable
from producers.stream_config import transient
from worker.core.keys import Keys
from worker.store.replication import ReplicaFence, refused_for_replicas

# Never connects: building a client opens no socket.
CLIENT: redis.Redis[bytes] = redis.Redis(port=1)
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."


def unconfirmed(position: int = 7) -> ReplicationUnconfirmed:
    return ReplicationUnconfirmed(
        EnqueueSummary(accepted=1), position=position, acked=0, wanted=1, timeout_s=0.2
    )


def interrupted_by(cause: Exception) -> EnqueueInterrupted:
    try:
        raise EnqueueInterrupted(
            EnqueueSummary(), position=1, unreachable=False, detail=str(cause)
        ) from cause
    except EnqueueInterrupted as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (redis.ResponseError(NOREPLICAS), True),
        (redis.ResponseError(f"{NOREPLICAS} script: abc, on @user_script:1."), True),
        (
            redis.ResponseError(f"Command # 1 (INCRBY k 1) of pipeline caused error: {NOREPLICAS}"),
            True,
        ),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (
            redis.ResponseError("Command # 1 (EVALSHA NOREPLICAS) of pipeline caused error: OOM"),
            False,
        ),
        (redis.ConnectionError(NOREPLICAS), False),
    ],
)
def test_noreplicas_is_read_from_the_reply_code(error: Exception, expected: bool) -> None:
    """NOREPLICAS is Redis's reply code, wherever redis-py's wording puts it; a command's own
    arguments naming it do not count, nor does a transport error."""
    assert refused_for_replicas(error) is expected


def test_the_error_says_recorded_and_send_again() -> None:
    """ReplicationUnconfirmed is an EnqueueInterrupted that is not `unreachable`, and its
    message gives the count and the timeout."""
    error = unconfirmed()

    assert isinstance(error, EnqueueInterrupted) and not error.unreachable
    assert str(error) == (
        "recorded on the primary, replication unconfirmed (0 of 1 replicas within 0.2 s): "
        "send again; sending again is safe"
    )


def test_no_replicas_is_told_by_the_cause() -> None:
    """`no_replicas` is True for a NOREPLICAS cause only."""
    assert interrupted_by(redis.ResponseError(NOREPLICAS)).no_replicas
    assert not interrupted_by(redis.ResponseError("OOM command not allowed")).no_replicas


def test_the_stream_intake_waits_out_both() -> None:
    """The stream intake keeps the batch (transient) for an unconfirmed replication and for a
    NOREPLICAS refusal, not for a WRONGTYPE one."""
    assert transient(unconfirmed())
    assert transient(interrupted_by(redis.ResponseError(NOREPLICAS)))
    assert not transient(interrupted_by(redis.ResponseError("WRONGTYPE wrong kind")))


def test_the_cli_exits_6_and_names_the_line() -> None:
    """Exit 6 for unconfirmed replication (5 for a refusal), and a message with the line."""
    summary = EnqueueSummary()
    assert exit_code(summary, unconfirmed()) == EXIT_UNREPLICATED == 6
    assert exit_code(summary, interrupted_by(redis.ResponseError(NOREPLICAS))) == (
        EXIT_REDIS_REFUSED
    )
    message = stop_message("line", unconfirmed(position=7))
    assert "line 7 and its chunk are recorded on the Redis primary" in message
    assert "(0 of 1 replicas within 0.2 s" in message


def test_the_http_writer_answers_replication_unconfirmed() -> None:
    """The group commit's requests fail with IntakeUnavailable whose `error` is the fixed
    code and whose reason says the orders are on the primary."""

    def enqueue(_candidates: list[Candidate], _on_result: OnResult) -> EnqueueSummary:
        raise unconfirmed(position=0)

    writer = GroupCommitWriter(enqueue)
    writer.start()
    try:
        future = writer.submit([Candidate(1, b"{}")])
        with pytest.raises(IntakeUnavailable) as failed:
            future.result(timeout=30)
    finally:
        writer.close()
    assert failed.value.error == REPLICATION_UNCONFIRMED
    assert failed.value.retry_after_s > 0
    assert "recorded on the Redis primary" in failed.value.reason


def test_no_replicas_asked_builds_no_fence() -> None:
    """N = 0 gives no fence (no settings read for the timeout); N > 0 one with N and T."""
    assert replica_fence(CLIENT, Keys(), 0, None) is None
    fence = replica_fence(CLIENT, Keys(), 2, 0.5)
    assert fence is not None and (fence.replicas, fence.timeout_s) == (2, 0.5)


def test_the_default_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments the fence follows JETTI_RELAY_MIN_REPLICAS_ACK and its timeout."""
    from worker.settings import get_settings

    assert replica_fence(CLIENT, Keys(), None, None) is None
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK", "1")
    monkeypatch.setenv("JETTI_RELAY_MIN_REPLICAS_ACK_TIMEOUT_S", "0.3")
    get_settings.cache_clear()
    fence = replica_fence(CLIENT, Keys(), None, None)
    assert fence is not None and (fence.replicas, fence.timeout_s) == (1, 0.3)


@pytest.mark.parametrize(("replicas", "timeout_s"), [(0, 1.0), (1, 0.0)])
def test_a_fence_needs_a_replica_and_a_timeout(replicas: int, timeout_s: float) -> None:
    """WAIT 0 replicas is pointless and WAIT with timeout 0 blocks for ever: both refused."""
    with pytest.raises(ValueError):
        ReplicaFence(CLIENT, Keys(), replicas=replicas, timeout_s=timeout_s)
