"""`worker.store.intake.IntakeStream`: the figures and the claims where Redis is unhelpful.

Redis 7 gives no `lag` once an unread entry was deleted (XDEL), and Redis 6.2 never does; Redis
6.2 also keeps an entry deleted while pending in the group for ever. The store covers both.
"""

from __future__ import annotations

import pytest
import redis

from tests.fixtures.intake import KEYS, add_entry, age_pending, pending, read_and_die
from worker.core.keys import INTAKE_GROUP
from worker.store.intake import IntakeStream

pytestmark = pytest.mark.integration


def test_no_stream_reads_as_all_zero(redis_client: redis.Redis[bytes]) -> None:
    """Before the first XADD or intake: nothing, and no error."""
    status = IntakeStream(redis_client, KEYS).status()
    assert (status.length, status.lag, status.pending, status.rejects) == (0, 0, 0, 0)
    assert status.has_group is False
    assert status.oldest_unread_at is None and status.newest_reject_at is None


def test_unread_entries_are_counted_where_redis_gives_no_lag(
    redis_client: redis.Redis[bytes],
) -> None:
    """With an unread entry deleted, XINFO GROUPS has no lag: the unread entries are counted."""
    stream = IntakeStream(redis_client, KEYS)
    stream.ensure_group()
    ids = [add_entry(redis_client, {"id": str(n)}) for n in range(6)]
    read_and_die(redis_client, "c", 2)
    redis_client.xdel(KEYS.intake_stream(), ids[4])

    status = stream.status()

    assert status.lag == 3  # ids[2], ids[3], ids[5]
    assert status.pending == 2
    assert status.oldest_unread_at == pytest.approx(int(ids[2].split("-")[0]) / 1000)


def test_an_entry_deleted_while_pending_is_acknowledged_not_handed_out(
    redis_client: redis.Redis[bytes],
) -> None:
    """Claiming an entry someone deleted (XDEL) returns the others and leaves nothing pending
    that nobody could ever handle."""
    stream = IntakeStream(redis_client, KEYS)
    stream.ensure_group()
    first, second = (add_entry(redis_client, {"id": str(n)}) for n in range(2))
    read_and_die(redis_client, "dead", 2)
    age_pending(redis_client, [first, second], owner="dead", idle_ms=60_000, deliveries=1)
    redis_client.xdel(KEYS.intake_stream(), first)

    entries = stream.claim("live", [first, second], min_idle_ms=1_000)

    assert [e.entry_id for e in entries] == [second]
    assert pending(redis_client) == 1  # `second`, now the live consumer's


def test_ensure_group_creates_once(redis_client: redis.Redis[bytes]) -> None:
    """The first call creates the group (and the stream); later ones find it."""
    stream = IntakeStream(redis_client, KEYS)
    assert stream.ensure_group() is True
    assert stream.ensure_group() is False


def test_trim_removes_everything_acknowledged_however_much(
    redis_client: redis.Redis[bytes],
) -> None:
    """A backlog of acknowledged entries larger than one XTRIM ~ removes by default (10000)
    goes in one trim, all but the last internal node."""
    stream = IntakeStream(redis_client, KEYS)
    stream.ensure_group()
    pipe = redis_client.pipeline(transaction=False)
    for n in range(25_000):
        pipe.xadd(KEYS.intake_stream(), {"order": str(n)})
    ids = pipe.execute()
    read_and_die(redis_client, "c", len(ids))
    redis_client.xack(KEYS.intake_stream(), INTAKE_GROUP, *ids)

    assert stream.trim() is not None

    assert redis_client.xlen(KEYS.intake_stream()) <= 100
