"""`StreamIntake`: one consumer of the intake stream, feeding the producer library.

Per batch of entries read in the group: the entries become candidates, `enqueue_candidates`
validates, records and publishes them in one call (the library's one path), then one
transaction appends the rejections to the rejects stream and acknowledges the whole batch.
An entry is acknowledged only after the ledger holds it; a crash before that leaves it pending,
and recording it again is harmless (the ledger's version compare-and-set).

Failures, by kind:

- Redis or the broker unreachable, Redis read-only or out of memory (`transient`): nothing of
  the batch is acknowledged; the same batch is tried again after a pause, kept this consumer's
  (`touch`) so no other consumer counts a delivery for an outage.
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
from dataclasses import dataclass

import redis
import structlog
from kombu.exceptions import OperationalError
from redis.exceptions import OutOfMemoryError  # type: ignore[attr-defined]  # not in types-redis

from producers.enqueue import EnqueueInterrupted, enqueue_candidates
from producers.stream_entries import gave_up, rejected_entries, to_candidate
from worker.core.keys import Keys
from worker.core.limits import DEFAULT_MAX_FUTURE_SKEW_S, DEFAULT_MAX_LINE_ITEMS
from worker.core.ports import KeyPublisher
from worker.core.rules import Rules
from worker.store.intake import IntakeStream, PendingEntry, StreamEntry

log = structlog.get_logger("jetti_relay.intake")

# How long one read waits for new entries: also how fast the loop notices `stop`.
DEFAULT_BLOCK_MS = 1000
# How often the pending entries of dead consumers are looked for (at most; and at start).
RECLAIM_EVERY_S = 5.0
# How often acknowledged entries are trimmed from the stream.
TRIM_EVERY_S = 5.0
# Pause after a failure, doubled per failure in a row up to the maximum.
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class IntakeLimits:
    """The intake's knobs (JETTI_RELAY_INTAKE_*; `worker.settings`), and the library's
    validation bounds, as plain values."""

    batch_size: int
    reclaim_idle_s: float
    max_deliveries: int
    rejects_max: int
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
    max_line_items: int = DEFAULT_MAX_LINE_ITEMS
    block_ms: int = DEFAULT_BLOCK_MS
    reclaim_every_s: float = RECLAIM_EVERY_S
    trim_every_s: float = TRIM_EVERY_S


@dataclass
class IntakeCounts:
    """What this consumer did since it started (entries, not orders: one entry, one order)."""

    read: int = 0
    acked: int = 0
    rejected: int = 0
    reclaimed: int = 0
    gave_up: int = 0
    failed: int = 0


def transient(exc: BaseException) -> bool:
    """True when retrying the same batch later can help: a transport failure, or Redis
    refusing writes for now (a replica after a failover, maxmemory reached)."""
    if isinstance(exc, EnqueueInterrupted) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(
        exc,
        redis.ConnectionError
        | redis.TimeoutError
        | redis.exceptions.ReadOnlyError
        | OutOfMemoryError
        | OperationalError,
    )


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
                        every = min(self.limits.reclaim_every_s, self.limits.reclaim_idle_s)
                        next_reclaim = time.monotonic() + every
                        self.reclaim()
                    if time.monotonic() >= next_trim:
                        next_trim = time.monotonic() + self.limits.trim_every_s
                        self.trim()
                    self.poll()
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
        log.info("intake_stopped", consumer=self.consumer, **vars(self.counts))

    # --- the steps -----------------------------------------------------------------------
    def poll(self) -> int:
        """Read one batch of new entries (waiting up to `block_ms`) and handle it; the number
        of entries read. Raises on a transient failure, the batch kept for `run` to retry."""
        entries = self.stream.read_new(
            self.consumer, count=self.limits.batch_size, block_ms=self.limits.block_ms
        )
        self.counts.read += len(entries)
        if entries:
            self._process(entries)
        return len(entries)

    def reclaim(self) -> int:
        """Take over entries pending on any consumer for `reclaim_idle_s`: reject those
        delivered `max_deliveries` times, handle the rest; the number taken over."""
        idle_ms = int(self.limits.reclaim_idle_s * 1000)
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
            return
        except Exception as exc:
            if transient(exc):
                self._unfinished = entries
                raise
            log.exception("intake_batch_failed", consumer=self.consumer, entries=len(entries))
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
        )
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
