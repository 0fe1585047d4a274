"""Specification of worker.core.jsonio: hostile input refused, exact numbers both ways."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.core import jsonio
from worker.core.errors import InvalidOrder
from worker.core.jsonio import dumps_canonical, loads_document, payload_hash


def refusal(data: bytes | str, **limits: int) -> str:
    with pytest.raises(InvalidOrder) as caught:
        loads_document(data, **limits)
    [problem] = caught.value.problems
    assert problem.path == "$"
    return problem.message


def test_fractions_parse_as_decimal_and_integers_as_int() -> None:
    """Numbers with a fraction or exponent become Decimal with their digits; integers stay int."""
    doc = loads_document(b'{"price": 12.10, "qty": 3, "big": 1E+2}')
    assert doc == {"price": Decimal("12.10"), "qty": 3, "big": Decimal("1E+2")}
    assert str(doc["price"]) == "12.10"
    assert isinstance(doc["qty"], int)


def test_a_lone_surrogate_refusal_does_not_echo_the_string() -> None:
    """The refusal of an invalid string never quotes it: it may be an email or a name."""
    message = refusal(b'{"email": "jane.doe@example.com\\ud800"}')
    assert "lone surrogate" in message
    assert "jane" not in message


def test_str_input_is_accepted() -> None:
    """A str document parses like its UTF-8 bytes."""
    assert loads_document('{"name": "Zoë"}') == {"name": "Zoë"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(literal: str) -> None:
    """NaN, Infinity and -Infinity literals are not JSON and are refused by name."""
    message = refusal(f'{{"unit_price": {literal}}}'.encode())
    assert literal in message
    assert "refused" in message


def test_lone_surrogate_escape_is_refused() -> None:
    """A \\ud800 escape decodes to a lone surrogate, which is invalid Unicode and refused."""
    assert "lone surrogate" in refusal(b'{"name": "\\ud800"}')


def test_lone_surrogate_in_object_key_is_refused() -> None:
    """Keys are checked for lone surrogates as well as values."""
    assert "lone surrogate" in refusal(b'{"\\udfff": 1}')


def test_valid_surrogate_pair_escape_is_accepted() -> None:
    """A proper surrogate-pair escape is a real character and passes."""
    assert loads_document(b'["\\ud83d\\ude00"]') == ["\U0001f600"]


def test_raw_lone_surrogate_in_str_input_is_refused() -> None:
    """A str holding a raw lone surrogate cannot be UTF-8 and is refused."""
    assert "lone surrogate" in refusal('["\ud800"]')


def test_invalid_utf8_bytes_are_refused() -> None:
    """Bytes that are not UTF-8 are refused with the offending byte offset."""
    assert refusal(b'{"name": "\xff\xfe"}') == "invalid UTF-8 at byte 10"


def test_oversize_document_is_refused() -> None:
    """A 2 MB document is over the default 1 MiB cap and refused before parsing."""
    big = b'{"notes": "' + b"x" * 2_000_000 + b'"}'
    assert "larger than 1048576 bytes" in refusal(big)


def test_size_cap_is_configurable() -> None:
    """max_bytes sets the cap, counted in UTF-8 bytes even for str input."""
    assert "larger than 10 bytes" in refusal('["ééééé"]', max_bytes=10)


def test_deep_nesting_is_refused() -> None:
    """Nesting 100 deep is over the default cap of 32 and refused without recursing."""
    assert "nested deeper than 32 levels" in refusal(b"[" * 100 + b"]" * 100)


def test_very_deep_nesting_does_not_crash() -> None:
    """A million brackets get the same clear refusal, never a RecursionError."""
    assert "nested deeper" in refusal(b"[" * 500_000 + b"]" * 500_000)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    """Depth counts structure only; brackets in string values are text."""
    assert loads_document(b'["' + b"[{" * 100 + b'"]', max_depth=2) == ["[{" * 100]


def test_depth_at_the_cap_is_accepted() -> None:
    """Exactly max_depth levels of nesting pass."""
    assert loads_document(b"[[[]]]", max_depth=3) == [[[]]]


def test_invalid_json_names_line_and_column() -> None:
    """Syntax errors say where they are."""
    assert refusal(b'{\n  "id": 1,\n}').startswith("invalid JSON at line 3 column 1")


def test_duplicate_keys_are_refused() -> None:
    """Which duplicate wins is parser-specific, so a repeated key is refused by name."""
    assert refusal(b'{"lines": [{"quantity": 1, "quantity": 900}]}') == (
        "duplicate key 'quantity' in one object"
    )


def test_an_exponent_decimal_cannot_hold_is_refused_not_raised() -> None:
    """Found by the fast/slow path comparison: Decimal raised InvalidOperation (an
    ArithmeticError no caller catches) for an exponent past its own limits."""
    assert "out of range" in refusal("1e999123456789012345678901234567890")
    assert "out of range" in refusal('{"price": 1.5e-999999999999999999999}')


def test_absurd_exponent_is_refused() -> None:
    """1e999999 would become a million digits when written out, so it is refused on reading."""
    assert "out of range" in refusal(b"[1e999999]")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.10"), b"12.1"),
        (Decimal("100"), b"100"),
        (Decimal("1E+2"), b"100"),
        (Decimal("0.000"), b"0"),
        (Decimal("-0"), b"0"),
        (Decimal("1E-7"), b"0.0000001"),
        (Decimal("0.30"), b"0.3"),
        (Decimal("123456789012345678901234567890.5"), b"123456789012345678901234567890.5"),
    ],
)
def test_decimal_is_written_as_shortest_exact_number(value: Decimal, expected: bytes) -> None:
    """Decimals are written exactly, trailing zeros dropped, never in exponent notation."""
    assert dumps_canonical(value) == expected


def test_decimal_sums_stay_exact() -> None:
    """0.1 + 0.2 in Decimal is written as 0.3, never 0.30000000000000004."""
    assert dumps_canonical({"total": Decimal("0.1") + Decimal("0.2")}) == b'{"total":0.3}'


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**40, -(10**40)])
def test_integers_beyond_64_bits_are_written_exactly(value: int) -> None:
    """Big integers go out digit for digit."""
    assert dumps_canonical([value]) == f"[{value}]".encode()


def test_output_is_compact_and_keeps_insertion_order() -> None:
    """No spaces; keys in insertion order, not sorted; UTF-8 text unescaped."""
    assert (
        dumps_canonical({"b": 1, "a": [True, None, "é"]}) == '{"b":1,"a":[true,null,"é"]}'.encode()
    )


def test_output_is_deterministic() -> None:
    """The same object always yields the same bytes."""
    obj = {"id": "A1", "lines": [{"price": Decimal("12.10"), "qty": 2}]}
    assert dumps_canonical(obj) == dumps_canonical(json.loads(json.dumps(obj, default=str)) | obj)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan"), float("inf")])
def test_non_finite_numbers_are_not_written(value: object) -> None:
    """NaN and infinities cannot be written as JSON; they raise instead of becoming null."""
    with pytest.raises(ValueError):
        dumps_canonical({"x": value})


def test_payload_hash_is_hex_sha256_of_the_bytes() -> None:
    """payload_hash is the hex SHA-256 of exactly the bytes given."""
    assert payload_hash(b"{}") == hashlib.sha256(b"{}").hexdigest()


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30))
def test_decimal_round_trips_exactly(value: Decimal) -> None:
    """Whatever Decimal is written comes back equal through json.loads(parse_float=Decimal)."""
    text = dumps_canonical(value)
    assert b"e" not in text.lower()
    assert Decimal(str(json.loads(text, parse_float=Decimal))) == value


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**9))
def test_written_money_reads_back_through_loads_document(value: Decimal) -> None:
    """dumps_canonical and loads_document are inverse on money amounts."""
    assert loads_document(dumps_canonical({"p": value}))["p"] == value


# --- the orjson fast path gives the same verdicts as the slow path ----------------------------

_JSON_PIECES = st.sampled_from(
    [
        '"a"',
        '"\\ud800"',
        '"\\udc00x"',
        '"\\ud83d\\ude00"',
        "1",
        "1.10",
        "1e999",
        "-0.0",
        "123456789012345678901234567890",
        "NaN",
        "Infinity",
        "true",
        "null",
        '"\u00e9"',
        '{"k": 1, "k": 2}',
        '{"\\ud800": 1}',
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        '"k"',
    ]
)


def _verdict(data: str) -> tuple[str, object]:
    try:
        return "ok", loads_document(data, max_depth=2)
    except InvalidOrder as exc:
        return "refused", exc.problems[0].message


def _slow_verdict(data: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, object]:
    def refuse(_data: object) -> object:
        raise orjson.JSONDecodeError("forced", "", 0)

    with monkeypatch.context() as patch:
        patch.setattr(jsonio.orjson, "loads", refuse)
        return _verdict(data)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.lists(_JSON_PIECES, max_size=12).map("".join),
        st.recursive(
            st.one_of(_JSON_PIECES, st.text(max_size=5).map(lambda t: json.dumps(t))),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
                st.lists(st.tuples(st.text(max_size=3), inner), max_size=3).map(
                    lambda kv: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in kv) + "}"
                ),
            ),
            max_leaves=12,
        ),
    )
)
def test_the_fast_path_agrees_with_the_slow_path(data: str) -> None:
    """Whether orjson pre-checks a document or the slow path (depth scan, stdlib parse, string
    scan) does it alone, the document is refused by both or accepted by both as the same value
    (lone surrogates, depth, duplicates, NaN, exponents, big integers)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = _verdict(data), _slow_verdict(data, monkeypatch)
    assert fast[0] == slow[0], (data, fast, slow)
    if fast[0] == "ok":
        assert fast == slow
