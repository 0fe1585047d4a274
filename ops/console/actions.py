"""What an operator may change from the console, each as the CLI does it, recorded in the audit
log under the console user's name (never the OS user of the console process).

Every function returns a JSON-ready dict saying what was done, or raises `Refused` with the
HTTP status the API answers (404 nothing there, 409 the state refuses, 422 bad input with
`problems`: one line per field, as the contract names them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from worker.core.jobs import JobError
from worker.core.ports import KeyPublisher
from worker.core.privacy import hide_secrets
from worker.core.replay_plan import (
    SENDING,
    Action,
    ReplayInputError,
    ReplayMode,
    parse_corrected_raw,
)
from worker.core.states import DiscardReply, RetryNowReply
from worker.pipeline.replayer import Replayer
from worker.store.alerts import (
    AlertNotFiring,
    UnknownAlert,
    acknowledge,
    silence,
    unsilence,
)
from worker.store.audit import FLEET_PAUSE, FLEET_RESUME
from worker.store.dead_query import DeadFilter
from worker.wiring import Stores

if TYPE_CHECKING:
    from worker.publisher import Publisher

# The longest silence the console sets (a week; longer is a rule to change, not a silence).
MAX_SILENCE_S = 7 * 86400.0


class LazyPublisher:
    """The console's one publisher, built on the first key it publishes (pages never load
    Celery) and shared by the request threads."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def publish(self, order_keys: Sequence[str]) -> int:
        with self._lock:
            if self._publisher is None:
                from worker.wiring import publisher

                self._publisher = publisher(self._stores.settings)
            return self._publisher.publish(order_keys)


class Refused(Exception):
    """An action not done: `status` is the HTTP status to answer, `problems` the per-field
    errors of an invalid corrected order."""

    def __init__(self, status: int, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)


def pause(stores: Stores, *, actor: str, reason: str, now: float | None = None) -> dict[str, Any]:
    """Pause submission for the whole fleet (the breaker, as `jetti-relay pause`)."""
    now = time.time() if now is None else now
    text = reason.strip() or f"paused from the console by {actor}"
    stores.audit.record(FLEET_PAUSE, actor=actor, details={"reason": text}, now=now)
    stores.breaker.pause(text, now=now)
    return {"breaker": stores.breaker.state().state}


def resume(stores: Stores, *, actor: str, now: float | None = None) -> dict[str, Any]:
    """Resume submission (closes a paused or tripped breaker, as `jetti-relay resume`)."""
    now = time.time() if now is None else now
    before = stores.breaker.state().state
    stores.audit.record(FLEET_RESUME, actor=actor, details={"was": before}, now=now)
    stores.breaker.resume(now=now)
    return {"breaker": stores.breaker.state().state, "was": before}


def retry(stores: Stores, order_key: str, *, actor: str, publisher: KeyPublisher) -> dict[str, Any]:
    """Retry an order now (`order retry`): due at once, or published again when pending."""
    reply = stores.ledger.retry_now(order_key, actor=actor, now=time.time())
    if reply is RetryNowReply.MISSING:
        raise Refused(404, f"no order under {order_key!r}")
    if not reply.done:
        raise Refused(409, f"order {order_key!r} {reply.refusal}")
    if reply is RetryNowReply.REPUBLISH:
        publisher.publish([order_key])
        return {"order_key": order_key, "done": "published again"}
    return {"order_key": order_key, "done": "due now (the retry pump publishes it)"}


def discard(stores: Stores, order_key: str, *, reason: str, actor: str) -> dict[str, Any]:
    """Give up on a waiting order (`order discard`): dead, reason `discarded`, replayable."""
    if not reason.strip():
        raise Refused(422, "say why (the dead letter keeps the reason)", ["reason: required"])
    reply = stores.ledger.discard(order_key, reason_text=reason, actor=actor, now=time.time())
    if reply is DiscardReply.MISSING:
        raise Refused(404, f"no order under {order_key!r}")
    if not reply.done:
        raise Refused(409, f"order {order_key!r} {reply.refusal}")
    done = "already discarded" if reply is DiscardReply.ALREADY else "discarded"
    return {"order_key": order_key, "done": done}


def replay_one(
    stores: Stores,
    order_key: str,
    *,
    actor: str,
    publisher: KeyPublisher,
    raw: str | None = None,
) -> dict[str, Any]:
    """Replay one dead letter through `worker.pipeline.replayer` as `dlq replay KEY` does, or
    with a corrected raw order as `dlq replay KEY --raw-file` does: validated with the same
    contract as enqueue, every problem returned per field (422) and nothing replayed."""
    entry = stores.dead.get(order_key)
    if entry is None:
        raise Refused(404, f"no dead letter under {order_key!r}")
    corrected = None
    mode = ReplayMode.RETRANSFORM
    if raw is not None:
        order = stores.ledger.get(order_key)
        stored = order.raw if order is not None and order.raw is not None else entry.raw
        try:
            corrected = parse_corrected_raw(
                raw.encode(),
                order_key=order_key,
                where="raw",
                stored_raw=stored,
                now_s=time.time(),
                max_future_skew_s=stores.settings.max_future_skew_s,
            )
        except ReplayInputError as exc:
            problems = [line.removeprefix("raw: ") for line in str(exc).splitlines()]
            invalid = "the corrected order is invalid: nothing replayed"
            raise Refused(422, invalid, problems) from exc
        mode = ReplayMode.CORRECTED_RAW
    replayer = Replayer(
        ledger=stores.ledger,
        dead_letters=stores.dead,
        publisher=publisher,
        audit=stores.audit,
        actor=actor,
    )
    try:
        step = replayer.replay(entry, mode=mode, corrected=corrected)
    except ReplayInputError as exc:
        raise Refused(409, str(exc)) from exc
    result: dict[str, Any] = hide_secrets(
        {
            "order_key": order_key,
            "action": str(step.action),
            "why": step.why,
            "sent": step.action in SENDING,
        },
        stores.settings.secret_values,
        "[secret]",
    )
    if step.action is Action.NOT_REPLAYABLE:
        raise Refused(409, f"{order_key}: not replayable ({result['why']})")
    return result


def create_job(stores: Stores, flt: DeadFilter, *, actor: str) -> dict[str, Any]:
    """Start a bulk replay job over the dead letters `flt` selects (`dlq replay --job`): the
    keys are snapshotted now and the worker fleet runs it."""
    from ops.dlq.jobs import create_replay_job

    job = create_replay_job(stores, flt, options={}, actor=actor, now=time.time())
    return {"job": job.to_dict(), "done": f"job {job.id} over {job.total} dead letters"}


def cancel_job(stores: Stores, job_id: str, *, actor: str) -> dict[str, Any]:
    """Cancel a replay job (`dlq replay --cancel`): at once when pending, after the chunk in
    hand when running."""
    from ops.dlq.jobs import JobNotFound
    from ops.dlq.jobs import cancel_job as cancel

    try:
        job = cancel(stores, job_id, actor=actor)
    except JobNotFound as exc:
        raise Refused(404, f"no job {job_id!r}") from exc
    except JobError as exc:
        raise Refused(422, str(exc), [f"id: {exc}"]) from exc
    return {"job": job.to_dict(), "done": f"job {job.id}: {job.state}"}


def alert_ack(stores: Stores, name: str, *, actor: str) -> dict[str, Any]:
    """Acknowledge a firing alert (`alerts ack`)."""
    try:
        state = acknowledge(stores.client, stores.keys, name, actor)
    except UnknownAlert as exc:
        raise Refused(404, str(exc)) from exc
    except AlertNotFiring as exc:
        raise Refused(409, str(exc)) from exc
    return state.to_dict(now=time.time())


def alert_silence(stores: Stores, name: str, *, actor: str, for_s: float | None) -> dict[str, Any]:
    """Silence an alert for `for_s` seconds (`alerts silence`); None or 0 ends a silence."""
    now = time.time()
    try:
        if not for_s:
            state = unsilence(stores.client, stores.keys, name, actor, now=now)
        else:
            if not 0 < for_s <= MAX_SILENCE_S:
                raise Refused(422, "bad duration", [f"for_s: between 1 and {MAX_SILENCE_S:g}"])
            state = silence(stores.client, stores.keys, name, now + for_s, actor, now=now)
    except UnknownAlert as exc:
        raise Refused(404, str(exc)) from exc
    return state.to_dict(now=now)
