"""Alert state in `Keys.alerts()`: what the notifier found, what it sent, who acked or silenced.

One hash per deployment, three kinds of field per alert, each with one writer, so an operator's
action never races the notifier's write of its own record:

    <name>          JSON written by the notifier (ops/notify): status (ok, firing, resolved),
                    since (when the latest firing began), resolved_at, value,
                    threshold, severity, summary, evaluated_at, last_error, and per sink the
                    last message delivered with a 2xx ({"status", "at", "since"}).
    <name>|ack      JSON {"by", "at", "since"}: acknowledged by an operator. It covers the firing
                    that began at `since` only, so a later firing is not born acknowledged.
    <name>|silence  JSON {"by", "at", "until"}: nothing is sent for the alert until `until`.

Everything lives in Redis, so a new notifier leader neither re-sends what its predecessor sent
nor forgets a firing, an acknowledgement or a silence. Acknowledging, silencing and unsilencing
are audited (worker/store/audit.py) with the actor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from worker.core.keys import Keys
from worker.store.audit import AuditLog

# The alerts the relay's notifier evaluates (ops/notify/rules.py has one rule for each).
ALERT_NAMES: tuple[str, ...] = (
    "breaker_open",
    "dead_letters_rising",
    "oldest_pending",
    "reconciler_lag",
    "no_live_worker",
)
AlertStatus = Literal["ok", "firing", "resolved"]
MessageStatus = Literal["firing", "resolved"]

_ACK = "|ack"
_SILENCE = "|silence"


class UnknownAlert(LookupError):
    """The name is not one of ALERT_NAMES."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no alert named {name!r}; alerts: {', '.join(ALERT_NAMES)}")
        self.name = name


class AlertNotFiring(ValueError):
    """An acknowledgement of an alert that is not firing (there is nothing to acknowledge)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"alert {name!r} is not firing; only a firing alert can be acknowledged")
        self.name = name


@dataclass(frozen=True)
class Delivery:
    """The last message one sink accepted (2xx) for an alert: its status, when, and the firing
    (`since`) it belonged to."""

    status: MessageStatus
    at: float
    since: float


@dataclass(frozen=True)
class AlertRecord:
    """The notifier's own record of one alert (field `<name>`)."""

    status: AlertStatus = "ok"
    since: float | None = None
    resolved_at: float | None = None
    value: float | None = None
    threshold: float | None = None
    severity: str = "warning"
    summary: str = ""
    evaluated_at: float | None = None
    last_error: str | None = None
    delivered: Mapping[str, Delivery] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "status": self.status,
            "since": self.since,
            "resolved_at": self.resolved_at,
            "value": self.value,
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "evaluated_at": self.evaluated_at,
            "last_error": self.last_error,
            "delivered": {
                sink: {"status": d.status, "at": d.at, "since": d.since}
                for sink, d in self.delivered.items()
            },
        }
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> AlertRecord:
        """The record stored as `raw`; a missing or unreadable one is a fresh record."""
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
            delivered = {
                str(sink): Delivery(str(d["status"]), float(d["at"]), float(d["since"]))  # type: ignore[arg-type]
                for sink, d in (doc.get("delivered") or {}).items()
            }
            return cls(
                status=doc.get("status", "ok"),
                since=_num(doc.get("since")),
                resolved_at=_num(doc.get("resolved_at")),
                value=_num(doc.get("value")),
                threshold=_num(doc.get("threshold")),
                severity=str(doc.get("severity") or "warning"),
                summary=str(doc.get("summary") or ""),
                evaluated_at=_num(doc.get("evaluated_at")),
                last_error=doc.get("last_error"),
                delivered=delivered,
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            # A record written by a different version: start afresh rather than stop alerting.
            return cls()


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Ack:
    by: str
    at: float
    since: float


@dataclass(frozen=True)
class Silence:
    by: str
    at: float
    until: float


@dataclass(frozen=True)
class AlertState:
    """One alert as operators see it: the notifier's record with the acknowledgement and the
    silence. `acked_by` is set only when the acknowledgement covers the current firing."""

    name: str
    record: AlertRecord
    ack: Ack | None
    silence: Silence | None

    @property
    def status(self) -> AlertStatus:
        return self.record.status

    @property
    def acked(self) -> bool:
        """Acknowledged for the current firing (no repeats until it resolves)."""
        return (
            self.record.status == "firing"
            and self.ack is not None
            and self.record.since is not None
            and self.ack.since == self.record.since
        )

    def silenced(self, now: float) -> bool:
        """Silenced at `now` (nothing is sent)."""
        return self.silence is not None and self.silence.until > now

    def last_sent(self) -> Delivery | None:
        """The latest message any sink accepted, or None."""
        return max(self.record.delivered.values(), key=lambda d: d.at, default=None)

    def to_dict(self, *, now: float | None = None) -> dict[str, Any]:
        """A JSON-ready dict (console pages, `jetti-relay alerts --json`); no sink URL."""
        now = time.time() if now is None else now
        sent = self.last_sent()
        silenced = self.silenced(now)
        return {
            "name": self.name,
            "status": self.record.status,
            "severity": self.record.severity,
            "summary": self.record.summary,
            "value": self.record.value,
            "threshold": self.record.threshold,
            "since": self.record.since,
            "resolved_at": self.record.resolved_at,
            "evaluated_at": self.record.evaluated_at,
            "last_sent_at": None if sent is None else sent.at,
            "last_sent_status": None if sent is None else sent.status,
            "last_error": self.record.last_error,
            "acked": self.acked,
            "acked_by": self.ack.by if self.acked and self.ack else None,
            "acked_at": self.ack.at if self.acked and self.ack else None,
            "silenced": silenced,
            "silenced_until": self.silence.until if silenced and self.silence else None,
            "silenced_by": self.silence.by if silenced and self.silence else None,
        }


def _check_name(name: str) -> None:
    if name not in ALERT_NAMES:
        raise UnknownAlert(name)


def _parse_ack(raw: bytes | None) -> Ack | None:
    if not raw:
        return None
    doc = json.loads(raw)
    return Ack(str(doc["by"]), float(doc["at"]), float(doc["since"]))


def _parse_silence(raw: bytes | None) -> Silence | None:
    if not raw:
        return None
    doc = json.loads(raw)
    return Silence(str(doc["by"]), float(doc["at"]), float(doc["until"]))


def _state(name: str, fields: Mapping[bytes, bytes]) -> AlertState:
    return AlertState(
        name=name,
        record=AlertRecord.from_json(fields.get(name.encode())),
        ack=_parse_ack(fields.get((name + _ACK).encode())),
        silence=_parse_silence(fields.get((name + _SILENCE).encode())),
    )


def alert_states(client: redis.Redis[bytes], keys: Keys) -> list[AlertState]:
    """Every alert of ALERT_NAMES, in that order (one HGETALL of a hash of ~15 fields); an alert
    never evaluated yet is status "ok" with no figures."""
    fields = client.hgetall(keys.alerts())
    return [_state(name, fields) for name in ALERT_NAMES]


def alert_state(client: redis.Redis[bytes], keys: Keys, name: str) -> AlertState:
    """One alert's state; raises UnknownAlert for a name not in ALERT_NAMES."""
    _check_name(name)
    return _state(name, client.hgetall(keys.alerts()))


def acknowledge(
    client: redis.Redis[bytes], keys: Keys, name: str, actor: str, *, now: float | None = None
) -> AlertState:
    """Acknowledge the current firing of `name` by `actor`: no repeats until it resolves (the
    "resolved" message is still sent). Raises UnknownAlert, or AlertNotFiring when it is not
    firing. Audited as `alert_ack`."""
    now = time.time() if now is None else now
    state = alert_state(client, keys, name)
    if state.status != "firing" or state.record.since is None:
        raise AlertNotFiring(name)
    doc = {"by": actor, "at": now, "since": state.record.since}
    client.hset(keys.alerts(), name + _ACK, json.dumps(doc))
    AuditLog(client, keys).record("alert_ack", actor=actor, details={"alert": name}, now=now)
    return alert_state(client, keys, name)


def silence(
    client: redis.Redis[bytes],
    keys: Keys,
    name: str,
    until: float,
    actor: str,
    *,
    now: float | None = None,
) -> AlertState:
    """Send nothing for `name` until `until` (epoch s), whatever its state; firings and
    resolutions are still recorded. Replaces an earlier silence. Raises UnknownAlert, or
    ValueError when `until` is not in the future. Audited as `alert_silence`."""
    now = time.time() if now is None else now
    _check_name(name)
    if until <= now:
        raise ValueError(f"a silence must end in the future; {until!r} is not after {now!r}")
    doc = {"by": actor, "at": now, "until": until}
    client.hset(keys.alerts(), name + _SILENCE, json.dumps(doc))
    AuditLog(client, keys).record(
        "alert_silence", actor=actor, details={"alert": name, "until": until}, now=now
    )
    return alert_state(client, keys, name)


def unsilence(
    client: redis.Redis[bytes], keys: Keys, name: str, actor: str, *, now: float | None = None
) -> AlertState:
    """End the silence of `name` now (nothing happens when there is none). Raises UnknownAlert.
    Audited as `alert_unsilence`."""
    now = time.time() if now is None else now
    _check_name(name)
    client.hdel(keys.alerts(), name + _SILENCE)
    AuditLog(client, keys).record("alert_unsilence", actor=actor, details={"alert": name}, now=now)
    return alert_state(client, keys, name)


def save_record(client: redis.Redis[bytes], keys: Keys, name: str, record: AlertRecord) -> None:
    """Store the notifier's record of `name` (the notifier is its only writer)."""
    _check_name(name)
    client.hset(keys.alerts(), name, record.to_json())
