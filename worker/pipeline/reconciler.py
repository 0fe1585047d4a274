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

The checkpoint (epoch s, the end of the last window read) is at `Keys.reconcile_checkpoint`; the
figures (last run, counts) are in the hash `Keys.reconcile_stats` for `metrics`, `health` and
`order show` (`read_status`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from worker.core.contract import parse_raw_order
from worker.core.errors import (
    InvalidOrder,
    JettiRelayError,
    JettiUnavailable,
    RateLimited,
    TransformError,
)
from worker.core.importlog import (
    MAX_PAGES_PER_WINDOW,
    SaleVerdict,
    WindowRead,
    compare_sale,
    read_window,
)
from worker.core.jsonio import dumps_canonical, loads_document
from worker.core.keys import Keys
from worker.core.records import Attempt, OrderEntry
from worker.core.rules import Rules, load_rules
from worker.core.states import DeadReason, OrderState
from worker.core.transform import Built, transform
from worker.jetti.client import IMPORT_PAGE_LIMIT, ImportRow, JettiClient, Sale, SaleLookup
from worker.publisher import Publisher
from worker.settings import Settings
from worker.store.api_throttle import ApiThrottle
from worker.store.dead_letters import DeadLetters
from worker.store.leases import Leader
from worker.store.settle import SettleLedger

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
# A row's `createdAt` may precede our `submitted_at` by the request's duration and clock skew.
# Used only for rows that carry no payload to compare.
DEFAULT_TOLERANCE_S = 60.0
# The trailing re-read (reliability #16): how far back it reaches, and how often it runs. A day
# covers any Jetti backlog we would not notice otherwise (OldestWaitingOrderTooOld, breaker);
# every 10 min costs one read per 10 min when the day holds under 1,000 errors.
TRAILING_WINDOW_S = 24 * 3600.0
TRAILING_EVERY_S = 600.0

Rebuild = Callable[[str, bytes], Built | None]


@dataclass(frozen=True)
class ReconcileConfig:
    """What the reconciler needs from Settings."""

    holder: str
    interval_s: float
    grace_s: float
    tolerance_s: float = DEFAULT_TOLERANCE_S
    max_sale_checks: int = 10
    page_limit: int = IMPORT_PAGE_LIMIT
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


@dataclass(frozen=True)
class ReconcileStatus:
    """The reconciler's figures as stored in Redis (for metrics, health, order show)."""

    checkpoint: float | None
    last_run_at: float | None
    last_ok_at: float | None
    last_error: str | None
    holder: str | None
    interval_s: float | None
    grace_s: float | None
    counts: dict[str, int]

    def lag_s(self, now: float) -> float | None:
        """How far the import log read lags behind `now` (None before the first run)."""
        return None if self.checkpoint is None else max(0.0, now - self.checkpoint)

    def behind(self, now: float) -> bool:
        """True when no run succeeded for three intervals (or the grace, if longer)."""
        if self.interval_s is None:
            return False
        limit = max(3 * self.interval_s, self.grace_s or 0.0)
        last = self.last_ok_at
        return last is None or now - last > limit


COUNT_FIELDS = (
    "runs",
    "requests",
    "rows_read",
    "rejected",
    "stale_errors",
    "confirmed",
    "repaired",
    "sale_checks",
    "failed_runs",
    "trailing_reads",
)


def read_status(client: redis.Redis[bytes], keys: Keys) -> ReconcileStatus:
    """The reconciler's stored figures (two reads, no scan)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.reconcile_checkpoint())
    pipe.hgetall(keys.reconcile_stats())
    checkpoint_raw, raw = pipe.execute()
    data = {k.decode(): v.decode() for k, v in raw.items()}

    def number(name: str) -> float | None:
        value = data.get(name)
        return float(value) if value else None

    return ReconcileStatus(
        checkpoint=float(checkpoint_raw) if checkpoint_raw else None,
        last_run_at=number("last_run_at"),
        last_ok_at=number("last_ok_at"),
        last_error=data.get("last_error") or None,
        holder=data.get("holder") or None,
        interval_s=number("interval_s"),
        grace_s=number("grace_s"),
        counts={name: int(data.get(name, "0")) for name in COUNT_FIELDS},
    )


def canonical_hash(payload: Any) -> str | None:
    """The payload hash of a logged payload (as the worker hashes what it sends), or None."""
    try:
        body = payload.encode() if isinstance(payload, str) else dumps_canonical(payload)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(body).hexdigest()


def sale_matches(sale: Sale, payload: dict[str, Any]) -> bool:
    """False only on a positive difference: a line of `payload` missing from the sale, or its
    quantity different (`worker.core.importlog.compare_sale`); names, prices and missing lines
    arrays are not differences (reliability #5a)."""
    return compare_sale(sale, payload) is not SaleVerdict.DIFFERS


class Reconciler:
    """One reconciler per process; `run_once` acts only while this holder leads the role."""

    def __init__(
        self,
        *,
        config: ReconcileConfig,
        client: redis.Redis[bytes],
        keys: Keys,
        ledger: SettleLedger,
        dead_letters: DeadLetters,
        jetti: JettiClient,
        throttle: ApiThrottle,
        publisher: Publisher,
        leader: Leader,
        rebuild: Rebuild,
        count_dead: Callable[[str], None] | None = None,
        count_surprise: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = config
        self._client = client
        self._keys = keys
        self._ledger = ledger
        self._dead = dead_letters
        self._jetti = jetti
        self._throttle = throttle
        self._publisher = publisher
        self._leader = leader
        self._rebuild = rebuild
        self._count_dead = count_dead
        self._count_surprise = count_surprise
        self._clock = clock
        self._sleep = sleep
        self._lease_s = max(config.interval_s * 5, 30.0)

    # --- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Reconcile every `interval_s` until `stop` is set; errors are logged, not fatal."""
        while not stop.wait(self._cfg.interval_s):
            try:
                self.run_once()
            except Exception:
                log.exception("reconcile_pass_failed")

    def run_once(self) -> ReconcileReport:
        """One pass: read new errors, dead-letter rejections, repair and confirm."""
        if not self._leader.try_lead(ROLE, holder=self._cfg.holder, ttl_s=self._lease_s):
            return ReconcileReport(led=False)
        now = self._clock()
        report = ReconcileReport()
        try:
            checkpoint = self._checkpoint(now)
            window_from = checkpoint - self._cfg.grace_s
            self._client.zremrangebyscore(
                self._keys.reconcile_acted(), "-inf", f"({window_from - ACTED_KEPT_S!r}"
            )
            read = self._read_errors(window_from, now, report)
            self._handle_errors(read.rows, report, now)
            if read.incomplete is None:
                self._confirm(now, report)
                self._client.set(self._keys.reconcile_checkpoint(), repr(now))
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
        value = self._client.get(self._keys.reconcile_checkpoint())
        if value is not None:
            return float(value)
        # First run: from the oldest order still waiting for confirmation (or now).
        oldest = self._client.zrange(
            self._keys.state_index(OrderState.SUBMITTED), 0, 0, withscores=True
        )
        start = min(now, float(oldest[0][1])) if oldest else now
        return start - self._cfg.tolerance_s

    def _read(self, call: Callable[[], Any], report: ReconcileReport) -> Any:
        """One throttled read; a 429 blocks the fleet's reads and is retried a few times."""
        throttled = 0
        while True:
            self._throttle.wait(self._sleep)
            # A long run keeps its lease; a host that lost it stops (another one leads now).
            if not self._leader.try_lead(ROLE, holder=self._cfg.holder, ttl_s=self._lease_s):
                raise JettiUnavailable(None, "lost the reconciler lease mid-run")
            report.requests += 1
            try:
                return call()
            except RateLimited as exc:
                throttled += 1
                pause = exc.retry_after_s if exc.retry_after_s is not None else READ_BLOCK_S
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
        stats = self._keys.reconcile_stats()
        last = self._client.hget(stats, "trailing_at")
        if last is not None and now - float(last) < self._cfg.trailing_every_s:
            return
        read = self._read_errors(now - self._cfg.trailing_s, window_from, report)
        # Its stale errors were counted when their window was read: only rejections count.
        scratch = ReconcileReport()
        self._handle_errors(read.rows, scratch, now)
        report.rejected += scratch.rejected
        report.rejected_keys.extend(scratch.rejected_keys)
        report.trailing_reads += 1
        self._client.hset(stats, "trailing_at", repr(now))
        if read.incomplete is not None:
            log.warning("reconcile_trailing_incomplete", reason=read.incomplete)

    def _handle_errors(
        self, rows: Sequence[ImportRow], report: ReconcileReport, now: float
    ) -> None:
        wanted = [r for r in rows if r.status == "error" and r.external_id]
        if not wanted:
            return
        # The worker sends the order key as externalId, so a row names its ledger entry.
        candidates = sorted({str(r.external_id) for r in wanted})
        entries = dict(zip(candidates, self._ledger.get_many(candidates), strict=True))
        pipe = self._client.pipeline(transaction=False)
        for row in wanted:
            pipe.zscore(self._keys.reconcile_acted(), str(row.id))
        acted = {row.id for row, score in zip(wanted, pipe.execute(), strict=True) if score}
        done: set[str] = set()
        for row in wanted:
            if row.id in acted:
                continue  # this row already dead-lettered its order; a replay stands
            key = str(row.external_id)
            entry = entries.get(key)
            if entry is None or key in done:
                continue
            verdict = self._refers_to_last_sent(row, entry)
            if verdict is None:
                if self._unlettered(entry, row) and self._reject(entry, row, now, cas=False):
                    done.add(key)  # an earlier pass died between its ledger write and the letter
                continue
            if not verdict:
                report.stale_errors += 1
                continue
            if self._reject(entry, row, now):
                done.add(key)
                report.rejected += 1
                report.rejected_keys.append(key)
                if entry.state is OrderState.CONFIRMED:
                    # Its error row showed up after the grace period (reliability #16).
                    self._surprise("error_after_confirmed")

    def _refers_to_last_sent(self, row: ImportRow, entry: OrderEntry) -> bool | None:
        """True: the error is about the payload last sent. False: about an older payload.
        None: nothing to decide (the order is not waiting on Jetti's verdict)."""
        if entry.state not in (OrderState.SUBMITTED, OrderState.CONFIRMED):
            return None
        if not entry.payload_hash:
            return None
        if row.payload is not None:
            return canonical_hash(row.payload) == entry.payload_hash
        submitted = entry.submitted_at
        return submitted is not None and row.created_at >= submitted - self._cfg.tolerance_s

    def _unlettered(self, entry: OrderEntry, row: ImportRow) -> bool:
        """The order is DEAD by an import-log rejection no later than `row`, and no dead letter
        was written since it went DEAD: a pass crashed after the ledger write."""
        if entry.state is not OrderState.DEAD:
            return False
        if entry.dead_reason is not DeadReason.REJECTED_BY_JETTI:
            return False
        if row.created_at > entry.state_since:
            return False
        letter = self._dead.get(entry.order_key)
        return letter is None or letter.last_dead_at < entry.state_since

    def _reject(self, entry: OrderEntry, row: ImportRow, now: float, *, cas: bool = True) -> bool:
        problem = row.problem or "(Jetti gave no problem text)"
        error = f"Jetti import log #{row.id}: {problem}"
        attempt = Attempt(
            at=now,
            status=None,
            error_class="RejectedByJetti",
            excerpt=problem[:500],
            worker=self._cfg.holder,
            outcome="dead",
        )
        payload = None
        if row.payload is not None:
            try:
                payload = dumps_canonical(row.payload)
            except (TypeError, ValueError):
                payload = None
        key = entry.order_key
        if self._reject_with(entry, error, attempt, payload, now, cas=cas):
            self._client.zadd(self._keys.reconcile_acted(), {str(row.id): row.created_at})
            log.warning("order_rejected_by_jetti", order_key=key, import_id=row.id, problem=problem)
            return True
        return False

    def _reject_with(
        self,
        entry: OrderEntry,
        error: str,
        attempt: Attempt,
        payload: bytes | None,
        now: float,
        *,
        cas: bool = True,
    ) -> bool:
        """The ledger's compare-and-set first, then the dead letter (`cas=False`: the CAS is
        done, only the letter is missing).

        Never the letter first: when the CAS lost (a newer version moved the order on), undoing
        that letter could resolve or overwrite one a worker wrote meanwhile for the newer
        version. A crash between the two leaves the order DEAD without a letter; the row is not
        yet marked acted on, so the next pass finds it (`_unlettered`) and writes the letter."""
        key = entry.order_key
        if cas:
            assert entry.payload_hash is not None
            if not self._ledger.reject_sent(
                key,
                payload_hash=entry.payload_hash,
                reason=DeadReason.REJECTED_BY_JETTI,
                error=error,
                now=now,
                attempt=attempt,
            ):
                # A newer version moved the order on between our read and the write: it stands.
                return False
            if self._count_dead is not None:
                self._count_dead(DeadReason.REJECTED_BY_JETTI)
        self._dead.put(
            key,
            reason=DeadReason.REJECTED_BY_JETTI,
            raw=entry.raw,
            payload=payload,
            payload_version=entry.sent_version,  # Jetti's copy of what was sent
            # The ledger's attempts, the rejection included (reject_sent recorded it).
            attempts=self._ledger.attempts(key),
            source=entry.source,
            error=error,
            now=now,
        )
        return True

    def _confirm(self, now: float, report: ReconcileReport) -> None:
        """Confirm every SUBMITTED order sent before `now - grace`, walking the SUBMITTED index
        (scored by the time the order was sent) in chunks: no scan, no limit per run."""
        index = self._keys.state_index(OrderState.SUBMITTED)
        cutoff = f"({now - self._cfg.grace_s!r}"
        low: str = "-inf"
        seen: set[bytes] = set()
        checks = 0
        while True:
            rows = self._client.zrangebyscore(
                index, low, cutoff, start=0, num=PASS_LIMIT, withscores=True
            )
            fresh = [(member, score) for member, score in rows if member not in seen]
            if not fresh:
                break
            seen.update(member for member, _ in fresh)
            keys = [member.decode() for member, _ in fresh]
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(
                    self._keys.order(key), ["state", "payload_hash", "enqueued_at", "first_seen_at"]
                )
            confirm: list[tuple[str, str]] = []
            for key, (state, payload_hash, enqueued, first_seen) in zip(
                keys, pipe.execute(), strict=True
            ):
                if state != b"submitted" or not payload_hash:
                    continue
                if float(enqueued or 0) > float(first_seen or 0):
                    # More than one version: Jetti may have applied them out of order.
                    if checks >= self._cfg.max_sale_checks:
                        continue  # the next run checks it; it stays SUBMITTED meanwhile
                    checks += 1
                    entry = self._ledger.get(key)
                    if entry is None or entry.payload_hash is None:
                        continue
                    # A shed body leaves nothing to compare with: confirm as it stands.
                    if entry.raw is not None and not self._sale_is_current(entry, report, now):
                        continue
                confirm.append((key, payload_hash.decode()))
            report.confirmed += len(self._ledger.confirm_many(confirm, now=now))
            if len(rows) < PASS_LIMIT:
                break
            low = repr(float(rows[-1][1]))  # inclusive: `seen` skips the members already done

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
        if outcome == 1:
            self._publisher.publish([entry.order_key])
            report.repaired += 1
            log.warning("order_repaired", order_key=entry.order_key, sale_found=sale is not None)
        elif outcome == -1:
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

    def _surprise(self, assumption: str) -> None:
        if self._count_surprise is not None:
            self._count_surprise(assumption)

    def _record(self, report: ReconcileReport, now: float) -> None:
        key = self._keys.reconcile_stats()
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(key, "runs", 1)
        for name in (
            "requests",
            "rows_read",
            "rejected",
            "stale_errors",
            "confirmed",
            "repaired",
            "sale_checks",
            "trailing_reads",
        ):
            value = getattr(report, name)
            if value:
                pipe.hincrby(key, name, value)
        fields: dict[str, str] = {
            "last_run_at": repr(now),
            "holder": self._cfg.holder,
            "interval_s": repr(self._cfg.interval_s),
            "grace_s": repr(self._cfg.grace_s),
            "last_error": report.error or "",
        }
        if report.error is None:
            fields["last_ok_at"] = repr(now)
        else:
            pipe.hincrby(key, "failed_runs", 1)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.execute()


def build_reconciler(parts: Any) -> Reconciler | None:
    """The reconciler for a maintenance process (`worker.runtime.MaintenanceParts`), or None
    when it is off (disabled, or no API token to read the import log with)."""
    from worker.jetti.client import build_http_client, build_jetti_client
    from worker.store.stats import Stats

    settings = parts.settings
    if not settings.reconcile_active:
        return None
    http_total = (
        settings.http_connect_timeout_s
        + settings.http_read_timeout_s
        + settings.http_write_timeout_s
        + settings.http_pool_timeout_s
    )
    stats = Stats(parts.redis, parts.keys)
    return Reconciler(
        config=ReconcileConfig(
            holder=parts.holder,
            interval_s=settings.reconcile_interval_s,
            grace_s=settings.reconcile_grace_s,
            tolerance_s=max(DEFAULT_TOLERANCE_S, http_total),
            max_sale_checks=max(
                2, int(settings.reconcile_interval_s * settings.jetti_read_rate_per_s / 2)
            ),
        ),
        client=parts.redis,
        keys=parts.keys,
        ledger=SettleLedger(
            parts.redis,
            parts.keys,
            body_ttl_s=settings.body_ttl_s,
            tombstone_ttl_s=settings.tombstone_ttl_s,
        ),
        dead_letters=DeadLetters(parts.redis, parts.keys),
        jetti=build_jetti_client(settings, build_http_client(settings)),
        throttle=ApiThrottle(
            parts.redis, parts.keys, kind="read", rate_per_s=settings.jetti_read_rate_per_s
        ),
        publisher=parts.publisher,
        leader=parts.leader,
        rebuild=build_rebuild(settings),
        count_dead=stats.count_dead,
        count_surprise=stats.count_surprise,
    )


def build_rebuild(settings: Settings) -> Rebuild:
    """Rebuilds the payload the worker would send for a raw order (None if it cannot)."""
    rules = load_rules(settings.rules_file) if settings.rules_file else Rules.empty()

    def rebuild(order_key: str, raw: bytes) -> Built | None:
        try:
            return transform(
                parse_raw_order(loads_document(raw)),
                rules,
                max_units_per_line=settings.max_units_per_line,
                max_line_items=settings.max_line_items,
                auto_connect_default=settings.auto_connect_default,
                external_id=order_key,
            )
        except (InvalidOrder, TransformError):
            return None

    return rebuild
