"""Dead-letter entries as values: what `worker.store.dead_letters` stores and returns, and `masked`,
the view of an entry that the CLI shows and exports (personal data masked, secrets never shown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.core.privacy import decode_document, hide_secrets, mask_text, scrub_personal_data
from worker.core.records import Attempt, Version
from worker.core.states import DeadReason, DeadStatus

# What personal data becomes in display/export, and when erased for a privacy request.
MASK = "***"
ERASED = "[erased]"
SECRET_MASK = "[secret]"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step in an entry's life: it became `status` at `at` (with the reason when dead)."""

    at: float
    status: DeadStatus
    reason: DeadReason | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "status": str(self.status),
            "reason": None if self.reason is None else str(self.reason),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusChange:
        reason = data.get("reason")
        return cls(
            float(data["at"]),
            DeadStatus(data["status"]),
            None if reason is None else DeadReason(reason),
        )


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """One dead-lettered order as stored. Times are epoch seconds; `http_status` is the status of
    the last recorded attempt (None when Jetti never answered); `raw`/`payload` are None when
    never given."""

    order_key: str
    reason: DeadReason
    status: DeadStatus
    error: str
    http_status: int | None
    source: str | None
    raw: bytes | None
    payload: bytes | None
    first_dead_at: float
    last_dead_at: float
    status_since: float
    replay_count: int
    attempts: tuple[Attempt, ...]
    history: tuple[StatusChange, ...]
    erased_at: float | None = None
    payload_version: Version | None = None  # the version `payload` was built from (None: unknown)


def attempt_bytes(attempt: Attempt) -> bytes:
    # Canonical form: the same attempt always serialises to the same bytes, which is what lets
    # `put` recognise attempts it already holds.
    return json.dumps(attempt.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def _opt_text(fields: Mapping[bytes, bytes], name: str) -> str | None:
    value = fields.get(name.encode())
    return None if value is None else value.decode()


def parse_entry(
    order_key: str,
    fields: Mapping[bytes, bytes],
    attempts: Sequence[bytes],
    history: Sequence[bytes],
) -> DeadEntry:
    status = _opt_text(fields, "http_status")
    erased = _opt_text(fields, "erased_at")
    return DeadEntry(
        order_key=order_key,
        reason=DeadReason(fields[b"reason"].decode()),
        status=DeadStatus(fields[b"status"].decode()),
        error=fields.get(b"error", b"").decode(),
        http_status=int(status) if status else None,
        source=_opt_text(fields, "source"),
        raw=fields.get(b"raw"),
        payload=fields.get(b"payload"),
        first_dead_at=float(fields[b"first_dead_at"]),
        last_dead_at=float(fields[b"last_dead_at"]),
        status_since=float(fields[b"status_since"]),
        replay_count=int(fields.get(b"replay_count", b"0")),
        attempts=tuple(Attempt.from_dict(json.loads(a)) for a in attempts),
        history=tuple(StatusChange.from_dict(json.loads(h)) for h in history),
        erased_at=float(erased) if erased else None,
        payload_version=_version(_opt_text(fields, "payload_version")),
    )


def _version(text: str | None) -> Version | None:
    """`ts_ms:seq` as `put` stores it."""
    if not text:
        return None
    ts_ms, _, seq = text.partition(":")
    return Version(int(ts_ms), int(seq))


@dataclass(frozen=True)
class DeadStats:
    """Index cardinalities and ages, read without scanning entries. `oldest_dead_at` is the
    `last_dead_at` of the oldest entry still in status dead (None when there is none)."""

    total: int
    by_reason: dict[DeadReason, int]
    by_status: dict[DeadStatus, int]
    dead_by_reason: dict[DeadReason, int]
    oldest_dead_at: float | None


def erase_attempt(attempt: Attempt) -> Attempt:
    return Attempt(
        at=attempt.at,
        status=attempt.status,
        error_class=attempt.error_class,
        excerpt=mask_text(attempt.excerpt, ERASED),
        worker=attempt.worker,
        outcome=attempt.outcome,
    )


def masked(
    entry: DeadEntry, *, include_personal_data: bool = False, secrets: Sequence[str] = ()
) -> dict[str, Any]:
    """A JSON-ready view of `entry` for `show` and `export`.

    Personal data (see `worker.core.privacy`; emails in the error and excerpts) is replaced by "***"
    unless `include_personal_data`. Every occurrence of each non-empty string in `secrets` (the
    webhook hash, the API token) is replaced by "[secret]" in every string, always.
    """
    raw, payload = decode_document(entry.raw), decode_document(entry.payload)
    error: str | None = entry.error
    attempts = [a.to_dict() for a in entry.attempts]
    if not include_personal_data:
        raw, payload = scrub_personal_data(raw, MASK), scrub_personal_data(payload, MASK)
        error = mask_text(error, MASK)
        for a in attempts:
            a["excerpt"] = mask_text(a["excerpt"], MASK)
    view: dict[str, Any] = {
        "order_key": entry.order_key,
        "reason": str(entry.reason),
        "status": str(entry.status),
        "error": error,
        "http_status": entry.http_status,
        "source": entry.source,
        "first_dead_at": entry.first_dead_at,
        "last_dead_at": entry.last_dead_at,
        "status_since": entry.status_since,
        "replay_count": entry.replay_count,
        "erased_at": entry.erased_at,
        "raw": raw,
        "payload": payload,
        "attempts": attempts,
        "history": [h.to_dict() for h in entry.history],
    }
    result: dict[str, Any] = hide_secrets(view, secrets, SECRET_MASK)
    return result
