"""The fleet circuit breaker against a real Redis; time is passed in, never slept."""

from __future__ import annotations

import redis

from worker.core.keys import Keys
from worker.store.breaker import DEFAULT_PAUSE_REASON, Breaker

PROBE_S = 60.0
T0 = 1_800_000_000.0


def _breaker(client: redis.Redis[bytes]) -> Breaker:
    return Breaker(client, Keys(), probe_s=PROBE_S)


def test_a_new_breaker_is_closed_and_allows(redis_client: redis.Redis[bytes]) -> None:
    """With nothing in Redis the breaker is closed and every caller may submit."""
    breaker = _breaker(redis_client)
    assert breaker.allow(now=T0) is True
    assert breaker.state().state == "closed"


def test_a_trip_opens_it_with_reason_and_status(redis_client: redis.Redis[bytes]) -> None:
    """trip() opens the breaker and records why, Jetti's status and when."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="bad webhook hash", status=401, now=T0)
    state = breaker.state()
    assert (state.state, state.reason, state.status, state.since) == (
        "open",
        "bad webhook hash",
        401,
        T0,
    )


def test_an_open_breaker_refuses_until_the_probe_time(redis_client: redis.Redis[bytes]) -> None:
    """Before probe_s has passed since the trip, allow() is False for everyone."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    assert breaker.allow(now=T0 + PROBE_S - 1) is False


def test_after_probe_s_exactly_one_caller_probes(redis_client: redis.Redis[bytes]) -> None:
    """Once probe_at passes, one allow() is True (half-open) and the rest are False."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    answers = [breaker.allow(now=T0 + PROBE_S + i) for i in range(5)]
    assert answers == [True, False, False, False, False]
    assert breaker.state().state == "half_open"


def test_a_successful_probe_closes_the_breaker(redis_client: redis.Redis[bytes]) -> None:
    """record_success() after the probe closes the breaker and everyone may submit again."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    assert breaker.allow(now=T0 + PROBE_S) is True
    assert breaker.record_success(now=T0 + PROBE_S + 1) is True
    state = breaker.state()
    assert (state.state, state.reason, state.status, state.since) == (
        "closed",
        "",
        None,
        T0 + PROBE_S + 1,
    )
    assert breaker.allow(now=T0 + PROBE_S + 2) is True


def test_a_failed_probe_reopens_for_another_probe_s(redis_client: redis.Redis[bytes]) -> None:
    """A failure while half-open is another trip: closed to callers for probe_s again."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    assert breaker.allow(now=T0 + PROBE_S) is True
    breaker.trip(reason="still bad", status=403, now=T0 + PROBE_S + 1)
    assert breaker.state().state == "open"
    assert breaker.allow(now=T0 + 2 * PROBE_S) is False
    assert breaker.allow(now=T0 + 2 * PROBE_S + 1) is True


def test_a_lost_probe_is_replaced_after_probe_s(redis_client: redis.Redis[bytes]) -> None:
    """If the probe never reports (its worker died), another caller probes probe_s later."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    assert breaker.allow(now=T0 + PROBE_S) is True
    assert breaker.allow(now=T0 + 2 * PROBE_S - 1) is False
    assert breaker.allow(now=T0 + 2 * PROBE_S) is True


def test_success_when_closed_writes_nothing(redis_client: redis.Redis[bytes]) -> None:
    """record_success() on a closed breaker is a no-op: no hash appears in Redis."""
    breaker = _breaker(redis_client)
    assert breaker.record_success() is False
    assert redis_client.exists(Keys().breaker()) == 0


def test_success_without_a_time_stamps_redis_time(redis_client: redis.Redis[bytes]) -> None:
    """record_success() with no `now` closes the breaker with `since` from Redis TIME."""
    breaker = _breaker(redis_client)
    breaker.trip(reason="r", status=403, now=T0)
    assert breaker.record_success() is True
    since = breaker.state().since
    assert since is not None and since > 1_600_000_000


def test_a_pause_refuses_everyone_even_after_probe_s(redis_client: redis.Redis[bytes]) -> None:
    """An operator's pause lets no probe through, however long it lasts."""
    breaker = _breaker(redis_client)
    breaker.pause(now=T0)
    assert breaker.allow(now=T0 + 100 * PROBE_S) is False
    state = breaker.state()
    assert (state.state, state.reason, state.since) == ("paused", DEFAULT_PAUSE_REASON, T0)


def test_neither_trip_nor_success_undoes_a_pause(redis_client: redis.Redis[bytes]) -> None:
    """A worker's trip or an in-flight success finishing late leaves the operator's pause."""
    breaker = _breaker(redis_client)
    breaker.pause("migrating channel", now=T0)
    assert breaker.trip(reason="r", status=401, now=T0 + 1) is False
    assert breaker.record_success(now=T0 + 2) is False
    assert breaker.state().reason == "migrating channel"
    assert breaker.state().state == "paused"


def test_resume_closes_a_paused_or_open_breaker(redis_client: redis.Redis[bytes]) -> None:
    """resume() closes the breaker from paused and from open, clearing reason and status."""
    breaker = _breaker(redis_client)
    breaker.pause(now=T0)
    breaker.resume(now=T0 + 1)
    assert breaker.allow(now=T0 + 2) is True
    breaker.trip(reason="r", status=401, now=T0 + 3)
    breaker.resume(now=T0 + 4)
    state = breaker.state()
    assert (state.state, state.reason, state.status, state.since) == ("closed", "", None, T0 + 4)
