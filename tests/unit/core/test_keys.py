"""Redis key names: no order id can reach another order's key or an index (reliability #1).

Every per-order builder of `Keys` embeds `encode_order_key(order_key)`; these tests show over
generated ids (colons, `idx:all`, `:events`, braces, globs, whitespace, non-ASCII, long) that no
two distinct (builder, id) pairs give the same name and no per-order name equals an index or
global key.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.core.keys import ORDERS_QUEUE, Keys, decode_order_key, encode_order_key
from worker.core.states import DeadReason, DeadStatus, OrderState

KEYS = Keys()

PER_ORDER: dict[str, Callable[[str], str]] = {
    "order": KEYS.order,
    "order_events": KEYS.order_events,
    "order_attempts": KEYS.order_attempts,
    "lock": KEYS.lock,
    "dead": KEYS.dead,
    "dead_attempts": KEYS.dead_attempts,
    "dead_history": KEYS.dead_history,
}

HOSTILE_IDS = [
    "A",
    "A:events",
    "A:attempts",
    "A:history",
    "A:events:events",
    "idx:all",
    "idx:shed",
    "idx:reason:rejected",
    "idx:status:dead",
    "idx:email:00",
    "idx",
    ":events",
    ":attempts",
    ":history",
    "",
    "{jr}",
    "a\n*{x}",
    "*",
    "?",
    "[a]",
    "a b",
    "\t",
    "\x00",
    "é",
    "订单",
    "%",
    "%3A",
    "A%3Aevents",
    "~",
    "-",
    ".",
    "..",
    "rate:bucket",
    "../x",
    "a" * 600,
]

SUFFIXES = ["", ":events", ":attempts", ":history", ":all", "idx:all", "{", "}", "*", " ", "\n"]

ids = st.one_of(
    st.sampled_from(HOSTILE_IDS),
    st.text(max_size=40),
    st.builds(lambda a, b: a + b, st.text(max_size=12), st.sampled_from(SUFFIXES)),
    st.builds(lambda a, b: a + b, st.sampled_from(HOSTILE_IDS), st.sampled_from(SUFFIXES)),
    st.text(min_size=300, max_size=700),
).filter(lambda s: not re.search(r"[\ud800-\udfff]", s))  # not UTF-8: Redis cannot store them


def global_keys(extra: list[str]) -> set[str]:
    """Every index and global key `Keys` builds, with parameters from the enums and `extra`."""
    k = KEYS
    out = {
        k.shed_queue(),
        k.tombstone_index(),
        k.enqueued_index(),
        k.sequence(),
        k.retry_schedule(),
        k.rate_bucket(),
        k.blocked_until(),
        k.breaker(),
        k.counters(),
        k.latency(),
        k.dead_index(),
        k.audit_log(),
        k.reconcile_checkpoint(),
        k.reconcile_stats(),
        k.reconcile_acted(),
        k.orders_queue(),
        k.intake_stream(),
        k.intake_rejects(),
        k.replication_fence(),
        k.order_key_index(),
        k.received_index(),
        k.jobs(),
        k.alerts(),
        k.minute_counters(29_000_000),
    }
    words = [
        *extra,
        *OrderState,
        *DeadReason,
        *DeadStatus,
        "pump",
        "sweeper",
        "reconciler",
        "read",
        "write",
        "0" * 64,
    ]
    for word in map(str, words):
        out |= {
            k.state_index(word),
            k.dead_reason_index(word),
            k.dead_status_index(word),
            k.dead_email_index(word),
            k.leader(word),
            k.heartbeat(word),
            k.api_bucket(word),
            k.api_blocked_until(word),
            k.job(word),
            k.job_keys(word),
        }
    return out


def test_every_no_argument_key_method_is_in_the_global_set() -> None:
    """A new global key added to `Keys` without this test knowing fails here."""
    names = {
        name
        for name in dir(Keys)
        if not name.startswith("_")
        and callable(getattr(Keys, name))
        and getattr(Keys, name).__code__.co_argcount == 1
    }
    built = {getattr(KEYS, name)() for name in names}
    assert built <= global_keys([])


@settings(max_examples=300, deadline=None)
@given(st.lists(ids, min_size=1, max_size=12, unique=True))
def test_no_two_ids_or_builders_share_a_key_and_none_is_an_index(order_ids: list[str]) -> None:
    """Distinct (builder, id) pairs give distinct names, and none of them is an index key."""
    seen: dict[str, tuple[str, str]] = {}
    for order_id in order_ids:
        for builder, build in PER_ORDER.items():
            name = build(order_id)
            assert name not in seen, (name, seen.get(name), (builder, order_id))
            seen[name] = (builder, order_id)
    clash = set(seen) & global_keys(order_ids)
    assert not clash, {name: seen[name] for name in clash}


@settings(max_examples=300, deadline=None)
@given(ids)
def test_encoding_is_safe_and_reversible(order_id: str) -> None:
    """The encoded key has only [A-Za-z0-9._~%-] and decodes back to the id."""
    encoded = encode_order_key(order_id)
    assert re.fullmatch(r"[A-Za-z0-9._~%-]*", encoded)
    assert decode_order_key(encoded) == order_id


def test_the_review_collisions_are_gone() -> None:
    """The review's examples: `A:events` vs the events of `A`, `idx:all` vs the DLQ index."""
    assert KEYS.order("A:events") != KEYS.order_events("A")
    assert KEYS.order("A:attempts") != KEYS.order_attempts("A")
    assert KEYS.dead("idx:all") != KEYS.dead_index()
    assert KEYS.dead("A:history") != KEYS.dead_history("A")
    assert KEYS.dead("idx:status:dead") != KEYS.dead_status_index("dead")
    assert KEYS.order("A:events") == "jr:order:A%3Aevents"


def test_safe_keys_are_unchanged() -> None:
    """The usual ids (letters, digits, '-', '_', '.') keep today's key names: nothing to migrate."""
    assert KEYS.order("shop-1_#".rstrip("#")) == "jr:order:shop-1_"
    assert KEYS.lock("o.1~x") == "jr:lock:o.1~x"


def test_parts_frame_the_encoded_key() -> None:
    """`parts` gives the head and tail the Lua scripts put around the encoded key."""
    for prefix in ("jr", "~~", "a:b"):
        keys = Keys(prefix)
        for build in (keys.order, keys.order_events, keys.order_attempts, keys.lock):
            head, tail = keys.parts(build)
            assert head + encode_order_key("x:y z") + tail == build("x:y z")


def test_each_prefix_has_its_own_queue_and_the_default_keeps_its_name() -> None:
    """Two deployments on one database never share a Celery queue (issue 14 point 5); the
    default prefix keeps the queue name of earlier releases, so an upgrade strands nothing."""
    assert Keys().orders_queue() == ORDERS_QUEUE
    assert Keys("a").orders_queue() != Keys("b").orders_queue()
    assert Keys("a").intake_stream() == "a:intake"
