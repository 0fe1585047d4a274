"""Malformed and hostile raw orders, generated with hypothesis (scenario bad-input, 9).

Each one starts from a valid order and breaks it one way: huge or negative quantities, deep
nesting, megabyte strings, wrong types, invalid UTF-8 and lone surrogates, NaN and infinite
prices, unknown fields, missing or absurd ids, random JSON. They come as the bytes a producer
would receive. Hypothesis is a test dependency; this module imports it only when called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# One in this many hostile orders skips the producer's validation and is written straight to the
# ledger, as a buggy or foreign producer would: the worker must dead-letter it, not crash.
BYPASS_ONE_IN = 10
# Megabyte strings are rare so 10,000 orders stay within memory.
HUGE_STRING_ONE_IN = 500


@dataclass(frozen=True)
class Hostile:
    """One generated raw order: its bytes, what was done to it, and whether it bypasses the edge."""

    raw: bytes
    kind: str
    bypass: bool


def base_order(index: int) -> dict[str, Any]:
    """A valid raw order with a unique id."""
    return {
        "id": f"hostile-{index}",
        "number": f"#H{index}",
        "updated_at": "2026-11-27T10:00:00+00:00",
        "customer": {"first_name": "Eve", "last_name": "Mallory", "email": "eve@example.com"},
        "lines": [
            {
                "id": f"h{index}-l1",
                "sku": "SKU-1",
                "name": "Item",
                "quantity": 1,
                "unit_price": "9.99",
            },
            {
                "id": f"h{index}-l2",
                "sku": "SKU-2",
                "name": "Item 2",
                "quantity": 2,
                "unit_price": "1.50",
            },
        ],
        "auto_connect_by_sku": True,
    }


def _dumps(doc: Any) -> bytes:
    # json, not orjson: it writes NaN/Infinity literals, big integers and lone surrogates.
    return json.dumps(doc, allow_nan=True).encode("utf-8")


def _strategy() -> Any:
    from hypothesis import strategies as st

    json_leaf = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40)
    )
    json_value = st.recursive(
        json_leaf,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=12,
    )
    fields = st.sampled_from(
        [
            "id",
            "number",
            "updated_at",
            "customer",
            "lines",
            "shipping",
            "notes",
            "currency",
            "auto_connect_by_sku",
            "jetti",
            "shipping_address",
        ]
    )
    line_fields = st.sampled_from(
        [
            "id",
            "sku",
            "name",
            "quantity",
            "unit_price",
            "properties",
            "units",
            "taxable",
            "routing",
            "variant_id",
        ]
    )

    def mutate(index: int, kind: str, draw: Any) -> bytes:
        doc = base_order(index)
        line = doc["lines"][0]
        if kind == "huge_quantity":
            line["quantity"] = draw(
                st.sampled_from([0, -1, 10**4, 10**6, 10**9, 2**63, 10**30, 10**400])
            )
            if draw(st.booleans()):
                line["units"] = [{"engraving": "x"}] * min(draw(st.integers(0, 2000)), 2000)
        elif kind == "deep_nesting":
            depth: int = draw(st.integers(20, 20_000))
            nested = b"[" * depth + b"]" * depth
            head: bytes = _dumps(doc)[:-1]
            return head + b', "notes": ' + nested + b"}"
        elif kind == "huge_string":
            size = draw(st.integers(200_000, 1_300_000))
            doc[draw(st.sampled_from(["notes", "number", "id"]))] = "A" * size
        elif kind == "wrong_type":
            if draw(st.booleans()):
                doc[draw(fields)] = draw(json_value)
            else:
                line[draw(line_fields)] = draw(json_value)
        elif kind == "invalid_unicode":
            text = _dumps(doc)
            where: int = draw(st.integers(1, len(text) - 2))
            junk: bytes = draw(
                st.sampled_from(
                    [
                        b"\xff",
                        b"\xc3\x28",
                        b"\xed\xa0\x80",
                        b"\x00",
                        b"\\ud800",
                        b'\\udfff"',
                        b"\xf0\x28\x8c\x28",
                    ]
                )
            )
            return text[:where] + junk + text[where:]
        elif kind == "nan_price":
            literal = draw(
                st.sampled_from(
                    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"-0.0", b"1e-400"]
                )
            )
            line["unit_price"] = "@@PRICE@@"
            return _dumps(doc).replace(b'"@@PRICE@@"', literal)
        elif kind == "hostile_text":
            doc[draw(st.sampled_from(["notes", "number", "id"]))] = draw(st.text(max_size=300))
            line["name"] = draw(st.text(max_size=300))
        elif kind == "many_lines":
            count = draw(st.integers(0, 1500))
            doc["lines"] = [dict(line, id=f"h{index}-m{n}") for n in range(count)]
        elif kind == "unknown_fields":
            doc.update(
                draw(
                    st.dictionaries(
                        st.text(min_size=1, max_size=10), json_value, min_size=1, max_size=5
                    )
                )
            )
        elif kind == "random_json":
            return _dumps(draw(json_value))
        return _dumps(doc)

    kinds = st.sampled_from(
        [
            "huge_quantity",
            "deep_nesting",
            "wrong_type",
            "invalid_unicode",
            "nan_price",
            "hostile_text",
            "many_lines",
            "unknown_fields",
            "random_json",
        ]
    )
    return st.data(), kinds, mutate


def hostile_orders(count: int, *, seed: int = 0) -> list[Hostile]:
    """`count` hostile raw orders, the same ones for the same seed."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seed_decorator
    from hypothesis import strategies as st

    data_strategy, kinds, mutate = _strategy()
    out: list[Hostile] = []

    @seed_decorator(seed)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data_strategy, kinds, st.integers(0, BYPASS_ONE_IN * HUGE_STRING_ONE_IN - 1))
    def collect(data: Any, kind: str, roll: int) -> None:
        if len(out) >= count:
            return
        if roll % HUGE_STRING_ONE_IN == 137:  # not 0: hypothesis favours boundary values
            kind = "huge_string"
        # Draws must not depend on outside state (hypothesis checks), so the unique id is put in
        # after the mutation.
        raw = mutate(0, kind, data.draw)
        n = len(out)
        raw = raw.replace(b"hostile-0", b"hostile-%d" % n).replace(b'"h0-', b'"h%d-' % n)
        out.append(Hostile(raw=raw, kind=kind, bypass=roll % BYPASS_ONE_IN == 3))

    rounds = 0
    while len(out) < count and rounds < 20:
        collect()
        rounds += 1
    return out


# --- hostile producers (scenario hostile-producers, 11) ---------------------------------------
# Ids that collide with another order's or an index's Redis key when the key is spliced in raw
# (reliability #1), or that a key-naming scheme must survive; each pair is in arrival order.
COLLIDING_IDS: tuple[str, ...] = (
    "A:events",
    "A",
    "A:attempts",
    "A:history",
    "X",
    "X:attempts",
    "idx:all",
    "idx:status:dead",
    "{A}",
    "a{b}c",
    "*",
    "a*b",
    "with space",
    "ordre-été",
    "заказ-1",
    "注文🚀",
)
# Ids the contract may accept or refuse (a refusal must say why): control characters, length.
EDGE_IDS: tuple[str, ...] = ("line\nbreak", "tab\there", "L" * 300)
# An updated_at far beyond any clock skew the edge allows (JETTI_RELAY_MAX_FUTURE_SKEW_S).
FAR_FUTURE = "2099-01-01T00:00:00+00:00"
# Split amplification of a huge order: lines x units per line line items, over the default cap
# of worker.core.limits.DEFAULT_MAX_LINE_ITEMS (10,000); each line stays within the per-line cap.
HUGE_LINES = 11
HUGE_UNITS_PER_LINE = 1000


def huge_order(key: str) -> bytes:
    """A small raw order (about 40 kB) whose lines split into 11,000 line items."""
    doc = base_order(0)
    doc["id"] = key
    doc["lines"] = [
        {
            "id": f"{key}-l{n}",
            "sku": f"SKU-{n}",
            "name": "Item",
            "unit_price": "1.00",
            "quantity": HUGE_UNITS_PER_LINE,
            "units": [{}] * HUGE_UNITS_PER_LINE,
        }
        for n in range(HUGE_LINES)
    ]
    return _dumps(doc)
