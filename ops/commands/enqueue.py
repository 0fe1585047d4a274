"""`jetti-relay enqueue FILE|-`: validate raw orders and enqueue them for the worker.

Input is one JSON object, a JSON array of objects, or JSON Lines (one object per line, split at
line feeds only: U+2028, U+2029 and U+0085 are valid inside JSON strings).
Exit codes:
  0 every order was enqueued (or was already there; stale and after_cancel copies are listed);
  1 some orders were rejected (each reported on stderr as `line 7: lines[0].quantity: must be
    >= 1` or `item 3: ...`), the others were enqueued;
  2 the input could not be read at all (missing file, not UTF-8, a broken JSON array);
  4 Redis or the broker unreachable (connection refused or lost, timeout), before or part-way,
    or a Redis older than the oldest supported (docs/operations.md, Redis);
  5 Redis or the broker refused a command part-way (OOM, READONLY, BUSY, WRONGTYPE, NOREPLICAS:
    a primary with too few replicas in sync for its min-replicas-to-write, any other error reply);
  6 with JETTI_RELAY_MIN_REPLICAS_ACK N > 0: the orders up to the chunk named are recorded on the
    Redis primary, but fewer than N replicas confirmed them within the timeout.
On 4, 5 and 6 the message (and `--json`'s `stopped_at`) gives the line or item reached: every
order before it was enqueued (and, on 6, confirmed). Running the same file again is safe: it
publishes at once every order of the file still pending, and waits for the replicas again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, NoReturn

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ops.options import check_id_prefix, redis_url_option, settings_from_options
from producers.enqueue import (
    Candidate,
    EnqueueInterrupted,
    EnqueueSummary,
    Rejection,
    ReplicationUnconfirmed,
    enqueue_candidates,
)
from worker.core.errors import InvalidOrder, Problem
from worker.core.exit_codes import ExitCode
from worker.core.jsonio import loads_document
from worker.core.limits import MAX_ID_PREFIX_CHARS, MAX_KEYS_PER_MESSAGE
from worker.core.records import RecordOutcome

# This command's names for its codes in the one table (worker/core/exit_codes.py).
EXIT_OK = ExitCode.OK
EXIT_REJECTED = ExitCode.REJECTED
EXIT_UNREADABLE = ExitCode.UNREADABLE
EXIT_REDIS = ExitCode.REDIS_UNREACHABLE  # as for `dlq`, `order` and `reconcile`
# Redis or the broker answered with a refusal: retrying blindly rarely helps (out of memory, a
# read-only replica after a failover, a wrong-type key), so a loader can tell it from 4.
EXIT_REDIS_REFUSED = ExitCode.REDIS_REFUSED
# Recorded on the primary, too few replicas confirmed in time: sending again is the cure.
EXIT_UNREPLICATED = ExitCode.UNREPLICATED

# Inputs with fewer orders than this finish before a progress bar would be worth drawing.
PROGRESS_MIN_ORDERS = 2000
# Nesting allowed in a whole JSON array file: one level above what loads_document allows an order.
ARRAY_MAX_DEPTH = 33


class UnreadableInput(Exception):
    """The input as a whole is not a JSON object, array or JSON Lines."""


@dataclass(frozen=True, slots=True)
class Document:
    """The raw orders cut out of one input; `unit` names a position ("line" or "item")."""

    unit: str
    candidates: list[Candidate]


def read_document(data: bytes) -> Document:
    """Cut `data` into candidates: JSON Lines by line number, an array by item number (from 1).

    A single object (even pretty-printed over several lines) is `item 1`. Raises
    UnreadableInput when the input is not UTF-8, is empty, or is an array that does not parse.
    """
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(f"not UTF-8 at byte {exc.start}") from exc
    stripped = text.strip()
    if not stripped:
        raise UnreadableInput("no orders in the input")
    if stripped.startswith("["):
        try:
            # The project's reader keeps exact decimals; the whole file is one document here.
            items = loads_document(stripped, max_bytes=len(data) + 1, max_depth=ARRAY_MAX_DEPTH)
        except InvalidOrder as exc:
            raise UnreadableInput(f"not a JSON array: {exc}") from exc
        if not isinstance(items, list):
            raise UnreadableInput("not a JSON array")
        return Document("item", [Candidate(i, item) for i, item in enumerate(items, 1)])
    # "\n" only: str.splitlines() also cuts at U+2028/U+2029/U+0085, valid inside JSON strings.
    numbered = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if len(numbered) > 1 and not _is_one_document(stripped):
        return Document("line", [Candidate(n, line.encode("utf-8")) for n, line in numbered])
    return Document("item", [Candidate(1, stripped.encode("utf-8"))])


def _is_one_document(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


@click.command("enqueue")
@click.argument("source_file", metavar="FILE|-", type=click.File("rb"))
@redis_url_option
@click.option(
    "--id-prefix",
    default="",
    show_default=True,
    callback=check_id_prefix,
    help=f"Prefix added to every order id (for sources whose ids could collide; at most "
    f"{MAX_ID_PREFIX_CHARS} characters).",
)
@click.option(
    "--source",
    "source_name",
    default=None,
    help="Source name recorded with each order in the ledger.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=MAX_KEYS_PER_MESSAGE),
    default=None,
    help="Order keys per Celery message (default: JETTI_RELAY_BATCH_SIZE).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object (rejected, stale and after_cancel keys listed).",
)
def enqueue(
    source_file: IO[bytes],
    redis_url: str | None,
    id_prefix: str,
    source_name: str | None,
    batch_size: int | None,
    as_json: bool,
) -> None:
    """Validate raw orders in FILE (JSON object, array or JSON Lines; - for stdin) and enqueue them.

    Exit code 0 when every order went through, 1 when some were rejected, 2 when the input
    could not be read, 4 when Redis is unreachable, 5 when Redis refused a command, 6 when the
    orders are recorded on the Redis primary but fewer replicas than
    JETTI_RELAY_MIN_REPLICAS_ACK confirmed them in time (4, 5 and 6 name the line reached; run
    it again: orders already enqueued are recognised, and those still pending are published at
    once).
    """
    # Imported here so `jetti-relay --help` stays fast (Celery and Redis load on use only).
    import redis

    from worker.core.rules import RulesError, load_rules
    from worker.redisconn import RedisTooOld
    from worker.wiring import connect_supported
    from worker.wiring import keys as wiring_keys
    from worker.wiring import publisher as build_publisher

    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        document = read_document(source_file.read())
    except (OSError, UnreadableInput) as exc:
        errors.print(f"cannot read {source_file.name}: {exc}", markup=False)
        raise SystemExit(EXIT_UNREADABLE) from exc

    settings = settings_from_options(redis_url=redis_url)
    rules = None
    try:
        # The worker's rules say which lines split; without them the line-item cap is checked
        # on what is known (lines with `units`) and the worker's check is the final one.
        rules = load_rules(settings.rules_file) if settings.rules_file else None
    except RulesError as exc:
        # The path may be the worker's (a container's): the edge check degrades, the worker's
        # check still holds, so this warns rather than refusing to enqueue.
        errors.print(
            f"warning: JETTI_RELAY_RULES_FILE not used for the line-item cap: {exc}", markup=False
        )
    # By task name on the broker: the producer never loads the worker's Celery app or tasks.
    publisher = build_publisher(settings, batch_size=batch_size)
    try:
        client = connect_supported(settings)
    except RedisTooOld as exc:
        errors.print(f"error: {exc}", markup=False)
        raise SystemExit(EXIT_REDIS) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Unreachable before the first order: the same report as a stop part-way (exit 4, and
        # `--json` still prints its summary, stopped at the first line or item).
        first = document.candidates[0].position if document.candidates else 1
        _finish(
            document.unit,
            EnqueueSummary(),
            EnqueueInterrupted(EnqueueSummary(), position=first, unreachable=True, detail=str(exc)),
            as_json=as_json,
            errors=errors,
        )
    total = len(document.candidates)
    progress = Progress(
        TextColumn("enqueue"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=total < PROGRESS_MIN_ORDERS or not errors.is_terminal,
    )
    stop: EnqueueInterrupted | None = None
    try:
        with progress:
            task = progress.add_task("enqueue", total=total)
            summary = enqueue_candidates(
                document.candidates,
                client=client,
                publisher=publisher,
                id_prefix=id_prefix,
                source=source_name,
                keys=wiring_keys(settings),
                on_progress=lambda n: progress.advance(task, n),
                max_future_skew_s=settings.max_future_skew_s,
                rules=rules,
                max_line_items=settings.max_line_items,
                min_replicas_ack=settings.min_replicas_ack,
                min_replicas_ack_timeout_s=settings.min_replicas_ack_timeout_s,
            )
    except EnqueueInterrupted as exc:
        stop, summary = exc, exc.summary
    finally:
        client.close()
    _finish(document.unit, summary, stop, as_json=as_json, errors=errors)


def _finish(
    unit: str,
    summary: EnqueueSummary,
    stop: EnqueueInterrupted | None,
    *,
    as_json: bool,
    errors: Console,
) -> NoReturn:
    """Print the summary (`--json` or human) and exit with the documented code."""
    code = exit_code(summary, stop)
    if as_json:
        click.echo(orjson.dumps(summary_json(unit, summary, stop, code)).decode())
    else:
        _report(errors, unit, summary, stop)
    raise SystemExit(code)


def exit_code(summary: EnqueueSummary, stop: EnqueueInterrupted | None) -> int:
    """The documented exit code: a stop part-way wins over rejections (the run is incomplete)."""
    if isinstance(stop, ReplicationUnconfirmed):
        return EXIT_UNREPLICATED
    if stop is not None:
        return EXIT_REDIS if stop.unreachable else EXIT_REDIS_REFUSED
    return EXIT_REJECTED if summary.rejected else EXIT_OK


def stop_message(unit: str, stop: EnqueueInterrupted) -> str:
    """One line saying what failed, where the run stopped and what to do."""
    if isinstance(stop, ReplicationUnconfirmed):
        return (
            f"error: {unit} {stop.position} and its chunk are recorded on the Redis primary, "
            f"replication unconfirmed ({stop.acked} of {stop.wanted} replicas within "
            f"{stop.timeout_s:g} s, JETTI_RELAY_MIN_REPLICAS_ACK): a failover now could lose "
            f"them. Every order before {unit} {stop.position} is enqueued and replicated: run "
            "the same input again (it is idempotent, and waits for the replicas again)."
        )
    # The URL may carry a password: name the setting, not its value.
    if stop.unreachable:
        what = "cannot reach Redis or the broker (--redis-url / JETTI_RELAY_REDIS_URL)"
    elif stop.no_replicas:
        what = (
            "the Redis primary refuses writes while fewer replicas than its "
            "min-replicas-to-write are in sync (NOREPLICAS)"
        )
    else:
        what = "Redis or the broker refused a command"
    detail = stop.detail.rstrip(". ")
    return (
        f"error: {what} at {unit} {stop.position}: {detail}. Every order before "
        f"{unit} {stop.position} is enqueued; from there on nothing is sure: run the same "
        "input again (it is idempotent and publishes at once every order still pending)."
    )


def summary_json(
    unit: str, summary: EnqueueSummary, stop: EnqueueInterrupted | None, code: int
) -> dict[str, object]:
    """What `--json` prints: the counts, every rejected, stale and after_cancel key with its
    position (`unit` names it: "line" or "item"), and where and why a run stopped part-way."""
    return {
        "complete": stop is None,
        "exit_code": code,
        "unit": unit,
        "accepted": summary.accepted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "stale": summary.stale,
        "after_cancel": summary.after_cancel,
        "rejected": summary.rejected,
        "messages": summary.messages,
        "rejections": [_rejection_json(unit, r) for r in summary.rejections],
        "stale_keys": [
            {unit: i.position, "key": i.order_key}
            for i in summary.ignored
            if i.outcome is RecordOutcome.STALE
        ],
        "after_cancel_keys": [
            {unit: i.position, "key": i.order_key}
            for i in summary.ignored
            if i.outcome is RecordOutcome.AFTER_CANCEL
        ],
        "stopped_at": None if stop is None else {unit: stop.position},
        "error": None if stop is None else stop.detail,
    }


def _rejection_json(unit: str, rejection: Rejection) -> dict[str, object]:
    problems = rejection.problems or (Problem("", "invalid order"),)
    return {
        unit: rejection.position,
        "key": rejection.order_key,
        "reason": rejection.describe(),
        "problems": [{"path": p.path, "message": p.message} for p in problems],
    }


# What a listed copy means, for people.
_IGNORED_WHY = {
    RecordOutcome.STALE: "older updated_at than the version stored, ignored",
    RecordOutcome.AFTER_CANCEL: "not a cancellation, after the order's cancellation: "
    "recorded, not sent",
}


def _report(
    errors: Console, unit: str, summary: EnqueueSummary, stop: EnqueueInterrupted | None
) -> None:
    for rejection in summary.rejections:
        for problem in rejection.problems or (Problem("", "invalid order"),):
            errors.print(f"{unit} {rejection.position}: {problem}", markup=False)
    for copy in summary.ignored:
        why = _IGNORED_WHY[copy.outcome]
        errors.print(
            f"{unit} {copy.position}: {copy.outcome} {copy.order_key!r}: {why}", markup=False
        )
    if stop is not None:
        errors.print(stop_message(unit, stop), markup=False)
        # The counts of the chunk that failed are unknown: say the line is not the whole story.
        click.echo(f"incomplete (stopped at {unit} {stop.position}): {summary.line()}")
        return
    click.echo(summary.line())
