"""The reconciler's own Redis state: its checkpoint, the import-log rows it acted on, its stats.

- `Keys.reconcile_checkpoint` (string): epoch s, the end of the last import-log window read.
- `Keys.reconcile_acted` (sorted set): import-log row ids that dead-lettered their order, scored
  by the row's `createdAt`, so a replay of the same payload is not rejected twice.
- `Keys.reconcile_stats` (hash): the counters of `worker.core.reconcile_rules.COUNT_FIELDS`, plus
  `last_run_at`, `last_ok_at`, `last_error`, `holder`, `interval_s`, `grace_s` and
  `trailing_at`; read by `read_status` for `metrics`, `health` and `order show`.

`ReconcileState.submitted_before` pages the ledger's SUBMITTED index for confirmation: members in
chunks, each with the four order-hash fields confirmation decides on, in one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import redis

from worker.core.keys import Keys
from worker.core.reconcile_rules import COUNT_FIELDS, ConfirmCandidate, ReconcileStatus
from worker.core.states import OrderState
from worker.store.ledger_schema import OrderField

# The order-hash fields a confirmation candidate is read with (see ConfirmCandidate).
_CANDIDATE_FIELDS = [
    OrderField.STATE,
    OrderField.PAYLOAD_HASH,
    OrderField.ENQUEUED_AT,
    OrderField.FIRST_SEEN_AT,
]
# The stats field of the last trailing re-read (epoch s).
_TRAILING_AT = "trailing_at"


class ReconcileState:
    """The reconciler's checkpoint, acted-on rows and stats on a sync `redis.Redis` (bytes)."""

    def __init__(self, client: redis.Redis[bytes], keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def checkpoint(self) -> float | None:
        """The end of the last window read (epoch s), None before the first complete run."""
        value = self._client.get(self._keys.reconcile_checkpoint())
        return None if value is None else float(value)

    def set_checkpoint(self, at: float) -> None:
        """Record that the import log was read up to `at` (epoch s)."""
        self._client.set(self._keys.reconcile_checkpoint(), repr(at))

    def oldest_submitted_at(self) -> float | None:
        """When the order longest in SUBMITTED entered it (epoch s), None when none is."""
        oldest = self._client.zrange(
            self._keys.state_index(OrderState.SUBMITTED), 0, 0, withscores=True
        )
        return float(oldest[0][1]) if oldest else None

    def forget_acted(self, before: float) -> None:
        """Forget the rows acted on that were created before `before` (epoch s)."""
        self._client.zremrangebyscore(self._keys.reconcile_acted(), "-inf", f"({before!r}")

    def acted(self, row_ids: Iterable[int]) -> set[int]:
        """The ids among `row_ids` of rows that already dead-lettered their order."""
        ids = list(row_ids)
        pipe = self._client.pipeline(transaction=False)
        for row_id in ids:
            pipe.zscore(self._keys.reconcile_acted(), str(row_id))
        return {row_id for row_id, score in zip(ids, pipe.execute(), strict=True) if score}

    def mark_acted(self, row_id: int, created_at: float) -> None:
        """Remember that row `row_id` (created at `created_at`) dead-lettered its order."""
        self._client.zadd(self._keys.reconcile_acted(), {str(row_id): created_at})

    def trailing_at(self) -> float | None:
        """When the trailing re-read last ran (epoch s), None if never."""
        value = self._client.hget(self._keys.reconcile_stats(), _TRAILING_AT)
        return None if value is None else float(value)

    def set_trailing_at(self, at: float) -> None:
        """Record that the trailing re-read ran at `at` (epoch s)."""
        self._client.hset(self._keys.reconcile_stats(), _TRAILING_AT, repr(at))

    def submitted_before(self, cutoff: float, *, page: int) -> Iterator[list[ConfirmCandidate]]:
        """The SUBMITTED index's members that entered it before `cutoff` (exclusive), oldest
        first, `page` at a time, each with its ledger fields: no scan, no limit in all.

        Lazy: the next page is read only when asked for, so a member the caller settled in the
        meantime has left the index. Members seen already are skipped (a page starts at the
        last score read, inclusive, so members that share it are not lost)."""
        index = self._keys.state_index(OrderState.SUBMITTED)
        high = f"({cutoff!r}"
        low = "-inf"
        seen: set[bytes] = set()
        while True:
            rows = self._client.zrangebyscore(index, low, high, start=0, num=page, withscores=True)
            fresh = [member for member, _ in rows if member not in seen]
            if not fresh:
                return
            seen.update(fresh)
            keys = [member.decode() for member in fresh]
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._keys.order(key), _CANDIDATE_FIELDS)
            yield [
                ConfirmCandidate(
                    order_key=key,
                    state=None if state is None else state.decode(),
                    payload_hash=None if payload_hash is None else payload_hash.decode(),
                    enqueued_at=float(enqueued or 0),
                    first_seen_at=float(first_seen or 0),
                )
                for key, (state, payload_hash, enqueued, first_seen) in zip(
                    keys, pipe.execute(), strict=True
                )
            ]
            if len(rows) < page:
                return
            low = repr(float(rows[-1][1]))

    def record_run(
        self,
        *,
        now: float,
        holder: str,
        interval_s: float,
        grace_s: float,
        counts: Mapping[str, int],
        error: str | None,
    ) -> None:
        """Add one run's `counts` to the stats, and its time, holder, settings and outcome."""
        key = self._keys.reconcile_stats()
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(key, "runs", 1)
        for name, value in counts.items():
            if value:
                pipe.hincrby(key, name, value)
        fields: dict[str, str] = {
            "last_run_at": repr(now),
            "holder": holder,
            "interval_s": repr(interval_s),
            "grace_s": repr(grace_s),
            "last_error": error or "",
        }
        if error is None:
            fields["last_ok_at"] = repr(now)
        else:
            pipe.hincrby(key, "failed_runs", 1)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.execute()


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
