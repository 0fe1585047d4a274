"""The Lua loader (worker/store/scripts.py) against a real Redis: every script compiles, and a
flushed script cache (a Redis restart) costs a retry, never a lost write."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

import worker.store.scripts as scripts
from tests.integration.store.ledger_steps import KEY, T0, deliver, version
from worker.core.keys import Keys
from worker.core.states import SubmitReply
from worker.store.breaker import Breaker
from worker.store.ledger import Finish, Ledger, Submitted

pytestmark = pytest.mark.integration

LUA = sorted(p.stem for p in (Path(scripts.__file__).parent / "lua").glob("*.lua"))


@pytest.mark.parametrize("name", [n for n in LUA if n != "prelude"])
def test_every_script_compiles_after_the_prelude(
    redis_client: redis.Redis[bytes], name: str
) -> None:
    """SCRIPT LOAD accepts each script file (after the prelude, as the ledger runs its own)."""
    assert redis_client.script_load(scripts.source(name, prelude=True))


def test_pipelined_ledger_scripts_survive_a_flushed_script_cache(
    ledger: Ledger, redis_client: redis.Redis[bytes]
) -> None:
    """After SCRIPT FLUSH the pipelined EVALSHA fails with NOSCRIPT, ran nothing, and is run
    again: the record and the finish are written once each, and the commands `also` queued
    into the finish's round trip run once."""
    redis_client.script_flush()
    (recorded,) = ledger.record_many([version("{}")], now=T0)
    assert recorded.publish
    claimed = deliver(ledger).entry
    assert claimed is not None
    redis_client.script_flush()
    (reply,) = ledger.finish_batch(
        [Finish(KEY, Submitted(claimed.version, "ph", ("l1",), None), True, None)],
        lock_head_tail=("", ""),
        now=T0,
        also=lambda pipe: pipe.incr("t:also"),
    )
    assert reply is SubmitReply.SUBMITTED
    assert redis_client.get("t:also") == b"1"
    entry = ledger.get(KEY)
    assert entry is not None and entry.deliveries_finished == 1
    assert entry.version == recorded.version


def test_a_plain_script_reloads_after_a_flush(redis_client: redis.Redis[bytes]) -> None:
    """A script outside the ledger (the breaker's) runs again after SCRIPT FLUSH."""
    breaker = Breaker(redis_client, Keys("t"), probe_s=30)
    assert breaker.admit(now=T0) == "all"
    redis_client.script_flush()
    assert breaker.trip(reason="bad token", now=T0) is True
    assert breaker.admit(now=T0 + 1) == "none"
