"""The retry pump and the sweeper: periodic, leader-elected, safe to run on several hosts.

- The pump moves due orders from the retry schedule back onto the queue (DESIGN.md principle 5:
  retries never wait inside Celery).
- The sweeper is the recovery path after a lost message, a flushed queue or a killed worker
  (principle 1): it re-publishes orders stuck in PENDING or SUBMITTING for too long (SUBMITTING
  ones one per message, PENDING ones later while the queue has a backlog), and sheds the
  bodies of settled orders down to tombstones. Crash loops are caught when the re-published
  message starts its delivery (the ledger counts unfinished deliveries).

`Maintenance.start` runs both in a daemon thread (with the reconciler in its own, when given):
what `jetti-relay worker` and `jetti-relay pump` start; `worker.runtime.build_maintenance`
wires it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from worker.core.states import OrderState
from worker.loop_failures import REPEAT_LOG_EVERY_S, FailureStreak
from worker.pipeline.ports import BatchPublisher, MaintenanceLedger, RoleLeader

log = structlog.get_logger("jetti_relay.maintenance")

# Most orders one pump or sweep pass moves; the next pass takes the rest.
PASS_LIMIT = 5000
# A SUBMITTING order is only stuck once its delivery would have hit the hard time limit,
# plus this margin for the worker to write its outcome.
SUBMITTING_MARGIN_S = 30.0
# While the orders queue holds messages, a PENDING order is re-published only after this many
# times the stuck threshold: its message is most likely queued, not lost (see _stuck_pending).
BACKLOG_STUCK_FACTOR = 4


class Periodic(Protocol):
    """A leader-elected job with its own loop (the reconciler): `run(stop)` until stop is set."""

    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class MaintenanceConfig:
    """Intervals and thresholds (seconds)."""

    holder: str
    pump_interval_s: float
    sweep_interval_s: float
    stuck_after_s: float
    hard_time_limit_s: float

    @property
    def submitting_stuck_after_s(self) -> float:
        return max(self.stuck_after_s, self.hard_time_limit_s + SUBMITTING_MARGIN_S)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    republished_pending: int = 0
    republished_submitting: int = 0
    shed: int = 0
    led: bool = True


class Maintenance:
    """Runs the pump and the sweeper, each only while this holder leads its role."""

    def __init__(
        self,
        *,
        config: MaintenanceConfig,
        ledger: MaintenanceLedger,
        leader: RoleLeader,
        publisher: BatchPublisher,
        heartbeat: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        reconciler: Periodic | None = None,
        queue_length: Callable[[], int] | None = None,
        periodics: Sequence[tuple[str, Periodic]] = (),
        failure_log_every_s: float = REPEAT_LOG_EVERY_S,
    ) -> None:
        self._cfg = config
        self._ledger = ledger
        self._leader = leader
        self._publisher = publisher
        self._heartbeat = heartbeat
        self._clock = clock
        self._reconciler = reconciler
        self._queue_length = queue_length  # messages still queued (Publisher.queue_length)
        # More loops of their own (name, job): the replay-job runner, the notifier.
        self._periodics = tuple(periodics)
        self._failure_log_every_s = failure_log_every_s  # see worker.loop_failures

    def pump_once(self) -> int:
        """Publish every due retry (up to PASS_LIMIT); returns how many orders went back."""
        if not self._leader.try_lead(
            "pump", holder=self._cfg.holder, ttl_s=self._cfg.pump_interval_s * 5
        ):
            return 0
        now = self._clock()
        due = self._ledger.pop_due_retries(now=now, limit=PASS_LIMIT)
        if due:
            self._publisher.publish(due)
            log.info("retries_republished", count=len(due))
        if self._heartbeat:
            self._heartbeat("pump", now)
        return len(due)

    def sweep_once(self) -> SweepReport:
        """Re-publish stuck orders and shed settled bodies, if this holder leads the sweeper."""
        if not self._leader.try_lead(
            "sweeper", holder=self._cfg.holder, ttl_s=self._cfg.sweep_interval_s * 5
        ):
            return SweepReport(led=False)
        now = self._clock()
        pending = self._stuck_pending(now)
        if pending:
            self._ledger.mark_republished(pending, now=now)
            self._publisher.publish(pending)
            log.warning(
                "stuck_orders_republished", state=str(OrderState.PENDING), count=len(pending)
            )
        submitting = self._ledger.stuck(
            OrderState.SUBMITTING,
            older_than=now - self._cfg.submitting_stuck_after_s,
            limit=PASS_LIMIT,
        )
        if submitting:
            self._ledger.mark_republished(submitting, now=now)
            # One order per message: a delivery that died (or ended without an outcome) may
            # have been a poison order's, and re-forming its batch would make every innocent
            # order in it share the poison's crash loop (reliability #11).
            self._publisher.publish(submitting, batch_size=1)
            log.warning(
                "stuck_orders_republished", state=str(OrderState.SUBMITTING), count=len(submitting)
            )
        shed = self._ledger.shed_settled(now=now, limit=PASS_LIMIT)
        if self._heartbeat:
            self._heartbeat("sweeper", now)
        return SweepReport(
            republished_pending=len(pending), republished_submitting=len(submitting), shed=shed
        )

    def _stuck_pending(self, now: float) -> list[str]:
        """PENDING orders to re-publish: last (re-)published `stuck_after_s` ago, or
        BACKLOG_STUCK_FACTOR times that while the queue still holds messages.

        A PENDING order's message is either lost or still queued. While the queue is empty,
        every message published before has been taken, so an old PENDING order lost its own.
        Under a backlog its message is most likely still waiting in line, and re-publishing it
        every `stuck_after_s` would add one duplicate message per order per pass to the very
        queue that is behind (reliability L9); a lost message then waits longer, bounded.
        The index score is the time of the order's last publish (`touch` refreshes it), and a
        pass moves at most PASS_LIMIT orders.
        """
        after_s = self._cfg.stuck_after_s
        if self._queue_length is not None and self._queue_length() > 0:
            after_s *= BACKLOG_STUCK_FACTOR
        return self._ledger.stuck(OrderState.PENDING, older_than=now - after_s, limit=PASS_LIMIT)

    def run(self, stop: threading.Event) -> None:
        """Pump and sweep on their intervals until `stop` is set; errors are logged, not fatal:
        the first of a streak with its traceback, then a line at most every
        `failure_log_every_s` while the same error repeats (`FailureStreak`).

        The reconciler, when given, runs in its own thread: its throttled reads of Jetti's
        import log must never hold up the pump.
        """
        loops = list(self._periodics)
        if self._reconciler is not None:
            loops.insert(0, ("reconciler", self._reconciler))
        for name, loop in loops:
            threading.Thread(target=loop.run, args=(stop,), name=name, daemon=True).start()
        failures = FailureStreak(
            log,
            failed="maintenance_pass_failed",
            recovered="maintenance_pass_recovered",
            every_s=self._failure_log_every_s,
        )
        next_sweep = 0.0

        def one_pass() -> None:
            nonlocal next_sweep
            self.pump_once()
            if time.monotonic() >= next_sweep:
                self.sweep_once()
                next_sweep = time.monotonic() + self._cfg.sweep_interval_s

        while not stop.is_set():
            # Redis may be restarting: a failed pass is logged and tried again next tick.
            failures.attempt(one_pass)
            stop.wait(self._cfg.pump_interval_s)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Start `run` in a daemon thread named "maintenance"; it ends once `stop` is set."""
        thread = threading.Thread(target=self.run, args=(stop,), name="maintenance", daemon=True)
        thread.start()
        return thread
