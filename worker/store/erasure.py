"""Privacy requests: remove one customer's personal data from the dead letters and the ledger.

The dead-letter store keeps an index by email hash (`DeadLetters.erase_personal_data`). The
ledger keeps none (the producers' hot path should not pay for a rare request), so its orders are
found by walking the state indexes with ZSCAN: every order is in exactly one of them, so no key
name is ever parsed and no order is missed. In each raw order that carries the email, names,
emails, phones and addresses are replaced by "[erased]" (in a payload a replay stored for
re-sending, `resend_payload`, too); emails in attempt excerpts and the last
error are masked too. The version and raw hash are kept, so the pipeline sees nothing new and a
re-send of the original by a producer is still recognised as unchanged.

An order still on its way (pending, submitting, waiting for a retry) is not rewritten: the worker
would send the erased text to Jetti. It is reported, and a later run (once it settled) erases it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import redis

from worker.core.dead_entry import ERASED
from worker.core.keys import Keys
from worker.core.privacy import find_emails, mask_text, scrub_bytes
from worker.core.states import OrderState
from worker.store.dead_letters import DeadLetters
from worker.store.ledger_schema import OrderField

# Order keys read per ZSCAN round and raw bodies per pipelined read.
SCAN_COUNT = 500


@dataclass
class ErasureResult:
    """What an erasure touched. `in_flight` lists orders left for a later run."""

    dead_letters: int = 0
    ledger_orders: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)


def _order_keys(client: redis.Redis[bytes], keys: Keys) -> Iterator[tuple[str, OrderState]]:
    for state in OrderState:
        for member, _score in client.zscan_iter(keys.state_index(state), count=SCAN_COUNT):
            yield member.decode(), state


def _chunks(
    items: Iterator[tuple[str, OrderState]], size: int
) -> Iterator[list[tuple[str, OrderState]]]:
    chunk: list[tuple[str, OrderState]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def erase_customer(
    client: redis.Redis[bytes], keys: Keys, email: str, *, now: float
) -> ErasureResult:
    """Erase the personal data of the customer with `email` (case-insensitive) everywhere."""
    wanted = email.strip().lower()
    result = ErasureResult(
        dead_letters=DeadLetters(client, keys).erase_personal_data(email, now=now)
    )
    for chunk in _chunks(_order_keys(client, keys), SCAN_COUNT):
        pipe = client.pipeline(transaction=False)
        for key, _state in chunk:
            pipe.hmget(
                keys.order(key),
                [OrderField.RAW, OrderField.RESEND_PAYLOAD, OrderField.PREV_RAW],
            )
        bodies = pipe.execute()
        for (key, state), (raw, resend, prev) in zip(chunk, bodies, strict=True):
            if wanted not in find_emails(raw) | find_emails(resend) | find_emails(prev):
                continue
            if not state.is_final:
                result.in_flight.append(key)
            elif _erase_order(client, keys, key, raw, resend):
                result.ledger_orders.append(key)
    return result


def _erase_order(
    client: redis.Redis[bytes],
    keys: Keys,
    order_key: str,
    seen: bytes | None,
    seen_resend: bytes | None,
) -> bool:
    """Rewrite one order's raw body, the payload a replay stored for re-sending
    (`resend_payload`), the version it replaced (`prev_raw`), attempts and last error, unless a
    new version replaced what was read (the next run looks at that one)."""
    order, attempts_key = keys.order(order_key), keys.order_attempts(order_key)
    while True:
        with client.pipeline() as pipe:
            try:
                pipe.watch(order, attempts_key)
                # WATCHing pipelines run commands at once until multi(); the stubs type them
                # as queued.
                now_mode = cast("redis.Redis[bytes]", pipe)
                raw, resend = now_mode.hmget(order, [OrderField.RAW, OrderField.RESEND_PAYLOAD])
                if raw != seen or resend != seen_resend:
                    return False
                last_error = now_mode.hget(order, OrderField.LAST_ERROR)
                previous = now_mode.hget(order, OrderField.PREV_RAW)
                rows = now_mode.lrange(attempts_key, 0, -1)
                pipe.multi()
                if raw is not None:
                    pipe.hset(order, OrderField.RAW, scrub_bytes(raw, ERASED) or b"")
                if resend:
                    pipe.hset(order, OrderField.RESEND_PAYLOAD, scrub_bytes(resend, ERASED) or b"")
                if previous:
                    pipe.hset(order, OrderField.PREV_RAW, scrub_bytes(previous, ERASED) or b"")
                if last_error is not None:
                    pipe.hset(
                        order, OrderField.LAST_ERROR, mask_text(last_error.decode(), ERASED) or ""
                    )
                if rows:
                    pipe.delete(attempts_key)
                    pipe.rpush(attempts_key, *(_erase_attempt_row(r) for r in rows))
                pipe.execute()
                return True
            except redis.WatchError:
                continue


def _erase_attempt_row(row: bytes) -> bytes:
    data = json.loads(row)
    if isinstance(data.get("excerpt"), str):
        data["excerpt"] = mask_text(data["excerpt"], ERASED)
    return json.dumps(data, separators=(",", ":")).encode()
