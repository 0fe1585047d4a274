"""The dead-letter store against a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from worker.core.keys import Keys
from worker.core.records import Attempt
from worker.core.states import DeadReason, DeadStatus
from worker.store.dead_letters import DeadLetters, email_hash, masked

RAW = json.dumps(
    {
        "id": "o-1",
        "number": "1001",
        "customer": {"email": "Ann@Example.com", "first_name": "Ann", "phone": "+44 20 7946 0000"},
        "shipping_address": {"address1": "1 High St", "city": "Leeds"},
        "lines": [{"id": "l1", "name": "Blue mug", "note": "gift for ann@example.com"}],
    }
).encode()


def attempt(at: float, status: int | None = 422, excerpt: str = "bad") -> Attempt:
    return Attempt(
        at=at, status=status, error_class="Rejected", excerpt=excerpt, worker="w1", outcome="dead"
    )


def store(client: redis.Redis[bytes]) -> DeadLetters:
    return DeadLetters(client, Keys())


def put(
    dead: DeadLetters,
    key: str,
    *,
    now: float,
    reason: DeadReason = DeadReason.REJECTED,
    attempts: tuple[Attempt, ...] | None = None,
    error: str = "Jetti answered 422",
    source: str | None = "shop",
    raw: bytes | None = b'{"id": 1}',
) -> None:
    dead.put(
        key,
        reason=reason,
        raw=raw,
        payload=b'{"externalId": "x"}',
        attempts=attempts if attempts is not None else (attempt(now),),
        source=source,
        error=error,
        now=now,
    )


def test_put_then_get_returns_everything_stored(redis_client: redis.Redis[bytes]) -> None:
    """An entry keeps raw order, payload, reason, error, status, source, attempts and times."""
    dead = store(redis_client)
    put(dead, "o-1", now=100.0, attempts=(attempt(90.0, 503), attempt(100.0, 422)))
    entry = dead.get("o-1")
    assert entry is not None
    assert (entry.reason, entry.status, entry.http_status, entry.source) == (
        DeadReason.REJECTED,
        DeadStatus.DEAD,
        422,
        "shop",
    )
    assert (entry.raw, entry.payload, entry.error) == (
        b'{"id": 1}',
        b'{"externalId": "x"}',
        "Jetti answered 422",
    )
    assert [a.at for a in entry.attempts] == [90.0, 100.0]
    assert (entry.first_dead_at, entry.last_dead_at, entry.replay_count) == (100.0, 100.0, 0)
    assert dead.get("missing") is None


def test_dead_again_appends_attempts_once_and_keeps_first_time(
    redis_client: redis.Redis[bytes],
) -> None:
    """A second put appends only new attempts, moves the reason index, keeps first_dead_at and
    None raw keeps the stored raw order."""
    dead = store(redis_client)
    first = attempt(100.0)
    put(dead, "o-1", now=100.0, attempts=(first,))
    dead.mark_replayed("o-1", now=150.0)
    put(
        dead,
        "o-1",
        now=200.0,
        reason=DeadReason.RETRIES_EXHAUSTED,
        raw=None,
        attempts=(first, attempt(200.0, 503)),
    )
    entry = dead.get("o-1")
    assert entry is not None
    assert [a.at for a in entry.attempts] == [100.0, 200.0]
    assert (entry.first_dead_at, entry.last_dead_at) == (100.0, 200.0)
    assert (entry.status, entry.reason, entry.http_status) == (
        DeadStatus.DEAD,
        DeadReason.RETRIES_EXHAUSTED,
        503,
    )
    assert entry.raw == b'{"id": 1}'
    assert [h.status for h in entry.history] == [
        DeadStatus.DEAD,
        DeadStatus.REPLAYED,
        DeadStatus.DEAD,
    ]
    stats = dead.stats()
    assert stats.by_reason[DeadReason.REJECTED] == 0
    assert stats.by_reason[DeadReason.RETRIES_EXHAUSTED] == 1
    assert stats.by_status[DeadStatus.REPLAYED] == 0


def test_status_moves_dead_replayed_resolved(redis_client: redis.Redis[bytes]) -> None:
    """mark_replayed counts replays, mark_resolved closes the entry once, unknown keys are False."""
    dead = store(redis_client)
    put(dead, "o-1", now=100.0)
    assert dead.mark_replayed("o-1", now=110.0) is True
    assert dead.mark_replayed("o-1", now=120.0) is True
    assert dead.mark_resolved("o-1", now=130.0) is True
    assert dead.mark_resolved("o-1", now=140.0) is False
    assert dead.mark_replayed("nope", now=1.0) is False
    entry = dead.get("o-1")
    assert entry is not None
    assert (entry.status, entry.replay_count, entry.status_since) == (DeadStatus.RESOLVED, 2, 130.0)
    assert dead.stats().by_status == {
        DeadStatus.DEAD: 0,
        DeadStatus.REPLAYED: 0,
        DeadStatus.RESOLVED: 1,
    }


def test_list_filters_by_index_and_fields(redis_client: redis.Redis[bytes]) -> None:
    """Reason, status, time window, key glob, error text, HTTP status and source each narrow the
    listing, which comes newest first."""
    dead = store(redis_client)
    put(dead, "shop-1", now=100.0)
    put(
        dead,
        "shop-2",
        now=200.0,
        reason=DeadReason.DEADLINE,
        error="timed out",
        attempts=(attempt(200.0, None),),
    )
    put(dead, "erp-3", now=300.0, source="erp", attempts=(attempt(300.0, 400),))
    dead.mark_replayed("erp-3", now=310.0)

    def keys(**filters: object) -> list[str]:
        return [e.order_key for e in dead.list(**filters)]  # type: ignore[arg-type]

    assert keys() == ["erp-3", "shop-2", "shop-1"]
    assert keys(reason=DeadReason.REJECTED) == ["erp-3", "shop-1"]
    assert keys(status=DeadStatus.DEAD) == ["shop-2", "shop-1"]
    assert keys(reason=DeadReason.REJECTED, status=DeadStatus.DEAD) == ["shop-1"]
    assert keys(since=150.0, until=300.0) == ["erp-3", "shop-2"]
    assert keys(order_key_glob="shop-*") == ["shop-2", "shop-1"]
    assert keys(error_contains="TIMED") == ["shop-2"]
    assert keys(http_status=400) == ["erp-3"]
    assert keys(source="erp") == ["erp-3"]
    assert keys(offset=1, limit=1) == ["shop-2"]


def test_list_pages_through_large_indexes(redis_client: redis.Redis[bytes]) -> None:
    """A field filter that matches only old entries still finds them past the first index page."""
    dead = store(redis_client)
    put(dead, "old", now=1.0, source="erp")
    for i in range(600):
        put(dead, f"n-{i}", now=10.0 + i)
    assert [e.order_key for e in dead.list(source="erp")] == ["old"]


def test_stats_counts_and_oldest_still_dead(redis_client: redis.Redis[bytes]) -> None:
    """stats() counts by reason and status and reports the oldest entry that is still dead."""
    dead = store(redis_client)
    put(dead, "a", now=100.0)
    put(dead, "b", now=200.0, reason=DeadReason.WORKER_LOST)
    put(dead, "c", now=300.0)
    dead.mark_resolved("a", now=400.0)
    stats = dead.stats()
    assert stats.total == 3
    assert stats.by_reason[DeadReason.REJECTED] == 2
    assert stats.dead_by_reason[DeadReason.REJECTED] == 1
    assert stats.oldest_dead_at == 200.0
    assert dead.oldest() == 200.0
    assert dead.counts_by_reason()[DeadReason.WORKER_LOST] == 1
    assert store(redis_client).stats().oldest_dead_at == 200.0


def test_purge_returns_and_removes_entries(redis_client: redis.Redis[bytes]) -> None:
    """purge() returns the deleted entries and leaves no key or index membership behind."""
    dead = store(redis_client)
    put(dead, "o-1", now=100.0, raw=RAW)
    put(dead, "o-2", now=200.0)
    purged = dead.purge(["o-1", "missing"])
    assert [e.order_key for e in purged] == ["o-1"]
    assert purged[0].raw == RAW
    assert dead.get("o-1") is None
    assert dead.stats().total == 1
    assert [k.decode() for k in redis_client.keys("jr:dead:o-1*")] == []
    assert not redis_client.exists(Keys().dead_email_index(email_hash("ann@example.com")))


def test_erase_personal_data_by_email(redis_client: redis.Redis[bytes]) -> None:
    """Erasing by email (any case) rewrites the raw order and excerpts of that customer's entries
    without names, emails, phones or addresses, keeps product data, and leaves others alone."""
    dead = store(redis_client)
    put(
        dead,
        "o-1",
        now=100.0,
        raw=RAW,
        attempts=(attempt(100.0, excerpt="customer ann@example.com exists"),),
    )
    put(dead, "o-2", now=100.0)
    assert dead.erase_personal_data("ANN@example.com ", now=500.0) == 1
    entry = dead.get("o-1")
    assert entry is not None and entry.raw is not None and entry.erased_at == 500.0
    text = entry.raw.decode() + (entry.attempts[0].excerpt or "")
    for personal in ("ann@example.com", "Ann@Example.com", '"Ann"', "7946", "High St", "Leeds"):
        assert personal not in text
    assert "Blue mug" in text
    assert dead.erase_personal_data("ann@example.com", now=600.0) == 0
    other = dead.get("o-2")
    assert other is not None and other.erased_at is None


def test_masked_hides_personal_data_and_secrets(redis_client: redis.Redis[bytes]) -> None:
    """masked() masks personal data unless asked not to, and never shows a given secret."""
    dead = store(redis_client)
    put(
        dead,
        "o-1",
        now=100.0,
        raw=RAW,
        error="hash s3cr3t-hash refused",
        attempts=(attempt(100.0, excerpt="token s3cr3t-hash"),),
    )
    entry = dead.get("o-1")
    assert entry is not None
    view = json.dumps(masked(entry, secrets=["s3cr3t-hash", ""]))
    assert "ann@example.com" not in view.lower() and "Leeds" not in view
    assert "Blue mug" in view and "s3cr3t-hash" not in view
    full = json.dumps(masked(entry, include_personal_data=True, secrets=["s3cr3t-hash"]))
    assert "Leeds" in full and "s3cr3t-hash" not in full


def test_non_json_raw_is_kept_and_masked(redis_client: redis.Redis[bytes]) -> None:
    """A raw order that is not JSON (an invalid_input) is stored as is; display masks its emails."""
    dead = store(redis_client)
    put(dead, "o-1", now=100.0, reason=DeadReason.INVALID_INPUT, raw=b"{broken ann@example.com")
    entry = dead.get("o-1")
    assert entry is not None and entry.raw == b"{broken ann@example.com"
    assert masked(entry)["raw"] == "{broken ***"


def test_attempts_and_history_are_trimmed_to_their_bounds(
    redis_client: redis.Redis[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order dead-lettered in a loop keeps only the newest rows (reliability review #17)."""
    import worker.store.dead_letters as module

    monkeypatch.setattr(module, "DEAD_HISTORY_KEPT", 3)
    monkeypatch.setattr(module, "DEAD_ATTEMPTS_KEPT", 2)
    dead = DeadLetters(redis_client, Keys("trim"))
    for n in range(5):
        attempt = Attempt(
            at=float(n), status=503, error_class="E", excerpt=str(n), worker="w", outcome="error"
        )
        dead.put(
            "loop",
            reason=DeadReason.WORKER_LOST,
            raw=b"{}",
            payload=None,
            attempts=[attempt],
            source=None,
            error="x",
            now=100.0 + n,
        )
    entry = dead.get("loop")
    assert entry is not None
    assert [a.excerpt for a in entry.attempts] == ["3", "4"]
    assert len(entry.history) == 3


def test_a_bounded_search_stops_after_the_members_it_may_examine_and_says_where_to_go_on(
    redis_client: redis.Redis[bytes],
) -> None:
    """A filter served by reading entries (error text) looks at no more than `max_examined`
    index members per call; `older_until` continues the walk with older entries, and the last
    call, which reaches the end of the index, says there is nothing older."""
    dead = store(redis_client)
    for n in range(30):
        put(dead, f"o-{n}", now=1000.0 + n, error="timeout" if n == 3 else "rejected")
    first = dead.search(error_contains="timeout", limit=5, max_examined=10)
    assert (first.entries, first.examined, first.older_until) == ([], 10, 1020.0)
    second = dead.search(
        error_contains="timeout", until=first.older_until, limit=5, max_examined=10
    )
    assert (second.entries, second.older_until) == ([], 1011.0)
    third = dead.search(
        error_contains="timeout", until=second.older_until, limit=5, max_examined=20
    )
    assert [e.order_key for e in third.entries] == ["o-3"]
    assert third.older_until is None
    unbounded = dead.search(error_contains="timeout", limit=5)
    assert [e.order_key for e in unbounded.entries] == ["o-3"] and unbounded.examined == 30
