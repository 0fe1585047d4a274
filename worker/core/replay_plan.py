"""The pure plan of a dead-letter replay: what `dlq replay` does with one entry, and why.

`plan` decides from the entry and the order's ledger entry as they are now (a killed run leaves
state the next run reads, so a rerun sends nothing twice; `worker.pipeline.replayer` carries the
plan out). `parse_corrected_raw` validates an engineer's corrected raw order for a key,
`stored_built` turns a stored payload into what the worker sends byte for byte, and `Summary`
counts a run's steps for its last line. No Redis, no broker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from worker.core.contract import parse_raw_order
from worker.core.dead_entry import DeadEntry
from worker.core.errors import InvalidOrder
from worker.core.jsonio import dumps_canonical, loads_document, payload_hash
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S
from worker.core.records import OrderEntry
from worker.core.states import DeadStatus, OrderState
from worker.core.transform import Built


class ReplayMode(StrEnum):
    """What the worker sends for a replayed order."""

    RETRANSFORM = "retransform"  # the current code on the stored raw order (default)
    RESEND_STORED = "resend_stored"  # the payload stored with the dead letter, byte for byte
    CORRECTED_RAW = "corrected_raw"  # a corrected raw order from the engineer, transformed


class Action(StrEnum):
    """What `plan` decided for one entry."""

    REPLAY = "replay"  # DEAD in the ledger: arm, mark replayed, publish
    REPUBLISH = "republish"  # already armed (a killed run, or a newer version): publish again
    IN_FLIGHT = "in_flight"  # a worker has it or it waits for a retry: nothing to do
    SUBMITTED = "submitted"  # Jetti accepted the latest version: mark resolved, send nothing
    RESOLVED = "resolved"  # the entry is resolved: nothing to do
    NOT_REPLAYABLE = "not_replayable"  # no ledger entry, erased, or no stored payload


def raw_hash(raw: bytes) -> str:
    """Hex sha256 of a raw order, as the ledger stores it (`raw_hash` of its entry): equal
    hashes mean byte-identical raw orders."""
    return payload_hash(raw)


# Actions that send the order (again) through the pipeline.
SENDING = frozenset({Action.REPLAY, Action.REPUBLISH})


@dataclass(frozen=True)
class Step:
    """The decision for one entry, and why (shown by `--dry-run` and in the summary)."""

    order_key: str
    action: Action
    why: str
    ledger_state: OrderState | None = None


class ReplayInputError(ValueError):
    """A corrected raw order (or a stored payload) that cannot be used; says what and where."""


@dataclass(frozen=True)
class CorrectedRaw:
    """A corrected raw order, validated against the contract: canonical bytes and its version."""

    body: bytes
    updated_at: datetime | None


def parse_corrected_raw(
    data: bytes,
    *,
    order_key: str,
    where: str,
    stored_raw: bytes | None = None,
    now_s: float | None = None,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
) -> CorrectedRaw:
    """Validate a corrected raw order for `order_key`; `where` names it in errors (a file name).

    Raises ReplayInputError listing every problem with its path (`where: lines[0].quantity:
    must be >= 1`), or when the order's id is not the one this key was enqueued with: the id of
    `stored_raw` (the raw order stored under the key) exactly. With `now_s` (epoch s), an
    `updated_at` more than `max_future_skew_s` ahead is a problem too: a typo'd year would
    freeze the order, as at the producers' edge.
    """
    try:
        order = parse_raw_order(
            loads_document(data), now_s=now_s, max_future_skew_s=max_future_skew_s
        )
    except InvalidOrder as exc:
        raise ReplayInputError("\n".join(f"{where}: {p}" for p in exc.problems)) from exc
    # The producer's key is an optional id prefix + the order id, so a suffix test would take
    # id "1" for key "shop-a:1001": the id must be the one stored under the key.
    if not _same_order(order.id, order_key, stored_raw):
        raise ReplayInputError(f"{where}: id: {order.id!r} is not the id of order {order_key!r}")
    return CorrectedRaw(dumps_canonical(loads_document(data)), order.updated_at)


# What a producer's id prefix may end with, when no stored raw order tells the id.
_PREFIX_ENDS = frozenset(":-_/|.#")


def _same_order(order_id: str, order_key: str, stored_raw: bytes | None) -> bool:
    stored = _stored_id(stored_raw)
    if stored is not None:
        return order_id == stored
    if order_key == order_id:
        return True
    head = order_key[: len(order_key) - len(order_id)]
    return bool(order_id) and order_key.endswith(order_id) and head[-1:] in _PREFIX_ENDS


def _stored_id(stored_raw: bytes | None) -> str | None:
    """The `id` of a stored raw order, None when there is none or it has no readable id."""
    if stored_raw is None:
        return None
    try:
        doc = loads_document(stored_raw)
    except InvalidOrder:
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def stored_built(body: bytes) -> Built:
    """A stored payload as the worker's `Built`, sent byte for byte (`--resend-stored`).

    Raises ReplayInputError when the bytes are not a payload with `lineItems[].externalId`; the
    CLI checks this before arming, so the worker only ever sees payloads that pass.
    """
    try:
        doc = json.loads(body)
        line_ids = tuple(str(item["externalId"]) for item in doc["lineItems"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplayInputError(f"stored payload: not a Jetti manual-sale payload ({exc})") from exc
    return Built(payload=doc, body=body, payload_hash=payload_hash(body), line_ids=line_ids)


def plan(
    entry: DeadEntry,
    order: OrderEntry | None,
    *,
    mode: ReplayMode,
    corrected: CorrectedRaw | None = None,
) -> Step:
    """Decide what a replay does with `entry`, given the order's ledger entry (pure).

    A corrected raw order applies only to a DEAD order, or to one a killed run already armed
    with exactly that correction (then its key is published again).
    """
    key = entry.order_key
    state = order.state if order is not None else None
    if entry.status is DeadStatus.RESOLVED:
        return Step(key, Action.RESOLVED, "resolved already", state)
    if order is None:
        return Step(key, Action.NOT_REPLAYABLE, "no ledger entry (an unreadable message?)")
    if state in (OrderState.SUBMITTING, OrderState.RETRY_WAIT):
        return Step(key, Action.IN_FLIGHT, f"in flight ({state})", state)
    if state in (OrderState.SUBMITTED, OrderState.CONFIRMED, OrderState.CANCELLED):
        return Step(key, Action.SUBMITTED, f"Jetti has the latest version ({state})", state)
    if state is OrderState.PENDING:
        if corrected is not None and order.raw_hash != raw_hash(corrected.body):
            return Step(
                key,
                Action.NOT_REPLAYABLE,
                "pending with another raw order: let it settle, then correct it",
                state,
            )
        return Step(key, Action.REPUBLISH, "armed already; publishing its key again", state)
    if mode is not ReplayMode.CORRECTED_RAW:
        if entry.erased_at is not None or order.raw is None:
            return Step(
                key,
                Action.NOT_REPLAYABLE,
                "personal data erased: replay it with a corrected raw order",
                state,
            )
        if mode is ReplayMode.RESEND_STORED:
            refusal = _resend_refusal(entry, order)
            if refusal is not None:
                return Step(key, Action.NOT_REPLAYABLE, refusal, state)
    return Step(key, Action.REPLAY, f"dead ({entry.reason})", state)


def _resend_refusal(entry: DeadEntry, order: OrderEntry) -> str | None:
    """Why the stored payload must not be resent, or None. Only a payload built from the
    ledger's latest version may go: an older one would put an older order in Jetti while the
    ledger records the latest as sent (reliability #13)."""
    if entry.payload is None:
        return "no stored payload to resend"
    stored = entry.payload_version
    if stored is None:
        return (
            "the stored payload's version is unknown: replay without --resend-stored "
            "(re-transforms the latest raw order)"
        )
    if stored != order.version:
        return (
            f"the stored payload is of an older version (updated_at {stored.ts_ms} ms, "
            f"seq {stored.seq}) than the ledger's latest (updated_at {order.version.ts_ms} "
            f"ms, seq {order.version.seq}): replay without --resend-stored"
        )
    return None


@dataclass
class Summary:
    """What a replay run did, by action."""

    counts: dict[Action, int]

    @classmethod
    def empty(cls) -> Summary:
        return cls({a: 0 for a in Action})

    def add(self, step: Step) -> None:
        self.counts[step.action] += 1

    @property
    def sent(self) -> int:
        """Orders put (back) on the queue."""
        return sum(self.counts[a] for a in SENDING)

    def line(self, *, dry_run: bool = False) -> str:
        """The one-line summary the CLI prints last (in the conditional for a dry run)."""
        c = self.counts
        if dry_run:
            return (
                f"would replay {c[Action.REPLAY]}, would republish {c[Action.REPUBLISH]}, "
                f"in flight {c[Action.IN_FLIGHT]}, submitted already {c[Action.SUBMITTED]}, "
                f"resolved already {c[Action.RESOLVED]}, "
                f"not replayable {c[Action.NOT_REPLAYABLE]}"
            )
        return (
            f"replayed {c[Action.REPLAY]}, republished {c[Action.REPUBLISH]}, "
            f"in flight {c[Action.IN_FLIGHT]}, submitted already {c[Action.SUBMITTED]}, "
            f"resolved already {c[Action.RESOLVED]}, "
            f"not replayable {c[Action.NOT_REPLAYABLE]}"
        )
