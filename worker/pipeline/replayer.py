"""Replaying dead letters through the normal pipeline (the logic behind `jetti-relay dlq replay`).

A replay never submits anything itself: it re-arms the order in the ledger and publishes its key,
so the worker sends it under the usual lock, idempotency and retry rules. Per order:

    1. audit record (intent; a record without an effect is better than an effect without one)
    2. `Ledger.replay`: DEAD -> PENDING with a fresh budget, atomically, only from DEAD
    3. `DeadLetters.mark_replayed(if_dead_at=...)`: the order is durably back in the pipeline
       (the ledger holds it PENDING, and the sweeper re-publishes a PENDING order nobody took)
    4. publish the key

A kill at any point is safe and a rerun sends nothing twice, because what to do is decided from
the state the previous run left (`plan`): an order still DEAD is armed; one PENDING is only
re-published (a duplicate message is harmless: the worker finds the order locked, in flight or
already SUBMITTED); one in flight or submitted is left alone. Step 3 is a compare-and-set, so a
worker that already resolved the order, or dead-lettered it again, is never overwritten.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from worker.core.dead_entry import DeadEntry
from worker.core.replay_plan import (
    Action,
    CorrectedRaw,
    ReplayMode,
    Step,
    plan,
    raw_hash,
    stored_built,
)
from worker.core.states import DeadStatus
from worker.pipeline.ports import AuditTrail, KeyPublisher, ReplayDeadLetters, ReplayLedger

# The audit action of a replay.
AUDIT_ACTION = "replay"

__all__ = ["AUDIT_ACTION", "Replayer", "stored_built"]


class Replayer:
    """Replays entries one at a time (see the module docstring for the steps)."""

    def __init__(
        self,
        *,
        ledger: ReplayLedger,
        dead_letters: ReplayDeadLetters,
        publisher: KeyPublisher,
        audit: AuditTrail,
        actor: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._dead = dead_letters
        self._publisher = publisher
        self._audit = audit
        self._actor = actor
        self._clock = clock
        self.run_id = uuid.uuid4().hex[:12]

    def plan(
        self, entry: DeadEntry, *, mode: ReplayMode, corrected: CorrectedRaw | None = None
    ) -> Step:
        """`plan` against the ledger as it is now."""
        return plan(entry, self._ledger.get(entry.order_key), mode=mode, corrected=corrected)

    def replay(
        self,
        entry: DeadEntry,
        *,
        mode: ReplayMode,
        corrected: CorrectedRaw | None = None,
        accept_line_changes: bool = False,
    ) -> Step:
        """Plan and carry out the replay of one entry; returns what was done.

        `corrected` is required with CORRECTED_RAW; `accept_line_changes` lets an update that
        drops lines already sent go through (see `Ledger.replay`). Raises ReplayInputError when
        the stored payload cannot be resent. Redis and broker errors propagate (a rerun resumes).
        """
        step = self.plan(entry, mode=mode, corrected=corrected)
        if step.action is Action.REPLAY:
            resend = None
            if mode is ReplayMode.RESEND_STORED:
                resend = entry.payload
                stored_built(resend or b"")  # refuse a malformed payload before arming
            self._record(step, mode, corrected)
            outcome, _ = self._ledger.replay(
                entry.order_key,
                now=self._clock(),
                raw=corrected.body if corrected else None,
                updated_at=corrected.updated_at if corrected else None,
                resend_payload=resend,
                accept_line_changes=accept_line_changes,
            )
            if outcome == "not_dead":
                # A worker or producer moved the order since `plan` read it: decide again.
                step = self.plan(entry, mode=mode, corrected=corrected)
                if step.action is not Action.REPUBLISH:
                    return step
            elif outcome != "rearmed":
                return Step(
                    entry.order_key, Action.NOT_REPLAYABLE, f"ledger: {outcome}", step.ledger_state
                )
        elif step.action is Action.REPUBLISH:
            self._record(step, mode, corrected)
        elif step.action is Action.SUBMITTED:
            self._dead.mark_resolved(entry.order_key, now=self._clock())
            return step
        else:
            return step
        if entry.status is DeadStatus.DEAD:
            self._dead.mark_replayed(
                entry.order_key, now=self._clock(), if_dead_at=entry.last_dead_at
            )
        self._publisher.publish([entry.order_key])
        return step

    def _record(self, step: Step, mode: ReplayMode, corrected: CorrectedRaw | None) -> None:
        details = {"run": self.run_id, "mode": str(mode), "action": str(step.action)}
        if corrected is not None:  # which correction, without the personal data in it
            details["raw_sha256"] = raw_hash(corrected.body)
        self._audit.record(
            AUDIT_ACTION,
            actor=self._actor,
            order_keys=[step.order_key],
            now=self._clock(),
            details=details,
        )
