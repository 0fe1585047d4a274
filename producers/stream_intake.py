"""`StreamIntake`: one consumer of the intake stream, feeding the producer library.

Per batch of entries read in the group: the entries become candidates, `enqueue_candidates`
validates, records and publishes them in one call (the library's one path), then one
transaction appends the rejections to the rejects stream and acknowledges the whole batch.
An entry is acknowledged only after the ledger holds it; a crash before that leaves it pending,
and recording it again is harmless (the ledger's version compare-and-set).

Failures, by kind:

- Redis or the broker unreachable, Redis read-only, out of memory or short of in-sync replicas
  (NOREPLICAS), or the batch recorded but fewer than `min_replicas_ack` replicas confirming it
  in time (`transient`): nothing of the batch is acknowledged; the same batch is tried again
  after a pause, kept this consumer's (`touch`) so no other consumer counts a delivery for an
  outage. Recording it again is harmless, and acknowledging it waits for the replicas.
- Anything else while handling a batch (a server refusal, a bug an entry triggers): the entries
  are tried one at a time; one that still fails stays pending and the others go through.
- Pending entries idle for `reclaim_idle_s` (their consumer died or gave up on them) are
  claimed by whichever consumer looks first; those already delivered `max_deliveries` times go
  to the rejects stream instead. Entries read before are claimed and handled one at a time,
  fewest deliveries first, so an entry that kills its consumer takes only itself down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import redis
import structlog

from producers.enqueue import (
    EnqueueSummary,
    commit_chunk,
    enqueue_candidates,
    prepare_chunk,
    replica_fence,
)
from producers.stream_config import (
    IntakeCounts,
    IntakeLimits,
    transient,
)
from producers.stream_entries import gave_up, rejected_entries, to_candidate
from producers.tracing import configured_tracer
from worker.core.keys import Keys
from worker.core.ports import KeyPublisher
from worker.core.rules import Rules
from worker.core.tracing import Tracer
from worker.loop_failures import FailureStreak
from worker.store.intake import IntakeStream, PendingEntry, StreamEntry
from worker.store.ledger import Ledger

log = structlog.get_logger("jetti_relay.intake")

# A consumer idle for this many reclaim times, holding nothing, has stopped: it leaves the group.
FORGET_AFTER_RECLAIMS = 10
# Pause after a failure, doubled per failure in a row up to the maximum.
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


class StreamIntake:
    """One consumer (`consumer`, unique per process) of the intake stream's group.

    `run(stop)` loops until `stop` is set; `poll`, `reclaim` and `trim` are its steps, public
    for tests and tools. Orders are recorded and published on `client` / `publisher` under
    `keys` with `rules`; `limits` bound the batches, the reclaim and the rejects; `clock`
    (epoch s) stamps the rejects. `counts` says what this consumer did.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        publisher: KeyPublisher,
        keys: Keys,
        *,
        consumer: str,
        limits: IntakeLimits,
        rules: Rules | None = None,
        clock: Callable[[], float] = time.time,
        tracer: Tracer | None = None,
    ) -> None:
        self.client = client
        self.publisher = publisher
        self.keys = keys
        self.consumer = consumer
        self.limits = limits
        self.rules = rules
        self.clock = clock
        self.stream = IntakeStream(client, keys)
        self.counts = IntakeCounts()
        self._unfinished: list[StreamEntry] = []
        self._group_ready = False
        # Under load (`poll`): one thread reads the next batch, one writes the previous batch
        # while this one is validated; one read and one write at a time.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-read")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-write")
        self._prefetch: Future[list[StreamEntry]] | None = None
        self._inflight: tuple[list[StreamEntry], EnqueueSummary, Future[None]] | None = None
        self._ledger = Ledger(client, keys)
        self._fence = replica_fence(
            client, keys, limits.min_replicas_ack, limits.min_replicas_ack_timeout_s
        )
        # A span per order when tracing is on (producers.tracing), on both write paths.
        self._tracer = configured_tracer() if tracer is None else tracer
        # A batch failing the same way again and again: one traceback, then a line now and then.
        self._failures = FailureStreak(
            log, failed="intake_batch_failed", recovered="intake_batch_recovered"
        )

    # --- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read, reclaim and trim until `stop` is set (within about `block_ms`). Failures are
        logged and followed by a pause; nothing here ends the loop but `stop`."""
        log.info("intake_started", consumer=self.consumer, stream=self.keys.intake_stream())
        backoff_s = BACKOFF_MIN_S
        next_reclaim = next_trim = 0.0
        while not stop.is_set():
            try:
                if not self._group_ready:
                    self.stream.ensure_group()
                    self._group_ready = True
                if self._unfinished:
                    self._retry_unfinished()
                else:
                    # Scheduled before they run: one failing never keeps poll from running.
                    if time.monotonic() >= next_reclaim:
                        # The batch being written first: reclaim must not find it idle.
                        self._finish_inflight()
                        every = min(self.limits.reclaim_every_s, self.limits.reclaim_idle_s)
                        next_reclaim = time.monotonic() + every
                        self.reclaim()
                    if time.monotonic() >= next_trim:
                        next_trim = time.monotonic() + self.limits.trim_every_s
                        self.trim()
                    self.poll(overlap=True)
                backoff_s = BACKOFF_MIN_S
            except Exception as exc:
                # Redis may be restarting, or the group was deleted: look at it again first.
                self._group_ready = False
                log.warning(
                    "intake_paused",
                    consumer=self.consumer,
                    error=type(exc).__name__,
                    unfinished=len(self._unfinished),
                    pause_s=backoff_s,
                    exc_info=not transient(exc),
                )
                stop.wait(backoff_s)
                backoff_s = min(2 * backoff_s, BACKOFF_MAX_S)
        self.close()
        log.info("intake_stopped", consumer=self.consumer, **vars(self.counts))

    def close(self) -> None:
        """Handle the batch read ahead, if any (else it stays pending and is reclaimed after
        `reclaim_idle_s`), and stop the read-ahead thread."""
        try:
            self._finish_inflight()
            entries = self._take_prefetched()
            if entries:
                self.counts.read += len(entries)
                self._process(entries)
        except Exception:
            log.warning("intake_read_ahead_left_pending", consumer=self.consumer, exc_info=True)
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    # --- the steps -----------------------------------------------------------------------
    def poll(self, *, overlap: bool = False) -> int:
        """Read one batch of new entries (waiting up to `block_ms`) and handle it; the number
        of entries read. Raises on a transient failure, the batch kept for `run` to retry.

        With `overlap` (what `run` does) and under load (a full batch read), the next batch is
        read on a helper thread and this one is written while the next is validated, so Redis
        and this process work at the same time; batches are still handled in stream order, and
        a full batch is acknowledged by the next call (or `close`). Without it, the batch is
        acknowledged before `poll` returns."""
        entries = self._take_prefetched()
        if entries is None:
            entries = self.stream.read_new(
                self.consumer, count=self.limits.batch_size, block_ms=self.limits.block_ms
            )
        self.counts.read += len(entries)
        full = overlap and len(entries) >= self.limits.batch_size
        if full:
            self._prefetch = self._reader.submit(
                self.stream.read_new, self.consumer, count=self.limits.batch_size, block_ms=None
            )
        if full or self._inflight is not None:
            self._overlap(entries)
        elif entries:
            self._process(entries)
        if not full:
            self._finish_inflight()  # the stream is drained: acknowledge what was written
        return len(entries)

    def _overlap(self, entries: list[StreamEntry]) -> None:
        """Validate `entries` while the previous batch is written on the writer thread, then
        acknowledge that one and hand this one to the writer: the same `prepare_chunk` and
        `commit_chunk` as `enqueue_candidates`, in two stages so this process's CPU and
        Redis's work overlap under load. A batch whose write failed is handled again the
        plain way (`_process`: retries, isolation); writing it twice is harmless."""
        if not entries:
            return
        try:
            prepared = prepare_chunk(
                [to_candidate(i, e) for i, e in enumerate(entries)],
                now=self.clock(),
                max_future_skew_s=self.limits.max_future_skew_s,
                rules=self.rules,
                max_line_items=self.limits.max_line_items,
            )
        except Exception:
            self._finish_inflight_before(entries)
            self._process(entries)
            return
        self._finish_inflight_before(entries)
        summary = EnqueueSummary()
        future = self._writer.submit(
            commit_chunk,
            prepared,
            ledger=self._ledger,
            publisher=self.publisher,
            summary=summary,
            fence=self._fence,
            tracer=self._tracer,
        )
        self._inflight = (entries, summary, future)

    def _finish_inflight_before(self, entries: list[StreamEntry]) -> None:
        """`_finish_inflight`; when it fails for a transient reason, `entries` (read, not yet
        handled) are kept for the retry with the rest, not left to the reclaim."""
        try:
            self._finish_inflight()
        except Exception:
            self._unfinished = [*self._unfinished, *entries]
            raise

    def _finish_inflight(self) -> None:
        """Wait for the batch being written; acknowledge it, or handle it again the plain way
        when its write failed."""
        if self._inflight is None:
            return
        entries, summary, future = self._inflight
        self._inflight = None
        try:
            future.result()
        except Exception:
            self._process(entries)
            return
        try:
            self._settle(entries, summary)
        except Exception:
            # Written but not acknowledged: retried with the rest (recording again is harmless),
            # not left for the reclaim to count as one more delivery.
            self._unfinished = [*self._unfinished, *entries]
            raise
        self._failures.succeeded(consumer=self.consumer)

    def _take_prefetched(self) -> list[StreamEntry] | None:
        """The batch read ahead (None when none was); a failed read raises here."""
        future, self._prefetch = self._prefetch, None
        return None if future is None else future.result()

    def reclaim(self) -> int:
        """Take over entries pending on any consumer for `reclaim_idle_s`: reject those
        delivered `max_deliveries` times, handle the rest; the number taken over."""
        idle_ms = int(self.limits.reclaim_idle_s * 1000)
        self.stream.forget_idle_consumers(
            min_idle_ms=FORGET_AFTER_RECLAIMS * idle_ms, keep=self.consumer
        )
        pending = self.stream.idle_pending(min_idle_ms=idle_ms, count=self.limits.batch_size)
        if not pending:
            return 0
        over = [p for p in pending if p.deliveries >= self.limits.max_deliveries]
        rest = sorted(
            (p for p in pending if p.deliveries < self.limits.max_deliveries),
            key=lambda p: p.deliveries,  # stable: oldest id first within a count
        )
        taken = self._give_up(over, idle_ms)
        # Read once and left pending: its consumer died or stalled; handled like new ones.
        once = self.stream.claim(
            self.consumer, [p.entry_id for p in rest if p.deliveries <= 1], min_idle_ms=idle_ms
        )
        taken += len(once)
        self.counts.reclaimed += len(once)
        if once:
            self._process(once)
        for suspect in (p for p in rest if p.deliveries > 1):
            entries = self.stream.claim(self.consumer, [suspect.entry_id], min_idle_ms=idle_ms)
            taken += len(entries)
            self.counts.reclaimed += len(entries)
            if entries:
                self._process(entries)
        log.info("intake_reclaimed", consumer=self.consumer, pending=len(pending), taken=taken)
        return taken

    def trim(self) -> str | None:
        """Trim the stream below the oldest entry any group still needs; the floor used."""
        return self.stream.trim()

    # --- handling a batch ----------------------------------------------------------------
    def _give_up(self, over: Sequence[PendingEntry], idle_ms: int) -> int:
        if not over:
            return 0
        deliveries = {p.entry_id: p.deliveries for p in over}
        entries = self.stream.claim(self.consumer, list(deliveries), min_idle_ms=idle_ms)
        rejects = [gave_up(e, deliveries[e.entry_id]) for e in entries]
        self.stream.settle(
            [e.entry_id for e in entries],
            rejects,
            rejects_max=self.limits.rejects_max,
            now=self.clock(),
        )
        self.counts.gave_up += len(entries)
        log.warning(
            "intake_gave_up",
            consumer=self.consumer,
            entries=[e.entry_id for e in entries][:20],
            max_deliveries=self.limits.max_deliveries,
        )
        return len(entries)

    def _process(self, entries: list[StreamEntry]) -> None:
        try:
            self._handle(entries)
            self._failures.succeeded(consumer=self.consumer)
            return
        except Exception as exc:
            if transient(exc):
                self._unfinished = entries
                raise
            self._failures.failed(exc, consumer=self.consumer, entries=len(entries))
        if len(entries) == 1:
            self.counts.failed += 1
            return
        # Isolate whatever made the batch fail: each entry alone, the good ones go through.
        for index, entry in enumerate(entries):
            try:
                self._handle([entry])
            except Exception as exc:
                if transient(exc):
                    self._unfinished = entries[index:]
                    raise
                self.counts.failed += 1
                log.exception("intake_entry_failed", consumer=self.consumer, entry=entry.entry_id)

    def _retry_unfinished(self) -> None:
        entries, self._unfinished = self._unfinished, []
        try:
            self.stream.touch(self.consumer, [e.entry_id for e in entries])
        except Exception:
            self._unfinished = entries
            raise
        self._process(entries)

    def _handle(self, entries: list[StreamEntry]) -> None:
        """Record and publish `entries`, then reject and acknowledge them: the whole batch or,
        on any error, nothing acknowledged."""
        summary = enqueue_candidates(
            [to_candidate(i, e) for i, e in enumerate(entries)],
            client=self.client,
            publisher=self.publisher,
            keys=self.keys,
            chunk_size=len(entries),
            max_future_skew_s=self.limits.max_future_skew_s,
            rules=self.rules,
            max_line_items=self.limits.max_line_items,
            min_replicas_ack=self.limits.min_replicas_ack,
            min_replicas_ack_timeout_s=self.limits.min_replicas_ack_timeout_s,
            tracer=self._tracer,
        )
        self._settle(entries, summary)

    def _settle(self, entries: list[StreamEntry], summary: EnqueueSummary) -> None:
        """Reject and acknowledge `entries`, whose accepted orders the ledger now holds."""
        rejects = rejected_entries(entries, summary)
        self.stream.settle(
            [e.entry_id for e in entries],
            rejects,
            rejects_max=self.limits.rejects_max,
            now=self.clock(),
        )
        self.counts.acked += len(entries)
        self.counts.rejected += len(rejects)
        if rejects:
            log.warning(
                "intake_rejected",
                consumer=self.consumer,
                rejected=len(rejects),
                entries=[r.entry.entry_id for r in rejects][:20],
            )
        log.debug(
            "intake_batch",
            consumer=self.consumer,
            entries=len(entries),
            accepted=summary.accepted,
            updated=summary.updated,
            unchanged=summary.unchanged,
            rejected=summary.rejected,
        )
