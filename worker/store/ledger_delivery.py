"""The worker's half of the ledger: claim a batch of orders, then write how each one ended.

Two scripts per message: `begin_batch` (per order: the lock, then `begin_one`: what the worker
must do) and `finish_batch` (per order: the outcome, the finish marker, the lock release). The
single-order writes of the cancel path (`schedule_retry`, `mark_dead`) are one-item calls of
`finish_batch`, so there is one Lua path per transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from worker.core.keys import Keys
from worker.core.records import (
    Attempt,
    Claim,
    Dead,
    Delivery,
    DeliveryAction,
    Finish,
    Retry,
    Version,
)
from worker.core.states import DeadReason, DeadReply, FinishReply
from worker.store.ledger_schema import (
    decode_finish,
    decode_pairs,
    encode_finish,
)
from worker.store.replication import failing_over
from worker.store.scripts import Arg, LedgerScripts

# `ride_out`: the pause before the first retry, doubled after each one up to the longest. A
# Sentinel failover takes the down-after time plus a second or two.
RIDE_OUT_FIRST_PAUSE_S = 0.25
RIDE_OUT_LONGEST_PAUSE_S = 2.0

T = TypeVar("T")


def ride_out(
    call: Callable[[], T],
    *,
    retry_for_s: float,
) -> T:
    """`call()`, sent again with growing pauses while it fails because Redis is changing hands
    (`failing_over`), until it goes through or `retry_for_s` has passed; then its last error is
    raised, as is any other error at once. Only for a call that is safe to run twice."""
    deadline = time.monotonic() + retry_for_s
    pause_s = RIDE_OUT_FIRST_PAUSE_S
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            if not failing_over(exc) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, RIDE_OUT_LONGEST_PAUSE_S)


class DeliveryOps:
    """`Ledger`'s delivery operations (the class itself is worker.store.ledger.Ledger)."""

    _client: redis.Redis[bytes]
    _keys: Keys
    _scripts: LedgerScripts

    def begin_batch(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        lock_head_tail: tuple[str, str],
        lock_ttl_s: float,
        lock_busy_due_at: float,
        task_id: str,
        worker: str,
        now: float,
        max_unfinished: int,
        fill: int = 0,
        fill_token: str = "",
        retry_for_s: float = 0.0,
    ) -> list[Claim]:
        """Lock and begin the delivery of every `(order_key, lock token)` in ONE script.

        Per order, atomically and in order: `SET NX PX` the per-order lock (`lock_head_tail`:
        the lock key around the order key) with the token; a lock held elsewhere reschedules the
        order to `lock_busy_due_at` without spending an attempt (PENDING becomes RETRY_WAIT;
        RETRY_WAIT keeps the earlier due time; SUBMITTING and final states are left alone) and
        gives `locked=True`. Otherwise the delivery begins:

        NOTHING_TO_DO: a final state (SUBMITTED, CONFIRMED, CANCELLED, DEAD); every newer version
        has already moved the order back to PENDING. CRASH_LOOP: deliveries started minus
        finished >= `max_unfinished`; nothing changes, the caller dead-letters it. NOT_DUE:
        RETRY_WAIT before its due time. PROCEED: state SUBMITTING, deliveries_started += 1,
        removed from the retry schedule. UNKNOWN: no entry. The worker writes a finish marker
        only for a delivery that ended with an outcome, so CRASH_LOOP means `max_unfinished`
        deliveries ended without one (a dead process, an exception, the soft time limit) since
        the budget was last reset.

        The caller keeps the lock only for PROCEED and CRASH_LOOP (`Claim.token`, with the entry
        as it stands after the call) and must hand it back through `finish_batch`. For
        NOTHING_TO_DO and NOT_DUE the entry carries only the state. When several orders are
        named, a suspect below the crash-loop bound is not claimed: `isolate=True`, for the
        caller to publish it in a message of its own.

        `fill` > 0 also takes on up to that many of the oldest PENDING orders not named here
        (none when a named order is a suspect, i.e. a delivery of it ended without an outcome
        since its budget was reset, and never a suspect itself)
        (their messages are still queued; they will find the orders done or in flight), with
        tokens `fill_token:1`, `fill_token:2`, ...: only those begun (PROCEED or CRASH_LOOP)
        are returned, after the named ones. One whose lock is held elsewhere is left untouched.

        The script is repeat-safe: the same call again (the same tokens) answers as the first
        run did, named orders and fillers alike, with no second delivery counted; so
        `retry_for_s` rides out a failover as `finish_batch` does.
        """
        if not claims:
            return []
        head, tail = lock_head_tail
        flat: list[str] = []
        for key, token in claims:
            flat += [key, token]
        args: tuple[Arg, ...] = (
            task_id,
            worker,
            max_unfinished,
            head,
            tail,
            max(1, int(lock_ttl_s * 1000)),
            repr(float(lock_busy_due_at)),
            max(0, fill),
            fill_token,
            *flat,
        )
        reply = ride_out(
            lambda: self._scripts.run("begin_batch", now, "", *args),
            retry_for_s=retry_for_s,
        )
        named = [(key, token, row) for (key, token), row in zip(claims, reply, strict=False)]
        extra = [(row[2].decode(), row[3].decode(), row) for row in reply[len(claims) :]]
        return [_claim(key, token, row) for key, token, row in [*named, *extra]]

    def finish_batch(
        self,
        items: Sequence[Finish],
        *,
        lock_head_tail: tuple[str, str],
        now: float,
        also: Callable[[Any], None] | None = None,
        retry_for_s: float = 0.0,
    ) -> list[FinishReply]:
        """Write every order's outcome, its finish marker and its lock release in ONE script.

        Per item, in order: the outcome (`Submitted`, `Retry`, `Dead`; None = nothing), the
        finish marker when `finish` is set, then the lock released if `token` still holds it.
        `also(pipeline)` may queue more commands (counters) into the same round trip. Returns
        one named reply per item, from its outcome's enum: `SubmitReply` (REPUBLISH: a newer
        version is waiting and must be re-published), `RetryReply`, `DeadReply` (SUPERSEDED: a
        newer version is PENDING instead and must be re-published), `NoReply` for None.

        With `retry_for_s`, a failover (`failing_over`: connection lost, READONLY, NOREPLICAS)
        is ridden out: the same call is sent again, with growing pauses, until it goes through
        or `retry_for_s` has passed; then the last error is raised. The script is repeat-safe
        for every item with a token (finish_batch.lua), so a call that ran but whose reply was
        lost answers the same the second time and counts nothing twice (the `also` counters
        excepted: they may count twice, or not at all when the call gives up).
        """
        if not items and also is None:
            return []
        calls = []
        if items:
            head, tail = lock_head_tail
            calls.append(self._scripts.argv(now, "", head, tail, encode_finish(items)))
        replies = ride_out(
            lambda: self._scripts.run_pipelined("finish_batch", calls, also=also),
            retry_for_s=retry_for_s,
        )
        return decode_finish(items, replies[0]) if items else []

    # --- one order at a time: one-item calls of the batch scripts --------------------------
    def _finish_one(self, item: Finish, now: float) -> FinishReply:
        (reply,) = self.finish_batch([item], lock_head_tail=("", ""), now=now)
        return reply

    def schedule_retry(
        self,
        order_key: str,
        *,
        due_at: float,
        spend_attempt: bool,
        now: float,
        attempt: Attempt | None = None,
    ) -> None:
        """RETRY_WAIT until `due_at` (epoch s), in the retry schedule, in one script.

        `spend_attempt` counts the attempt against the budget (False for a 429 or a taken
        lock). `first_failure_at` is set on the first real failure (spent or with an attempt).
        """
        self._finish_one(Finish(order_key, Retry(due_at, spend_attempt, attempt), False, None), now)

    def mark_dead(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        now: float,
        attempt: Attempt | None = None,
        version: Version | None = None,
    ) -> bool:
        """DEAD with `reason`, out of the retry schedule. The dead-letter entry is the caller's.

        `version` is the version the caller gave up on. Returns True, with the order PENDING
        again on a fresh budget instead of DEAD, when a newer version is stored: the caller must
        re-publish it and resolve its dead letter. False otherwise (DEAD, or an unknown key)."""
        outcome = Dead(reason, attempt, version)
        reply = self._finish_one(Finish(order_key, outcome, False, None), now)
        return reply is DeadReply.SUPERSEDED


def _claim(key: str, token: str, row: list[Any]) -> Claim:
    """One begin_batch.lua row as a `Claim`."""
    action = row[0].decode()
    if action == "locked":
        return Claim(key, None, None, locked=True)
    if action == "isolate":
        return Claim(key, None, None, isolate=True)
    act = DeliveryAction(action)
    if act is DeliveryAction.UNKNOWN:
        return Claim(key, None, Delivery(act, None))
    held = act in (DeliveryAction.PROCEED, DeliveryAction.CRASH_LOOP)
    return Claim(key, token if held else None, Delivery(act, decode_pairs(key, row[1])))
