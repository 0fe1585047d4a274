"""The books after a scenario: what the producer handed over against what Jetti and the
dead-letter store hold.

For every order the producer accepted (rejections at the edge are counted apart):
- delivered: the ledger says SUBMITTED or CONFIRMED (the reconciler found no import error) and
  Jetti's last received version (the sandbox history, in the order Jetti applied them) is the
  payload of the order's latest version, with status success;
- dead-lettered: the ledger says DEAD for the latest accepted version (the ledger's stored raw
  order is the latest one) and the dead-letter store holds that version with a reason;
- cancelled: the ledger says CANCELLED for the order's cancelling version (counted by how: `via`)
  and Jetti's own records agree: the sale is cancelled by exactly one cancel request, or Jetti
  never imported the order (no sale at all);
- lost: anything else (not final, missing, Jetti holding an older payload, DEAD without an entry,
  DEAD or CANCELLED for an older version than the latest the producer handed over). A "cancel
  lost" is an order cancelled upstream whose sale is live in Jetti (the ledger CANCELLED, or
  SUBMITTED because the cancellation was dropped); a sale cancelled in Jetti for an order never
  cancelled upstream (a wrong sale) is lost too.

Which version is the latest: the newest `updated_at`, ties by arrival; a copy without `updated_at`
is newer than every earlier copy (by arrival); once a copy with `cancelled_at` arrived the order
ends cancelled (the last such copy by arrival), whatever comes after it (issue 12 point 3).

Across the whole history of every order:
- a regression is a version applied after a newer one (Jetti went backwards), or a payload that no
  accepted version produces;
- two cancel requests that reached one sale are a harmful duplicate (each one creates sale-return
  objects in Jetti);
- a duplicate is a byte-identical payload received again. It is harmless when it repeats what
  Jetti already had (the previous receipt had the same bytes, so the upsert changed nothing) and
  the ledger shows why it could not be avoided: an unknown outcome (timeout, dropped answer), a
  delivery that started and never finished (a killed worker), a replay (`dlq replay`: the ledger
  event `replay`, or `rearmed`) or a reconciler repair (`repair`). Otherwise harmful.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.core.contract import parse_raw_order
from worker.core.errors import InvalidOrder, TransformError
from worker.core.jsonio import loads_document
from worker.core.rules import Rules
from worker.core.states import OrderState
from worker.core.transform import transform
from worker.store.dead_letters import DeadLetters
from worker.store.ledger import Ledger, raw_hash, version_ts_ms

# Error classes of attempts whose outcome is unknown (the request may have been applied).
UNKNOWN_OUTCOME_CLASSES = frozenset({"OutcomeUnknown"})
# Ledger events that explain a resend (worker/store/lua/prelude.lua, replay.lua, repair.lua).
RESEND_EVENTS = frozenset({"crash_loop", "replay", "repair"})


@dataclass
class OrderVersions:
    """Every version of one order the producer had accepted, in arrival order."""

    raws: list[bytes] = field(default_factory=list)

    def add(self, raw: bytes) -> None:
        if raw not in self.raws:
            self.raws.append(raw)


@dataclass
class Books:
    """The producer's side of the books: accepted versions per order key, edge rejections."""

    orders: dict[str, OrderVersions] = field(default_factory=dict)
    rejected_at_edge: int = 0

    def accept(self, key: str, raw: bytes) -> None:
        self.orders.setdefault(key, OrderVersions()).add(raw)

    @property
    def keys(self) -> list[str]:
        return list(self.orders)


@dataclass
class BooksReport:
    """The outcome of `check_books`; `problems` names the first offenders of each kind."""

    sent: int = 0
    rejected_at_edge: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    lost: int = 0
    harmless_duplicates: int = 0
    harmful_duplicates: int = 0
    regressions: int = 0
    dead_reasons: dict[str, int] = field(default_factory=dict)
    cancelled_via: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        """Zero lost, zero harmful duplicates, zero regressions."""
        return self.lost == 0 and self.harmful_duplicates == 0 and self.regressions == 0

    def note(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


@dataclass(frozen=True)
class SaleCancellation:
    """Jetti's own record of a sale's cancellation (the sandbox's `/_sandbox/cancellations`)."""

    sale_id: int
    cancelled: bool  # `cancelled`, or `cancellationStatus` partial/full
    cancel_calls: int  # cancel requests that reached the sale, repeats included

    @classmethod
    def from_sandbox(cls, record: Mapping[str, Any]) -> SaleCancellation:
        status = record.get("cancellationStatus")
        return cls(
            sale_id=int(record["saleId"]),
            cancelled=bool(record.get("cancelled")) or status in ("partial", "full"),
            cancel_calls=int(record.get("cancelCalls", 0)),
        )


@dataclass(frozen=True)
class _Version:
    rank: tuple[int, int]  # (updated_at in ms, arrival index): higher is newer
    payload_hash: str | None  # None: the version cannot become a payload (must be dead-lettered)
    cancels: bool = False  # the copy carries `cancelled_at`


def _versions(key: str, raws: Sequence[bytes], rules: Rules) -> list[_Version]:
    out = []
    newest_ts_ms = 0
    for index, raw in enumerate(raws):
        try:
            order = parse_raw_order(loads_document(raw))
        except InvalidOrder:
            out.append(_Version((0, index), None))
            continue
        # A copy without updated_at is ordered after every earlier copy, by arrival.
        ts_ms = version_ts_ms(order.updated_at) if order.updated_at is not None else newest_ts_ms
        newest_ts_ms = max(newest_ts_ms, ts_ms)
        rank = (ts_ms, index)
        cancels = order.cancelled_at is not None
        try:
            built = transform(order, rules, external_id=key)
        except TransformError:
            out.append(_Version(rank, None, cancels))
            continue
        out.append(_Version(rank, built.payload_hash, cancels))
    return out


def _final(versions: Sequence[_Version]) -> _Version:
    """The version the order must end on: the last cancelling copy by arrival, else the newest."""
    cancelling = [v for v in versions if v.cancels]
    if cancelling:
        return max(cancelling, key=lambda v: v.rank[1])
    return max(versions, key=lambda v: v.rank)


def check_books(
    books: Books,
    *,
    ledger: Ledger,
    dead: DeadLetters,
    histories: Callable[[Sequence[str]], Mapping[str, list[dict[str, Any]]]],
    cancellations: Callable[[], Mapping[str, SaleCancellation]],
    rules: Rules | None = None,
) -> BooksReport:
    """Balance `books` against the ledger, the dead-letter store and Jetti's own records: its
    history of received versions (`histories`, by order key) and its cancelled sales
    (`cancellations`, by externalId)."""
    rules = rules or Rules.empty()
    report = BooksReport(sent=len(books.orders), rejected_at_edge=books.rejected_at_edge)
    keys = books.keys
    versions_of = {key: _versions(key, books.orders[key].raws, rules) for key in keys}
    # Jetti files a sale under the order key (the worker sends it as externalId).
    history = histories(sorted(keys))
    jetti_cancels = cancellations()
    for key in keys:
        versions = versions_of[key]
        latest = _final(versions)
        latest_raw = books.orders[key].raws[latest.rank[1]]
        rank_of = {v.payload_hash: v.rank for v in versions if v.payload_hash is not None}
        receipts = history.get(key, [])
        _check_history(key, receipts, rank_of, ledger, report)
        sale = jetti_cancels.get(key)
        if sale is not None and sale.cancel_calls > 1:
            report.harmful_duplicates += sale.cancel_calls - 1
            report.note(f"{key}: {sale.cancel_calls} cancel requests reached sale {sale.sale_id}")
        entry = ledger.get(key)
        if entry is None:
            report.lost += 1
            report.note(f"{key}: not in the ledger")
            continue
        if not latest.cancels and sale is not None and sale.cancelled:
            report.lost += 1
            report.note(
                f"{key}: Jetti's sale {sale.sale_id} is cancelled, but the order was "
                "never cancelled upstream"
            )
            continue
        if latest.cancels and entry.state in (OrderState.SUBMITTED, OrderState.CONFIRMED):
            # Even with Jetti's sale cancelled, the ledger holds an import sent after the
            # cancellation instead of the cancellation itself.
            in_jetti = "cancelled" if sale is not None and sale.cancelled else "live"
            report.lost += 1
            report.note(
                f"{key}: cancel lost: cancelled upstream, but the ledger says "
                f"{entry.state} (Jetti's sale is {in_jetti})"
            )
            continue
        if entry.state in (OrderState.SUBMITTED, OrderState.CONFIRMED):
            last = receipts[-1] if receipts else None
            if (
                last is not None
                and last["payloadHash"] == latest.payload_hash
                and last["status"] == "success"
            ):
                report.delivered += 1
            else:
                report.lost += 1
                got = None if last is None else (last["payloadHash"][:12], last["status"])
                report.note(
                    f"{key}: {entry.state} but Jetti's last version is {got}, "
                    f"not the latest ({(latest.payload_hash or '')[:12]})"
                )
        elif entry.state is OrderState.DEAD:
            dead_entry = dead.get(key)
            if entry.raw_hash != raw_hash(latest_raw) or (
                dead_entry is not None
                and dead_entry.raw is not None
                and dead_entry.raw != latest_raw
            ):
                report.lost += 1
                report.note(f"{key}: DEAD for an older version, not the latest accepted one")
            elif dead_entry is not None and dead_entry.reason is not None and dead_entry.error:
                report.dead_lettered += 1
                reason = str(dead_entry.reason)
                report.dead_reasons[reason] = report.dead_reasons.get(reason, 0) + 1
            else:
                report.lost += 1
                report.note(f"{key}: DEAD in the ledger without a dead-letter entry")
        elif entry.state is OrderState.CANCELLED:
            via = _cancelled_via(key, ledger)
            imported = any(r["status"] in ("success", "skipped") for r in receipts)
            if entry.raw_hash != raw_hash(latest_raw):
                report.lost += 1
                report.note(f"{key}: CANCELLED for an older version, not the latest accepted one")
            elif imported and (sale is None or not sale.cancelled):
                report.lost += 1
                report.note(
                    f"{key}: cancel lost: CANCELLED in the ledger (via {via}), but "
                    "Jetti's sale is live"
                )
            else:
                report.cancelled += 1
                report.cancelled_via[via] = report.cancelled_via.get(via, 0) + 1
        else:
            report.lost += 1
            report.note(f"{key}: still {entry.state} (not final)")
    return report


def _check_history(
    key: str,
    receipts: list[dict[str, Any]],
    rank_of: dict[str, tuple[int, int]],
    ledger: Ledger,
    report: BooksReport,
) -> None:
    newest: tuple[int, int] | None = None
    seen: set[str] = set()
    previous: str | None = None
    for receipt in receipts:
        digest = receipt["payloadHash"]
        rank = rank_of.get(digest)
        if rank is None:
            report.regressions += 1
            report.note(f"{key}: Jetti received a payload no accepted version produces")
        elif newest is not None and rank < newest:
            report.regressions += 1
            report.note(f"{key}: an older version was applied after a newer one")
        else:
            newest = rank
        if digest in seen:
            if digest == previous and _resend_explained(key, ledger):
                report.harmless_duplicates += 1
            else:
                report.harmful_duplicates += 1
                report.note(f"{key}: the same payload reached Jetti twice without a cause")
        seen.add(digest)
        previous = digest


def _resend_explained(key: str, ledger: Ledger) -> bool:
    """True when the ledger shows an unknown outcome, an unfinished delivery or a replay."""
    entry = ledger.get(key)
    if entry is None:
        return False
    if entry.deliveries_started > entry.deliveries_finished:
        return True
    if any(a.error_class in UNKNOWN_OUTCOME_CLASSES for a in ledger.attempts(key)):
        return True
    return any(e.get("type") in RESEND_EVENTS for e in ledger.events(key))


def _cancelled_via(key: str, ledger: Ledger) -> str:
    """How the order was cancelled (the last `cancelled` event's `via`), "unknown" without one."""
    for event in reversed(ledger.events(key)):
        if event.get("type") == "cancelled" and not event.get("newer_pending"):
            return str(event.get("via") or "unknown")
    return "unknown"
