"""In-memory fakes of the pipeline's ports (worker/pipeline/ports/), for tests without Redis.

Each fake records what the service did to it, in plain attributes a test can assert on, and
answers from what the test scripted. They are checked against the ports by mypy: the
`_: Port = Fake()` lines at the end fail type checking when a port changes and its fake does
not. `./run test` runs `mypy tests/fakes.py tests/unit/pipeline` (strict) every time.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from worker.core.answers import ImportRow, Sale, SaleLookup
from worker.core.records import (
    Attempt,
    Claim,
    Delivery,
    DeliveryAction,
    Finish,
    OrderEntry,
    Version,
)
from worker.core.states import DeadReason, FinishReply, NoReply, OrderState
from worker.pipeline.ports import (
    Admission,
    BatchLedger,
    BatchPublisher,
    Breaker,
    Cancellations,
    CancelLedger,
    DeadLetterStore,
    JettiCancels,
    JettiSubmit,
    LockTokens,
    StatsCounters,
    StatsTally,
    SubmitAnswer,
    TokenBucket,
)

P = ParamSpec("P")
R = TypeVar("R")


class InlineExecutor(Executor):
    """Runs each submitted call at once, on the caller's thread: deterministic tests."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@dataclass
class FakeLedger:
    """The ledger's batch API and the canceller's single-order writes over dicts.

    `entries` are the orders `begin_batch` begins (PROCEED unless `actions` says otherwise;
    unknown keys answer UNKNOWN); `replies` scripts `finish_batch`'s named answer per order
    key (default `NoReply.NOTHING`). Every `Finish` written lands in `finished`, every
    single-order write in `writes` as (method, order key, keyword arguments).
    """

    entries: dict[str, OrderEntry] = field(default_factory=dict)
    actions: dict[str, DeliveryAction] = field(default_factory=dict)
    locked_elsewhere: set[str] = field(default_factory=set)
    replies: dict[str, FinishReply] = field(default_factory=dict)
    history: dict[str, list[Attempt]] = field(default_factory=dict)
    finished: list[Finish] = field(default_factory=list)
    writes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    newer_waiting: bool = False  # what mark_dead / mark_cancelled answer

    def begin_batch(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        lock_head_tail: tuple[str, str],
        lock_ttl_s: float,
        lock_busy_due_at: float,
        task_id: str,
        worker: str,
        now: float,
        max_unfinished: int,
        fill: int = 0,
        fill_token: str = "",
        retry_for_s: float = 0.0,
    ) -> list[Claim]:
        out: list[Claim] = []
        for key, token in claims:
            entry = self.entries.get(key)
            if key in self.locked_elsewhere:
                out.append(Claim(key, None, None, locked=True))
            elif entry is None:
                out.append(Claim(key, None, Delivery(DeliveryAction.UNKNOWN, None)))
            else:
                action = self.actions.get(key, DeliveryAction.PROCEED)
                held = action in (DeliveryAction.PROCEED, DeliveryAction.CRASH_LOOP)
                out.append(Claim(key, token if held else None, Delivery(action, entry)))
        return out

    def finish_batch(
        self,
        items: Sequence[Finish],
        *,
        lock_head_tail: tuple[str, str],
        now: float,
        also: Callable[[Any], None] | None = None,
        retry_for_s: float = 0.0,
    ) -> list[FinishReply]:
        self.finished.extend(items)
        if also is not None:
            also(None)
        return [self.replies.get(item.order_key, NoReply.NOTHING) for item in items]

    def attempts(self, order_key: str) -> list[Attempt]:
        return list(self.history.get(order_key, []))

    def schedule_retry(
        self,
        order_key: str,
        *,
        due_at: float,
        spend_attempt: bool,
        now: float,
        attempt: Attempt | None = None,
    ) -> None:
        self.writes.append(
            ("schedule_retry", order_key, {"due_at": due_at, "spend_attempt": spend_attempt})
        )

    def mark_dead(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        now: float,
        attempt: Attempt | None = None,
        version: Version | None = None,
    ) -> bool:
        self.writes.append(("mark_dead", order_key, {"reason": reason}))
        return self.newer_waiting

    def mark_cancelled(
        self,
        order_key: str,
        *,
        version: Version,
        sale_id: int | None,
        via: str,
        now: float,
        attempt: Attempt | None = None,
    ) -> bool:
        self.writes.append(("mark_cancelled", order_key, {"sale_id": sale_id, "via": via}))
        return self.newer_waiting

    def finish_of(self, order_key: str) -> Finish:
        """The one `Finish` written for `order_key`."""
        (item,) = [f for f in self.finished if f.order_key == order_key]
        return item


@dataclass
class FakeDeadLetters:
    """Dead letters by order key (reason, error, payload); resolved keys in `resolved`."""

    letters: dict[str, tuple[DeadReason, str, bytes | None]] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)

    def put(
        self,
        order_key: str,
        *,
        reason: DeadReason,
        raw: bytes | None,
        payload: bytes | None,
        attempts: Sequence[Attempt],
        source: str | None,
        error: str,
        now: float,
        payload_version: Version | None = None,
    ) -> None:
        self.letters[order_key] = (reason, error, payload)

    def mark_resolved(self, order_key: str, *, now: float) -> bool:
        self.resolved.append(order_key)
        return True


@dataclass
class FakeBucket:
    """A token bucket holding `tokens`; when empty it asks for `wait_s`. `grants`, when set,
    scripts the answers of `acquire_many` as (taken, wait) instead (a bucket refilling while
    the caller sleeps). `blocked_until` records the last block."""

    tokens: int = 1_000_000
    wait_s: float = 0.1
    grants: list[tuple[int, float]] = field(default_factory=list)
    blocked_until: float | None = None

    def acquire(self) -> float:
        return 0.0 if self.acquire_many(1)[0] else self.wait_s

    def acquire_many(self, count: int) -> tuple[int, float]:
        if self.grants:
            taken, wait_s = self.grants.pop(0)
            return min(count, taken), wait_s
        taken = min(count, self.tokens)
        self.tokens -= taken
        return taken, 0.0 if self.tokens else self.wait_s

    def block(self, *, until: float) -> bool:
        self.blocked_until = until
        return True


@dataclass
class FakeBreaker:
    """A breaker answering `admission` (and `allow` = admission != "none"); records trips and
    successes."""

    admission: Admission = "all"
    trips: list[tuple[str, int | None]] = field(default_factory=list)
    successes: int = 0

    def admit(self, *, now: float) -> Admission:
        return self.admission

    def allow(self, *, now: float) -> bool:
        return self.admission != "none"

    def trip(self, *, reason: str, status: int | None = None, now: float) -> bool:
        self.trips.append((reason, status))
        return True

    def record_success(self, *, now: float | None = None) -> bool:
        self.successes += 1
        return True


@dataclass
class FakeTally:
    """Counts as `name|label|...` strings in one Counter (what the flush would write)."""

    counts: Counter[str] = field(default_factory=Counter)

    def count_submission(self, outcome: str, status: int | None) -> None:
        self.counts[f"submissions|{outcome}|{status}"] += 1

    def count_dead(self, reason: str) -> None:
        self.counts[f"dead|{reason}"] += 1

    def count_surprise(self, assumption: str) -> None:
        self.counts[f"jetti|{assumption}"] += 1

    def count_unknown(self) -> None:
        self.counts["unknown"] += 1

    def count_no_outcome(self) -> None:
        self.counts["no_outcome"] += 1

    def observe_latency(self, seconds: float) -> None:
        self.counts["latency"] += 1

    def __bool__(self) -> bool:
        return bool(self.counts)

    def queue(self, pipe: Any) -> None:
        """Nothing to queue into: the counts stay readable."""


@dataclass
class FakeStats(FakeTally):
    """The fleet counters; every batch's tally is this same object (one Counter to read)."""

    def tally(self) -> StatsTally:
        return self


@dataclass
class FakeLock:
    """Lock tokens t1, t2, ..."""

    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def make_token(self) -> str:
        return f"t{next(self.counter)}"

    def key_parts(self) -> tuple[str, str]:
        return ("lock:", "")


@dataclass
class FakePublisher:
    """Every publish as (order keys, batch size)."""

    published: list[tuple[list[str], int | None]] = field(default_factory=list)

    def publish(self, order_keys: Sequence[str], *, batch_size: int | None = None) -> int:
        self.published.append((list(order_keys), batch_size))
        return 1


@dataclass(frozen=True)
class Accepted:
    """A 2xx answer."""

    status: int = 200
    sale_id: int | None = None


@dataclass
class FakeJetti:
    """Jetti answering each submission with the next scripted answer (an `Accepted`, or an
    exception to raise); `Accepted()` once the script runs out. Bodies sent land in `sent`."""

    answers: list[SubmitAnswer | Exception] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    def submit(self, body: bytes) -> SubmitAnswer:
        self.sent.append(body)
        answer = self.answers.pop(0) if self.answers else Accepted()
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class FakeCancelJetti:
    """The sync API of a cancel: `lookup` answers find_sale, `rows` imports_of; `cancel`
    (a Sale, None, or an exception to raise) answers cancel_sale."""

    lookup: SaleLookup = field(default_factory=lambda: SaleLookup(None))
    rows: list[ImportRow] = field(default_factory=list)
    cancel: Sale | Exception | None = None
    has_api_token: bool = True
    channel_id: int | None = 7
    cancelled: list[int] = field(default_factory=list)

    def find_sale(self, external_id: str) -> SaleLookup:
        return self.lookup

    def imports_of(self, external_id: str) -> list[ImportRow]:
        return list(self.rows)

    def cancel_sale(self, sale_id: int) -> Sale | None:
        self.cancelled.append(sale_id)
        if isinstance(self.cancel, Exception):
            raise self.cancel
        return self.cancel


@dataclass
class FakeCanceller:
    """Treats the keys in `cancels` as cancellations; `raises` is raised on the first call."""

    cancels: set[str] = field(default_factory=set)
    raises: BaseException | None = None
    seen: list[str] = field(default_factory=list)

    def handle(self, entry: OrderEntry, *, now: float) -> bool:
        self.seen.append(entry.order_key)
        if self.raises is not None:
            exc, self.raises = self.raises, None
            raise exc
        return entry.order_key in self.cancels


# mypy checks every fake against its port here (see the module docstring).
_ledger: BatchLedger = FakeLedger()
_cancel_ledger: CancelLedger = FakeLedger()
_dead: DeadLetterStore = FakeDeadLetters()
_bucket: TokenBucket = FakeBucket()
_breaker: Breaker = FakeBreaker()
_tally: StatsTally = FakeTally()
_stats: StatsCounters = FakeStats()
_lock: LockTokens = FakeLock()
_publisher: BatchPublisher = FakePublisher()
_answer: SubmitAnswer = Accepted()
_jetti: JettiSubmit = FakeJetti()
_cancel_jetti: JettiCancels = FakeCancelJetti()
_canceller: Cancellations = FakeCanceller()


def order_entry(order_key: str = "o-1", raw: bytes | None = b"{}", **overrides: Any) -> OrderEntry:
    """A SUBMITTING order as a delivery reads it: no attempt spent yet, nothing sent before;
    `overrides` sets any other field."""
    fields: dict[str, Any] = {
        "order_key": order_key,
        "raw": raw,
        "raw_hash": "rh",
        "version": Version(1_000, 1),
        "state": OrderState.SUBMITTING,
        "state_since": 0.0,
        "first_seen_at": 0.0,
        "enqueued_at": 0.0,
        "submitted_at": None,
        "source": "test",
        "payload_hash": None,
        "sent_version": None,
        "line_ids": (),
        "sale_id": None,
        "attempts": 0,
        "first_failure_at": None,
        "next_attempt_at": None,
        "deliveries_started": 1,
        "deliveries_finished": 0,
        "dead_reason": None,
        "last_error": None,
        "stale_arrivals": 0,
    }
    fields.update(overrides)
    return OrderEntry(**fields)
