"""The order hash (`Keys.order`): its field names, decoding it, and encoding finish ops.

This is the only Python module that spells a field of the order hash: everything else reads an
`OrderEntry` (`decode_entry`) or names a field through `OrderField`. The Lua side spells the
same names in worker/store/lua/prelude.lua and the scripts. A new field starts here and there.

It also encodes the outcomes `Ledger.finish_batch` writes (`Submitted`, `Retry`, `Dead` inside a
`Finish`, plain records in worker.core.records: the worker builds them) as finish_batch.lua's
JSON ops, and decodes that script's per-op integers into the named replies of worker.core.states.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import orjson

from worker.core.records import Attempt, Dead, Finish, OrderEntry, Retry, Submitted, Version
from worker.core.states import (
    DeadReason,
    DeadReply,
    FinishReply,
    NoReply,
    OrderState,
    RetryReply,
    SubmitReply,
)


class OrderField(StrEnum):
    """Fields of the order hash. Times are epoch seconds as text; versions are ms and a seq."""

    RAW = "raw"  # the latest raw order (absent in a tombstone)
    RAW_HASH = "raw_hash"  # sha256 of `raw`: a byte-identical re-send is UNCHANGED
    V_TS = "v_ts"  # version: `updated_at` in epoch ms
    V_SEQ = "v_seq"  # version: arrival sequence
    STATE = "state"  # an OrderState
    STATE_SINCE = "state_since"
    FIRST_SEEN_AT = "first_seen_at"
    ENQUEUED_AT = "enqueued_at"  # when the latest version was enqueued
    SUBMITTED_AT = "submitted_at"
    SOURCE = "source"  # the producer that sent the latest version
    PAYLOAD_HASH = "payload_hash"  # of the payload last sent
    SENT_V_TS = "sent_v_ts"  # the version last sent (ms)
    SENT_V_SEQ = "sent_v_seq"
    LINE_IDS = "line_ids"  # JSON array of the line ids last sent
    SALE_ID = "sale_id"
    ATTEMPTS = "attempts"  # spent from the retry budget
    FIRST_FAILURE_AT = "first_failure_at"
    NEXT_ATTEMPT_AT = "next_attempt_at"
    D_STARTED = "d_started"  # deliveries started (crash-loop bound)
    D_FINISHED = "d_finished"  # deliveries finished with an outcome
    DEAD_REASON = "dead_reason"  # a DeadReason
    LAST_ERROR = "last_error"
    STALE = "stale"  # stale copies received
    REPLAYED = "replayed"  # '1' from leaving DEAD until submitted
    RESEND_PAYLOAD = "resend_payload"  # a payload a replay asked to send as is
    CANCEL = "cancel"  # '1' once a cancelling copy is stored
    CANCELLED_VIA = "cancelled_via"  # "jetti" or "not_imported"
    CANCELLED_V_TS = "cancelled_v_ts"  # the version cancelled in Jetti (ms)
    CANCELLED_V_SEQ = "cancelled_v_seq"
    REPAIRS = "repairs"  # re-sends by the reconciler since the last confirmation
    SHED_AT = "shed_at"  # when the body was shed to a tombstone
    PREV_RAW = "prev_raw"  # the raw order the latest version replaced (shed with the body)
    TRACE = "trace"  # W3C traceparent of the producer's span for the latest version
    FIN_TOKEN = "fin_token"  # lock token of the last delivery whose outcome was written
    FIN_REPLY = "fin_reply"  # finish_batch.lua's answer for it (a repeat of the call gets it)

    @property
    def key(self) -> bytes:
        """The field name as Redis answers it (a key of HGETALL's dict)."""
        return self.value.encode()


def _text(data: Mapping[bytes, bytes], field: OrderField) -> str | None:
    value = data.get(field.key)
    return None if value is None or value == b"" else value.decode()


def _float(data: Mapping[bytes, bytes], field: OrderField) -> float | None:
    value = _text(data, field)
    return None if value is None else float(value)


def _int(data: Mapping[bytes, bytes], field: OrderField) -> int:
    value = _text(data, field)
    return 0 if value is None else int(value)


def decode_entry(order_key: str, data: Mapping[bytes, bytes]) -> OrderEntry:
    """The `OrderEntry` of an order hash as HGETALL answers it (a non-empty dict)."""
    f = OrderField
    sent_ts = _text(data, f.SENT_V_TS)
    sale_id = _text(data, f.SALE_ID)
    reason = _text(data, f.DEAD_REASON)
    line_ids = _text(data, f.LINE_IDS)
    return OrderEntry(
        order_key=order_key,
        raw=data.get(f.RAW.key),
        raw_hash=_text(data, f.RAW_HASH) or "",
        version=Version(_int(data, f.V_TS), _int(data, f.V_SEQ)),
        state=OrderState(_text(data, f.STATE) or ""),
        state_since=_float(data, f.STATE_SINCE) or 0.0,
        first_seen_at=_float(data, f.FIRST_SEEN_AT) or 0.0,
        enqueued_at=_float(data, f.ENQUEUED_AT) or 0.0,
        submitted_at=_float(data, f.SUBMITTED_AT),
        source=_text(data, f.SOURCE),
        payload_hash=_text(data, f.PAYLOAD_HASH),
        sent_version=None if sent_ts is None else Version(int(sent_ts), _int(data, f.SENT_V_SEQ)),
        line_ids=tuple(json.loads(line_ids)) if line_ids else (),
        sale_id=None if sale_id is None else int(sale_id),
        attempts=_int(data, f.ATTEMPTS),
        first_failure_at=_float(data, f.FIRST_FAILURE_AT),
        next_attempt_at=_float(data, f.NEXT_ATTEMPT_AT),
        deliveries_started=_int(data, f.D_STARTED),
        deliveries_finished=_int(data, f.D_FINISHED),
        dead_reason=None if reason is None else DeadReason(reason),
        last_error=_text(data, f.LAST_ERROR),
        stale_arrivals=_int(data, f.STALE),
        replayed=_text(data, f.REPLAYED) == "1",
        resend_payload=data.get(f.RESEND_PAYLOAD.key),
        prev_raw=data.get(f.PREV_RAW.key),
        trace=_text(data, f.TRACE),
    )


def decode_pairs(order_key: str, flat: Sequence[bytes]) -> OrderEntry:
    """`decode_entry` of HGETALL as a script answers it: a flat list field, value, ..."""
    return decode_entry(order_key, dict(zip(flat[::2], flat[1::2], strict=True)))


# --- versions as the scripts take them ----------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def version_ts_ms(updated_at: datetime | None) -> int:
    """The timestamp half of a version: epoch ms of a timezone-aware `updated_at`, else 0.

    A naive datetime counts as absent: its instant is unknown, so it cannot order versions.
    """
    if updated_at is None or updated_at.tzinfo is None or updated_at.utcoffset() is None:
        return 0
    # Integer arithmetic: a float timestamp can be off by a millisecond and flip an order.
    return (updated_at - _EPOCH) // timedelta(milliseconds=1)


def ts_arg(updated_at: datetime | None) -> str:
    """`version_ts_ms` as the record scripts take it: '' for a copy without a usable timestamp."""
    if updated_at is None or updated_at.tzinfo is None or updated_at.utcoffset() is None:
        return ""
    return str(version_ts_ms(updated_at))


def raw_hash(raw: bytes) -> str:
    """Hex sha256 of a stored raw order; equal hashes mean a byte-identical re-send."""
    return hashlib.sha256(raw).hexdigest()


# --- finish_batch ---------------------------------------------------------------------------
def attempt_json(attempt: Attempt | None) -> str:
    """An attempt as the scripts store it in the attempts list ('' for none)."""
    return "" if attempt is None else json.dumps(attempt.to_dict(), separators=(",", ":"))


def _version_args(version: Version | None) -> dict[str, str]:
    if version is None:
        return {"ts": "", "seq": ""}
    return {"ts": str(version.ts_ms), "seq": str(version.seq)}


def encode_finish(items: Sequence[Finish]) -> bytes:
    """finish_batch.lua's ARGV op list: one JSON object per item (keys: see that script)."""
    ops: list[dict[str, str]] = []
    for item in items:
        op: dict[str, str] = {
            "k": item.order_key,
            "t": item.token or "",
            "fin": "1" if item.finish else "0",
            "op": "",
        }
        outcome = item.outcome
        if isinstance(outcome, Submitted):
            op.update(
                op="submitted",
                **_version_args(outcome.version),
                hash=outcome.payload_hash,
                lines=json.dumps(list(outcome.line_ids)),
                sale="" if outcome.sale_id is None else str(outcome.sale_id),
                attempt=attempt_json(outcome.attempt),
            )
        elif isinstance(outcome, Retry):
            op.update(
                op="retry",
                due=repr(float(outcome.due_at)),
                spend="1" if outcome.spend_attempt else "0",
                attempt=attempt_json(outcome.attempt),
            )
        elif isinstance(outcome, Dead):
            op.update(
                op="dead",
                reason=str(outcome.reason),
                attempt=attempt_json(outcome.attempt),
                **_version_args(outcome.version),
            )
        ops.append(op)
    return orjson.dumps(ops)


def decode_finish(items: Sequence[Finish], replies: Sequence[int]) -> list[FinishReply]:
    """finish_batch.lua's integers, one per item, as the named reply of each item's outcome."""
    out: list[FinishReply] = []
    for item, reply in zip(items, replies, strict=True):
        code = int(reply)
        outcome = item.outcome
        if isinstance(outcome, Submitted):
            out.append(SubmitReply(code))
        elif isinstance(outcome, Retry):
            out.append(RetryReply(code))
        elif isinstance(outcome, Dead):
            out.append(DeadReply(code))
        else:
            out.append(NoReply(code))
    return out
