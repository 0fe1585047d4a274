"""The reconciler: reads Jetti's import log back and settles what the async endpoint left open.

Jetti's asynchronous endpoint answers 200 to everything and reports a rejection only in its import
log (facts §4), so an accepted order is SUBMITTED, not done. A leader-elected periodic job
(`Leader` role "reconciler": run it on every host, one acts) closes the loop through the
synchronous API, within the fleet's read budget (`ApiThrottle` "read", below Jetti's 2 GET/s):

1. **Errors since the checkpoint.** `GET /api/sale-imports.json` with `where[status]=error` and a
   creation window `[checkpoint - grace, now)`, paginated 1,000 rows per read: a few reads a
   minute cover hundreds of orders a second, and only errors are ever read. Each error row is
   matched to the order (externalId is the order key) and compared with the payload
   last sent (the canonical hash of the row's `payload`; without one, the row must be newer than
   our last submission). A match dead-letters the order as `rejected_by_jetti` with Jetti's
   problem text; an error about a payload since superseded is counted and ignored. The ledger
   change is a compare-and-set in Lua, so a newer version in flight is never killed.
2. **Confirmation.** A SUBMITTED order with no error `grace` seconds after it was sent becomes
   CONFIRMED. Candidates come from the ledger's SUBMITTED state index (scored by the time the
   order entered it), never from a scan.
3. **Out-of-order repair.** Jetti may apply async imports out of order, leaving an older version
   on the sale. Only an order that had more than one version can suffer it, so only those are
   looked up (`GET /api/sales.json?where[externalId]`, a bounded number per run) before they are
   confirmed. A sale whose lines differ from the last payload (or no sale at all) is re-armed
   with its payload hash forgotten and published: the normal path sends the latest version again.

The checkpoint (epoch s, the end of the last window read) and the figures (last run, counts)
are kept by `worker.store.reconcile_state` (read by `metrics`, `health` and `order show`); the
verdicts on a row, a sale and an entry are pure functions in `worker.core.reconcile_rules`. This
module is the orchestration over the ports of `worker.pipeline.ports`; `worker.runtime` wires it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from worker.core.answers import ImportRow, SaleLookup
from worker.core.errors import JettiRelayError, JettiUnavailable, RateLimited
from worker.core.importlog import (
    MAX_PAGES_PER_WINDOW,
    SaleVerdict,
    WindowRead,
    compare_sale,
    read_window,
)
from worker.core.policy import rate_limit_pause_s
from worker.core.reconcile_rules import DEFAULT_TOLERANCE_S, ConfirmCandidate
from worker.core.records import OrderEntry
from worker.core.states import RepairReply
from worker.core.transform import Built
from worker.loop_failures import FailureStreak
from worker.pipeline.ports import (
    DeadLetterBook,
    ImportLogReader,
    KeyPublisher,
    ReadThrottle,
    ReconcileLedger,
    ReconcileStatePort,
    RoleLeader,
)
from worker.pipeline.rejections import Rejections, Tally
from worker.pipeline.submit import wait_for_token

log = structlog.get_logger("jetti_relay.reconciler")

ROLE = "reconciler"
# Most SUBMITTED orders one run looks at; the next run takes the rest.
PASS_LIMIT = 5000
# Reads retried within one run after a 429 before the run gives up (the next run resumes).
MAX_THROTTLED_READS = 5
# Back-off after a read 429 without Retry-After: Jetti's window is one second.
READ_BLOCK_S = 1.0
# Resends of one order whose sale still differs, before it is dead-lettered instead.
MAX_REPAIRS = 3
# Rows acted on are remembered this long past the window (a replay of the same payload).
ACTED_KEPT_S = 24 * 3600.0
# Rows one import-log page asks for: Jetti's largest page (worker.jetti.client.IMPORT_PAGE_LIMIT).
DEFAULT_PAGE_LIMIT = 1000
# The trailing re-read (reliability #16): how far back it reaches, and how often it runs. A day
# covers any Jetti backlog we would not notice otherwise (OldestWaitingOrderTooOld, breaker);
# every 10 min costs one read per 10 min when the day holds under 1,000 errors.
TRAILING_WINDOW_S = 24 * 3600.0
TRAILING_EVERY_S = 600.0

Rebuild = Callable[[str, bytes], Built | None]

__all__ = ["Rebuild", "ReconcileConfig", "ReconcileReport", "Reconciler"]


@dataclass(frozen=True)
class ReconcileConfig:
    """What the reconciler needs from Settings."""

    holder: str
    interval_s: float
    grace_s: float
    tolerance_s: float = DEFAULT_TOLERANCE_S
    max_sale_checks: int = 10
    page_limit: int = DEFAULT_PAGE_LIMIT
    max_pages: int = MAX_PAGES_PER_WINDOW
    trailing_s: float = TRAILING_WINDOW_S
    trailing_every_s: float = TRAILING_EVERY_S


@dataclass
class ReconcileReport:
    """What one run did."""

    led: bool = True
    requests: int = 0
    rows_read: int = 0
    rejected: int = 0
    stale_errors: int = 0
    confirmed: int = 0
    repaired: int = 0
    sale_checks: int = 0
    trailing_reads: int = 0
    error: str | None = None
    rejected_keys: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The run's counters, as added to the stored figures."""
        return {k: v for k, v in asdict(self).items() if type(v) is int}


class Reconciler:
    """One reconciler per process; `run_once` acts only while this holder leads the role."""

    def __init__(
        self,
        *,
        config: ReconcileConfig,
        state: ReconcileStatePort,
        ledger: ReconcileLedger,
        dead_letters: DeadLetterBook,
        jetti: ImportLogReader,
        throttle: ReadThrottle,
        publisher: KeyPublisher,
        leader: RoleLeader,
        rebuild: Rebuild,
        count_dead: Callable[[str], None] | None = None,
        count_surprise: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = config
        self._state = state
        self._ledger = ledger
        self._jetti = jetti
        self._throttle = throttle
        self._publisher = publisher
        self._leader = leader
        self._rebuild = rebuild
        self._count_surprise = count_surprise
        self._clock = clock
        self._sleep = sleep
        self._lease_s = max(config.interval_s * 5, 30.0)
        self._rejections = Rejections(
            holder=config.holder,
            tolerance_s=config.tolerance_s,
            state=state,
            ledger=ledger,
            dead_letters=dead_letters,
            count_dead=count_dead,
            count_surprise=self._surprise,
        )

    # --- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Reconcile every `interval_s` until `stop` is set; errors are logged, not fatal (the
        same error repeating as a line now and then: `FailureStreak`)."""
        failures = FailureStreak(
            log, failed="reconcile_pass_failed", recovered="reconcile_pass_recovered"
        )
        while not stop.wait(self._cfg.interval_s):
            failures.attempt(self.run_once)

    def run_once(self) -> ReconcileReport:
        """One pass: read new errors, dead-letter rejections, repair and confirm."""
        if not self._leader.try_lead(ROLE, holder=self._cfg.holder, ttl_s=self._lease_s):
            return ReconcileReport(led=False)
        now = self._clock()
        report = ReconcileReport()
        try:
            checkpoint = self._checkpoint(now)
            window_from = checkpoint - self._cfg.grace_s
            self._state.forget_acted(window_from - ACTED_KEPT_S)
            read = self._read_errors(window_from, now, report)
            self._count_rows(self._rejections.handle(read.rows, now), report)
            if read.incomplete is None:
                self._confirm(now, report)
                self._state.set_checkpoint(now)
            else:
                # Rows past the point reached may be errors: confirming now could confirm an
                # order Jetti rejected. Keep the checkpoint; the run counts as not finished.
                report.error = f"import log read incomplete: {read.incomplete}"
                log.warning("reconcile_incomplete", error=report.error)
            self._trailing(window_from, now, report)
        except JettiRelayError as exc:
            # Jetti unreachable or throttling us: keep the checkpoint, the next run re-reads.
            report.error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("reconcile_incomplete", error=report.error)
        finally:
            self._record(report, now)
        log.info(
            "reconciled",
            requests=report.requests,
            rows=report.rows_read,
            rejected=report.rejected,
            stale_errors=report.stale_errors,
            confirmed=report.confirmed,
            repaired=report.repaired,
        )
        return report

    # --- steps ------------------------------------------------------------------------
    def _checkpoint(self, now: float) -> float:
        checkpoint = self._state.checkpoint()
        if checkpoint is not None:
            return checkpoint
        # First run: from the oldest order still waiting for confirmation (or now).
        oldest = self._state.oldest_submitted_at()
        start = now if oldest is None else min(now, oldest)
        return start - self._cfg.tolerance_s

    def _read(self, call: Callable[[], Any], report: ReconcileReport) -> Any:
        """One throttled read; a 429 blocks the fleet's reads and is retried a few times."""
        throttled = 0
        while True:
            wait_for_token(self._throttle, max_wait_s=math.inf, sleep=self._sleep)
            # A long run keeps its lease; a host that lost it stops (another one leads now).
            if not self._leader.try_lead(ROLE, holder=self._cfg.holder, ttl_s=self._lease_s):
                raise JettiUnavailable(None, "lost the reconciler lease mid-run")
            report.requests += 1
            try:
                return call()
            except RateLimited as exc:
                throttled += 1
                pause = rate_limit_pause_s(exc, default_s=READ_BLOCK_S)
                if exc.retry_after_note is not None:
                    self._surprise(f"retry_after_{exc.retry_after_note}")
                self._throttle.block(until=self._clock() + pause)
                if throttled >= MAX_THROTTLED_READS:
                    raise

    def _read_errors(
        self, created_from: float, created_before: float, report: ReconcileReport
    ) -> WindowRead:
        """The error rows created in [created_from, created_before), paged defensively
        (`worker.core.importlog.read_window`); every surprise is counted."""

        def fetch(offset: int, limit: int) -> list[ImportRow]:
            page: list[ImportRow] = self._read(
                lambda: self._jetti.list_imports(
                    status="error",
                    created_from=created_from,
                    created_before=created_before,
                    offset=offset,
                    limit=limit,
                ),
                report,
            )
            return page

        read = read_window(fetch, limit=self._cfg.page_limit, max_pages=self._cfg.max_pages)
        for assumption in read.surprises:
            self._surprise(assumption)
            log.warning(
                "import_log_paging_surprise",
                assumption=assumption,
                pages=read.pages,
                rows=len(read.rows),
            )
        report.rows_read += len(read.rows)
        return read

    def _trailing(self, window_from: float, now: float, report: ReconcileReport) -> None:
        """Every `trailing_every_s`, re-read the errors of the `trailing_s` before the regular
        window (reliability #16): a row Jetti shows only after the grace period (a backlog, if
        `createdAt` is the receipt time) was in no regular window; an order it names that was
        confirmed meanwhile is dead-lettered then, exactly as in the regular window."""
        if self._cfg.trailing_s <= 0 or self._cfg.trailing_s <= self._cfg.grace_s:
            return
        last = self._state.trailing_at()
        if last is not None and now - last < self._cfg.trailing_every_s:
            return
        read = self._read_errors(now - self._cfg.trailing_s, window_from, report)
        # Its stale errors were counted when their window was read: only rejections count.
        tally = self._rejections.handle(read.rows, now)
        report.rejected += len(tally.rejected_keys)
        report.rejected_keys.extend(tally.rejected_keys)
        report.trailing_reads += 1
        self._state.set_trailing_at(now)
        if read.incomplete is not None:
            log.warning("reconcile_trailing_incomplete", reason=read.incomplete)

    def _confirm(self, now: float, report: ReconcileReport) -> None:
        """Confirm every SUBMITTED order sent before `now - grace`, walking the SUBMITTED index
        (scored by the time the order was sent) in chunks: no scan, no limit per run."""
        checks = 0
        for page in self._state.submitted_before(now - self._cfg.grace_s, page=PASS_LIMIT):
            confirm: list[tuple[str, str]] = []
            for candidate in page:
                if not candidate.confirmable:
                    continue
                if candidate.had_versions:
                    # Jetti may have applied the versions out of order.
                    if checks >= self._cfg.max_sale_checks:
                        continue  # the next run checks it; it stays SUBMITTED meanwhile
                    checks += 1
                    if not self._sale_checked(candidate, report, now):
                        continue
                assert candidate.payload_hash is not None  # confirmable
                confirm.append((candidate.order_key, candidate.payload_hash))
            report.confirmed += len(self._ledger.confirm_many(confirm, now=now))

    def _sale_checked(
        self, candidate: ConfirmCandidate, report: ReconcileReport, now: float
    ) -> bool:
        """True when an order with several versions may be confirmed now (its sale carries the
        last payload, or there is nothing to compare with)."""
        entry = self._ledger.get(candidate.order_key)
        if entry is None or entry.payload_hash is None:
            return False
        # A shed body leaves nothing to compare with: confirm as it stands.
        return entry.raw is None or self._sale_is_current(entry, report, now)

    def _sale_is_current(self, entry: OrderEntry, report: ReconcileReport, now: float) -> bool:
        """True when the sale carries the last payload (or it cannot be compared); otherwise
        the order is re-armed and published, and False returned."""
        assert entry.raw is not None and entry.payload_hash is not None
        built = self._rebuild(entry.order_key, entry.raw)
        if built is None or built.payload_hash != entry.payload_hash:
            return True  # rules changed since it was sent: nothing to compare with
        external_id = str(built.payload.get("externalId"))
        report.sale_checks += 1
        lookup: SaleLookup = self._read(lambda: self._jetti.find_sale(external_id), report)
        if lookup.others:
            self._surprise("sale_other_channel")
        sale = lookup.sale
        verdict = SaleVerdict.DIFFERS if sale is None else compare_sale(sale, built.payload)
        if verdict is SaleVerdict.CANNOT_COMPARE:
            self._surprise("sale_without_lines")
            log.warning("sale_cannot_be_compared", order_key=entry.order_key)
        elif verdict is SaleVerdict.FIELDS_DIFFER:
            self._surprise("sale_fields_differ")
            log.warning("sale_fields_differ", order_key=entry.order_key)
        if verdict is not SaleVerdict.DIFFERS:
            return True
        outcome = self._ledger.repair(
            entry.order_key, payload_hash=entry.payload_hash, now=now, max_repairs=MAX_REPAIRS
        )
        if outcome is RepairReply.REARMED:
            self._publisher.publish([entry.order_key])
            report.repaired += 1
            log.warning("order_repaired", order_key=entry.order_key, sale_found=sale is not None)
        elif outcome is RepairReply.GAVE_UP:
            # Resent MAX_REPAIRS times and still different (or still no sale): without an error
            # in Jetti's import log (the regular pass dead-letters on one) there is no positive
            # signal of a rejection, so it is confirmed as it stands and counted (#5a); the
            # trailing re-read still dead-letters it if an error row shows up later.
            self._surprise("sale_still_differs")
            log.warning(
                "sale_still_differs_confirmed",
                order_key=entry.order_key,
                sale_found=sale is not None,
                resends=MAX_REPAIRS,
            )
            return True
        return False

    @staticmethod
    def _count_rows(tally: Tally, report: ReconcileReport) -> None:
        report.stale_errors += tally.stale_errors
        report.rejected += len(tally.rejected_keys)
        report.rejected_keys.extend(tally.rejected_keys)

    def _surprise(self, assumption: str) -> None:
        if self._count_surprise is not None:
            self._count_surprise(assumption)

    def _record(self, report: ReconcileReport, now: float) -> None:
        self._state.record_run(
            now=now,
            holder=self._cfg.holder,
            interval_s=self._cfg.interval_s,
            grace_s=self._cfg.grace_s,
            counts=report.counts(),
            error=report.error,
        )
