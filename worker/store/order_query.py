"""Finding orders for the operator (`jetti-relay orders list`, the console's orders and backlog
pages) without scanning keys.

Every search walks one sorted set and reads the hashes of what it keeps:

- a key prefix: the order-key index (`Keys.order_key_index`, every raw key at score 0) by
  ZRANGEBYLEX, in lexicographic order of the raw key (UTF-8 bytes), so prefix search works
  whatever the encoding of the key names; an exact key is a prefix that matches it;
- otherwise: the received index (`Keys.received_index`) newest first; with a state filter whose
  indexes together hold at most `EXAMINE_LIMIT` orders, those state indexes instead (read whole,
  ordered by received time the same way), so a search for the few orders in RETRY_WAIT among
  100,000 answers in one call;
- the backlog of PENDING and SUBMITTING: their state index, oldest in state first; of
  RETRY_WAIT: the retry schedule, soonest due first.

One call examines at most `EXAMINE_LIMIT` index members and answers a cursor to go on: a rare
filter over a large index returns fewer rows (maybe none) and a cursor, never a scan of
everything at once. The cursor is opaque text (URL-safe) naming the last member examined, so
orders added or removed between calls never make a page skip or repeat the rest. The fields of
a page are read with one pipelined HMGET per order.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.core.keys import Keys
from worker.core.states import OrderState
from worker.store.ledger_schema import OrderField

# Index members one call looks at, at most (the bound on a rare filter's work per call).
EXAMINE_LIMIT = 5000
# Members read per ZRANGE round trip while walking an index.
WALK_CHUNK = 500
# The most rows one call returns.
MAX_LIMIT = 1000
# The states the backlog lists (the others have nothing waiting).
BACKLOG_STATES = (OrderState.PENDING, OrderState.RETRY_WAIT, OrderState.SUBMITTING)

_ROW_FIELDS = (
    OrderField.STATE,
    OrderField.STATE_SINCE,
    OrderField.ENQUEUED_AT,
    OrderField.ATTEMPTS,
    OrderField.NEXT_ATTEMPT_AT,
    OrderField.LAST_ERROR,
    OrderField.DEAD_REASON,
    OrderField.SOURCE,
)


@dataclass(frozen=True)
class OrderRow:
    """One order as a listing shows it. Times are epoch seconds; `received_at` is when its
    latest version (or a replay) was received; `next_attempt_at` is set in RETRY_WAIT;
    `last_error` may hold personal data (mask it before showing it)."""

    order_key: str
    state: OrderState
    state_since: float
    received_at: float
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    dead_reason: str | None
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (state as its value)."""
        return {
            "order_key": self.order_key,
            "state": str(self.state),
            "state_since": self.state_since,
            "received_at": self.received_at,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "dead_reason": self.dead_reason,
            "source": self.source,
        }


@dataclass(frozen=True)
class OrderPage:
    """One page: its rows, the cursor of the next page (None at the end) and how many index
    members this call examined."""

    rows: list[OrderRow]
    next_cursor: str | None
    examined: int


class BadCursor(ValueError):
    """A cursor that this kind of search did not produce (or that was altered)."""


def _encode_cursor(mode: str, member: bytes, score: float | None) -> str:
    body = json.dumps({"m": mode, "k": member.decode("utf-8", "surrogateescape"), "s": score})
    return base64.urlsafe_b64encode(body.encode("utf-8", "surrogateescape")).decode().rstrip("=")


def _decode_cursor(cursor: str, mode: str) -> tuple[bytes, float | None]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded).decode("utf-8", "surrogateescape"))
        member = str(data["k"]).encode("utf-8", "surrogateescape")
        score = None if data["s"] is None else float(data["s"])
        found = data["m"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadCursor(f"cursor {cursor[:40]!r} is not one this listing produced") from exc
    if found != mode:
        raise BadCursor(f"cursor of a {found!r} listing given to a {mode!r} listing")
    return member, score


def _text(value: bytes | None) -> str | None:
    return None if value is None or value == b"" else value.decode()


def _float(value: bytes | None) -> float | None:
    text = _text(value)
    return None if text is None else float(text)


class OrderQuery:
    """Searches over one deployment's ledger (see the module docstring). The client must use
    decode_responses=False."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys

    # --- counts ---------------------------------------------------------------------------
    def counts(self) -> dict[OrderState, int]:
        """Orders in each state (one ZCARD per state index, pipelined)."""
        pipe = self._client.pipeline(transaction=False)
        for state in OrderState:
            pipe.zcard(self._keys.state_index(state))
        return dict(zip(OrderState, (int(n) for n in pipe.execute()), strict=True))

    def indexed(self) -> int:
        """Orders in the order-key index. Fewer than the sum of `counts()` means orders recorded
        before the index existed: `jetti-relay reindex` adds them."""
        return int(self._client.zcard(self._keys.order_key_index()))

    # --- search ---------------------------------------------------------------------------
    def search(
        self,
        *,
        prefix: str | None = None,
        states: Sequence[OrderState] = (),
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OrderPage:
        """Orders whose key starts with `prefix` (lexicographic order), or all orders newest
        received first, filtered by `states` (any of) and received time (`since`/`until`,
        epoch s, inclusive). At most `limit` rows (1..MAX_LIMIT) and `EXAMINE_LIMIT` members
        examined; `next_cursor` continues the same search. Raises BadCursor for a cursor of
        another kind of search, ValueError for a limit out of range."""
        limit = _check_limit(limit)
        wanted = frozenset(states)
        if prefix:
            return self._by_prefix(prefix, wanted, since, until, limit, cursor)
        small = self._small_state_sets(wanted)
        if small is not None:
            return self._by_state_sets(small, since, until, limit, cursor)
        members = self._walk_scores(
            self._keys.received_index(),
            "recv",
            cursor,
            low=since,
            high=until,
            descending=True,
        )
        return self._collect(members, wanted, since, until, limit, "recv")

    def backlog(
        self, state: OrderState, *, limit: int = 50, cursor: str | None = None
    ) -> OrderPage:
        """The orders waiting in `state` (PENDING, RETRY_WAIT or SUBMITTING): RETRY_WAIT by
        next attempt (the retry schedule), the others by time in state, oldest first. Raises
        ValueError for another state."""
        if state not in BACKLOG_STATES:
            raise ValueError(f"no backlog for {state}: one of {', '.join(BACKLOG_STATES)}")
        limit = _check_limit(limit)
        index = (
            self._keys.retry_schedule()
            if state is OrderState.RETRY_WAIT
            else self._keys.state_index(state)
        )
        mode = f"backlog:{state}"
        members = self._walk_scores(index, mode, cursor, low=None, high=None, descending=False)
        return self._collect(members, frozenset({state}), None, None, limit, mode)

    # --- walks ------------------------------------------------------------------------------
    def _by_prefix(
        self,
        prefix: str,
        wanted: frozenset[OrderState],
        since: float | None,
        until: float | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        start = b"[" + prefix.encode()
        if cursor is not None:
            last, _ = _decode_cursor(cursor, "prefix")
            if not last.startswith(prefix.encode()):
                raise BadCursor("the cursor belongs to another prefix")
            start = b"(" + last
        # 0xFF never occurs in UTF-8: every key starting with the prefix sorts below this.
        end = b"[" + prefix.encode() + b"\xff"

        def walk() -> Iterator[tuple[bytes, float | None]]:
            low = start
            while True:
                chunk = self._client.zrangebylex(
                    self._keys.order_key_index(), low, end, start=0, num=WALK_CHUNK
                )
                for member in chunk:
                    yield member, None
                if len(chunk) < WALK_CHUNK:
                    return
                low = b"(" + chunk[-1]

        return self._collect(walk(), wanted, since, until, limit, "prefix")

    def _small_state_sets(self, wanted: frozenset[OrderState]) -> list[OrderState] | None:
        """The wanted states when their indexes together hold at most EXAMINE_LIMIT orders."""
        if not wanted:
            return None
        ordered = [s for s in OrderState if s in wanted]
        pipe = self._client.pipeline(transaction=False)
        for state in ordered:
            pipe.zcard(self._keys.state_index(state))
        total = sum(int(n) for n in pipe.execute())
        return ordered if total <= EXAMINE_LIMIT else None

    def _by_state_sets(
        self,
        states: list[OrderState],
        since: float | None,
        until: float | None,
        limit: int,
        cursor: str | None,
    ) -> OrderPage:
        """Every member of a few small state indexes, ordered newest received first (ties by
        key, descending) like the received index's walk, so the cursors of both agree."""
        pipe = self._client.pipeline(transaction=False)
        for state in states:
            pipe.zrange(self._keys.state_index(state), 0, -1)
        members = sorted({m for chunk in pipe.execute() for m in chunk})
        examined = len(members)
        scores = (
            self._client.execute_command("ZMSCORE", self._keys.received_index(), *members)
            if members
            else []
        )
        ordered = sorted(
            ((m, 0.0 if s is None else float(s)) for m, s in zip(members, scores, strict=True)),
            key=lambda pair: (pair[1], pair[0]),
            reverse=True,
        )
        if cursor is not None:
            last, last_score = _decode_cursor(cursor, "recv")
            if last_score is None:
                raise BadCursor("the cursor has no score")
            ordered = [(m, sc) for m, sc in ordered if (sc, m) < (last_score, last)]
        page = self._collect(iter(ordered), frozenset(states), since, until, limit, "recv")
        return OrderPage(page.rows, page.next_cursor, examined)

    def _walk_scores(
        self,
        index: str,
        mode: str,
        cursor: str | None,
        *,
        low: float | None,
        high: float | None,
        descending: bool,
    ) -> Iterator[tuple[bytes, float | None]]:
        """Members of a scored index in (score, member) order (both descending or both
        ascending, Redis's order for ties), strictly after the cursor's member, within
        [low, high]."""
        skip: tuple[float, bytes] | None = None
        if cursor is not None:
            member, score = _decode_cursor(cursor, mode)
            if score is None:
                raise BadCursor("the cursor has no score")
            skip = (score, member)
            if descending:
                high = score if high is None else min(high, score)
            else:
                low = score if low is None else max(low, score)
        bound_low: float | str = "-inf" if low is None else low
        bound_high: float | str = "+inf" if high is None else high

        def after_cursor(score: float, member: bytes) -> bool:
            if skip is None or score != skip[0]:
                return True
            return member < skip[1] if descending else member > skip[1]

        offset = 0
        while True:
            if descending:
                chunk = self._client.zrevrangebyscore(
                    index, bound_high, bound_low, start=offset, num=WALK_CHUNK, withscores=True
                )
            else:
                chunk = self._client.zrangebyscore(
                    index, bound_low, bound_high, start=offset, num=WALK_CHUNK, withscores=True
                )
            for member, score in chunk:
                if after_cursor(float(score), member):
                    yield member, float(score)
            if len(chunk) < WALK_CHUNK:
                return
            # Go on from the last score seen; the members already read at that score are
            # skipped by offset (ties come in a fixed member order).
            last = float(chunk[-1][1])
            ties = sum(1 for _, s in chunk if float(s) == last)
            if descending:
                offset = offset + ties if last == bound_high else ties
                bound_high = last
            else:
                offset = offset + ties if last == bound_low else ties
                bound_low = last

    def _collect(
        self,
        members: Iterator[tuple[bytes, float | None]],
        wanted: frozenset[OrderState],
        since: float | None,
        until: float | None,
        limit: int,
        mode: str,
    ) -> OrderPage:
        """Rows for `members` (read WALK_CHUNK at a time, one pipelined HMGET each) that pass
        the filters, until `limit` rows or EXAMINE_LIMIT members; the cursor names the last
        member examined when the walk stopped early."""
        rows: list[OrderRow] = []
        examined = 0
        last: tuple[bytes, float | None] | None = None
        more = True  # members may follow the last one examined
        leftover = False  # the page filled before the end of the batch read
        unfiltered = not (wanted or since is not None or until is not None)
        # A filter may keep few members: start with twice the page and double per round.
        chunk = 2 * limit
        while len(rows) < limit and examined < EXAMINE_LIMIT:
            want = min(chunk, WALK_CHUNK, EXAMINE_LIMIT - examined)
            chunk *= 2
            if unfiltered:
                # Without a filter every member is a row: read no more than the page needs.
                want = min(want, limit - len(rows))
            batch = list(itertools.islice(members, want))
            if len(batch) < want:
                more = False
            for i, (pair, row) in enumerate(zip(batch, self._rows(batch), strict=True)):
                examined += 1
                last = pair
                if row is not None and _passes(row, wanted, since, until):
                    rows.append(row)
                    if len(rows) >= limit:
                        leftover = i + 1 < len(batch)
                        break
            if not more:
                break
        if leftover:
            more = True
        elif more and last is not None:
            # A page that ends exactly at the last member: look one ahead to say so.
            more = next(members, None) is not None
        cursor = _encode_cursor(mode, last[0], last[1]) if more and last is not None else None
        return OrderPage(rows, cursor, examined)

    def _rows(self, batch: list[tuple[bytes, float | None]]) -> list[OrderRow | None]:
        """The rows of `batch` (None where the hash is gone), with their received time: one
        pipelined HMGET per order and one ZMSCORE."""
        if not batch:
            return []
        pipe = self._client.pipeline(transaction=False)
        for member, _ in batch:
            pipe.hmget(self._keys.order(member.decode()), [f.value for f in _ROW_FIELDS])
        # redis-py's Pipeline stubs leave execute_command untyped (Redis's is typed).
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "ZMSCORE", self._keys.received_index(), *(m for m, _ in batch)
        )
        *fields, received = pipe.execute()
        out: list[OrderRow | None] = []
        for (member, _), values, at in zip(batch, fields, received, strict=True):
            state, since, enqueued, attempts, next_at, error, reason, source = values
            if state is None:  # deleted since the index was read
                out.append(None)
                continue
            out.append(
                OrderRow(
                    order_key=member.decode(),
                    state=OrderState(state.decode()),
                    state_since=_float(since) or 0.0,
                    # Not yet in the received index (recorded before it existed): enqueued_at.
                    received_at=float(at) if at is not None else (_float(enqueued) or 0.0),
                    attempts=int(_text(attempts) or 0),
                    next_attempt_at=_float(next_at),
                    last_error=_text(error),
                    dead_reason=_text(reason),
                    source=_text(source),
                )
            )
        return out


def _passes(
    row: OrderRow, wanted: frozenset[OrderState], since: float | None, until: float | None
) -> bool:
    if wanted and row.state not in wanted:
        return False
    if since is not None and row.received_at < since:
        return False
    return until is None or row.received_at <= until


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}, not {limit}")
    return limit


__all__ = [
    "EXAMINE_LIMIT",
    "BadCursor",
    "OrderPage",
    "OrderQuery",
    "OrderRow",
]
