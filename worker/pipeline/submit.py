"""Sending a batch at the fleet rate: fleet tokens and the process's submit threads.

`Submitter.run` sends every item of a batch, each as soon as a fleet token is granted, at most
`concurrency` in flight, and hands every answer back in the batch's order. `wait_for_token` is
the one-token wait of the calls made one at a time (the canceller's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Generic, TypeVar

from worker.pipeline.ports import TokenBucket, TokenSource

T = TypeVar("T")
A = TypeVar("A")


def wait_for_token(
    bucket: TokenSource,
    *,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Take one token from `bucket`, sleeping for it up to `max_wait_s` in all.

    Returns 0.0 when the token was taken, else the wait (seconds) the bucket asked for that
    would have gone past `max_wait_s`: the caller reschedules by that much instead.
    """
    waited_s = 0.0
    while True:
        wait_s = bucket.acquire()
        if wait_s <= 0:
            return 0.0
        if waited_s + wait_s > max_wait_s:
            return wait_s
        sleep(wait_s)
        waited_s += wait_s


class Submitter(Generic[T, A]):
    """Sends items with `send` on `executor` at the rate of the fleet's `limiter`.

    Tokens are asked for in bulk (one round trip for as many as can go now), but never ahead
    of a free submit thread: a token held while its request queues would let a burst through
    later and break the fleet rate. A missing token is waited for up to `max_token_wait_s` in
    all; items whose wait would be longer are handed back to be rescheduled.

    `stop_exceptions` (Celery's soft time limit, passed in by the runtime) stop the batch: no
    new request starts and no unanswered one is awaited; the answers already in are still
    handed back, then the exception goes up.
    """

    def __init__(
        self,
        *,
        limiter: TokenBucket,
        executor: Executor,
        concurrency: int,
        max_token_wait_s: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stop_exceptions: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._limiter = limiter
        self._executor = executor
        self._max_token_wait_s = max_token_wait_s
        self._clock = clock
        self._sleep = sleep
        self._stop = stop_exceptions
        # One slot per submit thread: a token is only taken for a request that can start now.
        self._slots = threading.Semaphore(max(1, concurrency))

    def run(
        self,
        items: Sequence[T],
        send: Callable[[T], A],
        *,
        answered: Callable[[T, A | Exception], None],
        deferred: Callable[[Sequence[T], float], None],
    ) -> None:
        """Send every item; call `answered(item, answer or exception)` for each one sent, in
        the order of `items`, once all are in; `deferred(items, due_at)` for those that got no
        token in time (`due_at`: epoch s when the bucket expects one).

        Also when the limiter fails midway, every request already sent is awaited and
        answered, so no item is left in flight unrecorded.
        """
        if not items:
            return
        pending = list(enumerate(items))
        running: dict[Future[A | Exception], int] = {}
        answers: dict[int, A | Exception] = {}
        waited_s = 0.0
        try:
            while pending:
                taken, free, wait_s = self._tokens(len(pending))
                if taken and len(items) == 1:
                    answers[0] = self._send_in_slot(send, items[0])  # no thread hop
                    break
                for index, item in pending[:taken]:
                    running[self._executor.submit(self._send_in_slot, send, item)] = index
                pending = pending[taken:]
                if not pending or taken == free:
                    continue
                if waited_s + wait_s > self._max_token_wait_s:
                    deferred([item for _, item in pending], self._clock() + wait_s)
                    break
                self._sleep(wait_s)
                waited_s += wait_s
        finally:
            self._hand_back(items, running, answers, answered)

    def _tokens(self, wanted: int) -> tuple[int, int, float]:
        """Up to `wanted` tokens, one per free submit thread (blocks until one is free):
        (tokens taken, threads that were free, seconds until the next token)."""
        slots = self._slots
        slots.acquire()
        free = 1
        while free < wanted and slots.acquire(blocking=False):
            free += 1
        try:
            taken, wait_s = self._limiter.acquire_many(free)
        except BaseException:
            for _ in range(free):
                slots.release()
            raise
        for _ in range(free - taken):
            slots.release()
        return taken, free, wait_s

    def _hand_back(
        self,
        items: Sequence[T],
        running: dict[Future[A | Exception], int],
        answers: dict[int, A | Exception],
        answered: Callable[[T, A | Exception], None],
    ) -> None:
        """Await the requests in flight (none after a stop), then hand every answer back."""
        stopped: BaseException | None = None
        for future, index in running.items():
            if stopped is not None and not future.done():
                continue
            try:
                answers[index] = future.result()
            except self._stop as exc:
                stopped = exc
        for index in sorted(answers):
            try:
                answered(items[index], answers[index])
            except self._stop as exc:
                stopped = exc
        if stopped is not None:
            raise stopped

    def _send_in_slot(self, send: Callable[[T], A], item: T) -> A | Exception:
        """`send(item)`, or the exception it raised; frees the item's submit thread slot."""
        try:
            return send(item)
        except Exception as exc:
            return exc
        finally:
            self._slots.release()
