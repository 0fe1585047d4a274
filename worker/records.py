"""Plain records the ledger and the dead-letter store share.

`Attempt` is one try at submitting an order. It lives here (not in the ledger) so the
dead-letter store can import it without importing the ledger's Redis code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission attempt of one order.

    `at` is epoch seconds; `status` the HTTP status when Jetti answered, else None;
    `error_class` the name of the jetti-relay error raised (None on success); `excerpt` a short
    piece of the response with secrets already masked by the caller; `worker` the worker's
    hostname or id; `outcome` a short word such as "submitted", "retry", "dead".
    """

    at: float
    status: int | None
    error_class: str | None
    excerpt: str | None
    worker: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with exactly the dataclass fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        """Inverse of `to_dict`. Unknown keys are ignored so older readers survive new fields.

        Raises KeyError when `at`, `worker` or `outcome` is missing.
        """
        status = data.get("status")
        return cls(
            at=float(data["at"]),
            status=int(status) if status is not None else None,
            error_class=data.get("error_class"),
            excerpt=data.get("excerpt"),
            worker=str(data["worker"]),
            outcome=str(data["outcome"]),
        )
