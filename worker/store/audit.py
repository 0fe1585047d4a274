"""The audit log: who replayed, purged or erased what, and when.

Records are appended to one Redis stream (`keys.audit_log()`); nothing trims it (an audit trail
that forgets is no audit trail). Each record carries the actor (the OS user of the CLI), the time
(`now`, epoch seconds, passed in), the action, the order keys it touched and free-form details.
Callers must not put secrets or personal data into `details`: the log is shown to operators as is.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.core.keys import Keys

# The audit actions of pausing and resuming the fleet (the CLI's `pause`/`resume` and the
# console's buttons record the same ones).
FLEET_PAUSE = "fleet_pause"
FLEET_RESUME = "fleet_resume"


@dataclass(frozen=True)
class AuditRecord:
    """One audited action. `id` is the stream entry id (ordered by append time)."""

    id: str
    at: float
    actor: str
    action: str
    order_keys: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for `--json` output)."""
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "order_keys": list(self.order_keys),
            "details": self.details,
        }


def os_user() -> str:
    """The OS user running this process, from the password database (not the environment,
    which the user could set to anything)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (some containers): still say who it was
        return f"uid:{os.getuid()}"


def _text(fields: Mapping[bytes, bytes], name: str) -> str:
    return fields.get(name.encode(), b"").decode()


class AuditLog:
    """Append-only audit records in a Redis stream."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def record(
        self,
        action: str,
        *,
        actor: str,
        order_keys: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
        now: float,
    ) -> str:
        """Append one record and return its stream id. `details` must be JSON-serialisable."""
        fields: dict[str, str] = {
            "at": repr(float(now)),
            "actor": actor,
            "action": action,
            "order_keys": json.dumps(list(order_keys)),
            "details": json.dumps(dict(details or {}), sort_keys=True),
        }
        entry_id = self._client.xadd(self._keys.audit_log(), fields)
        return bytes(entry_id).decode()

    def read(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
        actor: str | None = None,
        order_key: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Records newest first, at most `limit`, filtered by time window (the `at` field,
        inclusive), action, actor and order key. Reads the stream in pages from the newest end;
        the audit log is small next to the orders it describes."""
        result: list[AuditRecord] = []
        page_size = 500
        upper = "+"
        while len(result) < limit:
            page = self._client.xrevrange(
                self._keys.audit_log(), max=upper, min="-", count=page_size
            )
            if not page:
                break
            for raw_id, raw_fields in page:
                rec = self._parse(bytes(raw_id).decode(), raw_fields)
                if until is not None and rec.at > until:
                    continue
                if since is not None and rec.at < since:
                    continue
                if action is not None and rec.action != action:
                    continue
                if actor is not None and rec.actor != actor:
                    continue
                if order_key is not None and order_key not in rec.order_keys:
                    continue
                result.append(rec)
                if len(result) >= limit:
                    break
            if len(page) < page_size:
                break
            # Exclusive upper bound for the next page: "(" + the last id read (Redis >= 6.2).
            upper = "(" + bytes(page[-1][0]).decode()
        return result

    def count(self) -> int:
        """How many records the log holds."""
        return int(self._client.xlen(self._keys.audit_log()))

    @staticmethod
    def _parse(entry_id: str, fields: Mapping[bytes, bytes]) -> AuditRecord:
        return AuditRecord(
            id=entry_id,
            at=float(_text(fields, "at") or 0.0),
            actor=_text(fields, "actor"),
            action=_text(fields, "action"),
            order_keys=tuple(json.loads(_text(fields, "order_keys") or "[]")),
            details=json.loads(_text(fields, "details") or "{}"),
        )
