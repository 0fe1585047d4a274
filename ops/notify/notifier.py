"""The notifier: one leader-elected loop that advances every alert and sends its messages.

Each pass (every notify_interval_s), on the process holding the `notifier` lease only:

1. read every rule (ops/notify/rules.py); a read error ends the pass with nothing changed;
2. advance each alert's record (worker/store/alerts.py): ok/resolved -> firing when its rule
   holds (`since` = now), firing -> resolved when it stops holding;
3. per sink, send what is due and not yet accepted by that sink:
   - firing: once per firing, then again every alert_repeat_s while it holds, unless
     acknowledged (the acknowledgement covers this firing only);
   - resolved: once, and only when that sink was told of the firing;
   - nothing while silenced (the records still move; once the silence ends, whatever is still
     due is sent);
4. store the record, with each sink's last accepted message. A send that fails is due again on
   the next pass, so a receiver that answered 500 gets the message once it answers 2xx.

The state is in Redis, so a new leader carries on where the old one stopped; a leader that dies
between a send and the write of its record may have the next leader send that message again
(at least once, never lost).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import redis
import structlog

from ops.notify.rules import Reading
from ops.notify.sinks import Message, SendFailed, Sink
from worker.core.keys import Keys
from worker.loop_failures import FailureStreak
from worker.store.alerts import AlertRecord, AlertState, Delivery, alert_states, save_record
from worker.store.leases import Leader

log = structlog.get_logger("jetti_relay.notifier")

# The lease role (Keys.leader("notifier")).
ROLE = "notifier"
# The lease lasts this many intervals, so a live leader keeps it between two passes.
LEASE_INTERVALS = 3
# ...and at least this long, for a pass whose sends wait out their timeouts.
MIN_LEASE_S = 30.0


@dataclass(frozen=True)
class NotifierConfig:
    """`holder`: this process (host:pid); `interval_s`, `repeat_s`: notify_interval_s and
    alert_repeat_s; `deployment`: the key prefix, named in every message."""

    holder: str
    interval_s: float
    repeat_s: float
    deployment: str

    @property
    def lease_s(self) -> float:
        return max(LEASE_INTERVALS * self.interval_s, MIN_LEASE_S)


@dataclass(frozen=True)
class PassReport:
    """What one leading pass did: messages accepted and refused, as (alert, status, sink)."""

    sent: list[tuple[str, str, str]]
    failed: list[tuple[str, str, str]]


def advance(record: AlertRecord, reading: Reading, now: float) -> AlertRecord:
    """The record after `reading` at `now` (pure): the firing and resolution transitions and
    the latest figures."""
    figures = replace(
        record,
        value=reading.value,
        threshold=reading.threshold,
        severity=reading.severity,
        summary=reading.summary,
        evaluated_at=now,
    )
    if reading.holds and record.status != "firing":
        return replace(figures, status="firing", since=now, resolved_at=None)
    if not reading.holds and record.status == "firing":
        return replace(figures, status="resolved", resolved_at=now)
    return figures


def due(
    state: AlertState, record: AlertRecord, sink: str, now: float, repeat_s: float
) -> str | None:
    """The message `sink` should get now for `record` ("firing", "resolved") or None.
    `state` carries the acknowledgement and the silence."""
    if state.silenced(now) or record.since is None:
        return None
    last = record.delivered.get(sink)
    told_of_this_firing = last is not None and last.since == record.since
    if record.status == "firing":
        if not told_of_this_firing or last is None or last.status != "firing":
            return "firing"
        acked = state.ack is not None and state.ack.since == record.since
        return "firing" if not acked and now - last.at >= repeat_s else None
    if record.status == "resolved" and told_of_this_firing and last and last.status == "firing":
        return "resolved"
    return None


class Notifier:
    """Evaluates the alerts and sends their messages while it holds the `notifier` lease."""

    def __init__(
        self,
        *,
        client: redis.Redis[bytes],
        keys: Keys,
        leader: Leader,
        read: Callable[[float], list[Reading]],
        sinks: Sequence[Sink],
        config: NotifierConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._keys = keys
        self._leader = leader
        self._read = read
        self._sinks = tuple(sinks)
        self._cfg = config
        self._clock = clock

    @property
    def sink_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._sinks)

    def pass_once(self) -> PassReport | None:
        """One pass; None when another process holds the lease (this one does nothing)."""
        if not self._leader.try_lead(ROLE, holder=self._cfg.holder, ttl_s=self._cfg.lease_s):
            return None
        now = self._clock()
        readings = self._read(now)
        states = {s.name: s for s in alert_states(self._client, self._keys)}
        report = PassReport([], [])
        for reading in readings:
            state = states[reading.name]
            record = advance(state.record, reading, now)
            if record.status != state.record.status and record.status != "ok":
                log.warning(
                    f"alert_{record.status}",
                    alert=reading.name,
                    value=reading.value,
                    threshold=reading.threshold,
                )
            record = self._deliver(state, record, now, report)
            save_record(self._client, self._keys, reading.name, record)
        return report

    def _deliver(
        self, state: AlertState, record: AlertRecord, now: float, report: PassReport
    ) -> AlertRecord:
        delivered = dict(record.delivered)
        errors: list[str] = []
        for sink in self._sinks:
            status = due(state, record, sink.name, now, self._cfg.repeat_s)
            if status is None:
                continue
            last = delivered.get(sink.name)
            message = Message(
                alert=state.name,
                status="firing" if status == "firing" else "resolved",
                severity=record.severity,
                summary=record.summary,
                value=record.value,
                threshold=record.threshold,
                since=record.since,
                deployment=self._cfg.deployment,
                repeat=status == "firing" and last is not None and last.since == record.since,
            )
            try:
                sink.send(message)
            except SendFailed as exc:
                errors.append(str(exc))
                report.failed.append((state.name, message.status, sink.name))
                log.warning(
                    "alert_send_failed",
                    alert=state.name,
                    status=message.status,
                    sink=sink.name,
                    error=exc.detail,
                )
                continue
            assert record.since is not None  # due() sends nothing without a firing
            delivered[sink.name] = Delivery(message.status, now, record.since)
            report.sent.append((state.name, message.status, sink.name))
            log.info("alert_sent", alert=state.name, status=message.status, sink=sink.name)
        return replace(record, delivered=delivered, last_error="; ".join(errors) or None)

    def run(self, stop: threading.Event) -> None:
        """Pass every interval until `stop` is set; errors are logged, never fatal (the same
        error repeating as a line now and then: `FailureStreak`). Gives the lease up on the
        way out so another process takes over at once."""
        if not self._sinks:
            log.info(
                "notifier_state_only",
                detail="no JETTI_RELAY_NOTIFY_WEBHOOK_URL or JETTI_RELAY_NOTIFY_SLACK_URL: "
                "alerts are kept in Redis (console, `jetti-relay alerts`), not sent",
            )
        else:
            log.info("notifier_started", sinks=list(self.sink_names), holder=self._cfg.holder)
        failures = FailureStreak(
            log, failed="notifier_pass_failed", recovered="notifier_pass_recovered"
        )
        while not stop.is_set():
            # Redis may be restarting, the broker down: try again next interval.
            failures.attempt(self.pass_once)
            stop.wait(self._cfg.interval_s)
        with contextlib.suppress(redis.RedisError):  # the lease expires on its own
            self._leader.resign(ROLE, holder=self._cfg.holder)

    def start(self, stop: threading.Event) -> threading.Thread:
        """`run` in a daemon thread named "notifier"."""
        thread = threading.Thread(target=self.run, args=(stop,), name="notifier", daemon=True)
        thread.start()
        return thread
