"""`jetti-relay enqueue FILE|-`: validate raw orders and enqueue them for the worker.

Input is one JSON object, a JSON array of objects, or JSON Lines (one object per line).
Exit codes: 0 every order was enqueued (or was already there), 1 some orders were rejected
(each reported on stderr as `line 7: lines[0].quantity: must be >= 1` or `item 3: ...`),
2 the input could not be read at all (missing file, not UTF-8, a broken JSON array),
4 Redis unreachable (nothing or only part was enqueued: run it again, it is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ops.options import redis_url_option, settings_from_options
from producers.enqueue import Candidate, EnqueueSummary, enqueue_candidates
from worker.errors import InvalidOrder, Problem
from worker.jsonio import loads_document

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_UNREADABLE = 2
EXIT_REDIS = 4  # as for `dlq`, `order` and `reconcile`

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
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
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
    help="Prefix added to every order id (for sources whose ids could collide).",
)
@click.option(
    "--source",
    "source_name",
    default=None,
    help="Source name recorded with each order in the ledger.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Order keys per Celery message (default: JETTI_RELAY_BATCH_SIZE).",
)
def enqueue(
    source_file: IO[bytes],
    redis_url: str | None,
    id_prefix: str,
    source_name: str | None,
    batch_size: int | None,
) -> None:
    """Validate raw orders in FILE (JSON object, array or JSON Lines; - for stdin) and enqueue them.

    Exit code 0 when every order went through, 1 when some were rejected, 2 when the input
    could not be read, 4 when Redis is unreachable (run it again: orders already enqueued
    are recognised as unchanged).
    """
    # Imported here so `jetti-relay --help` stays fast (Celery and Redis load on use only).
    import redis
    from kombu.exceptions import OperationalError

    from worker.celery_app import create_app
    from worker.keys import Keys
    from worker.publisher import Publisher
    from worker.rules import RulesError, load_rules

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
        errors.print(f"warning: JETTI_RELAY_RULES_FILE not used for the line-item cap: {exc}",
                     markup=False)
    publisher = Publisher(create_app(settings), batch_size=batch_size or settings.batch_size)
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
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
    try:
        with progress:
            task = progress.add_task("enqueue", total=total)
            summary = enqueue_candidates(
                document.candidates,
                client=client,
                publisher=publisher,
                id_prefix=id_prefix,
                source=source_name,
                keys=Keys(settings.key_prefix),
                on_progress=lambda n: progress.advance(task, n),
                rules=rules,
                max_line_items=settings.max_line_items,
            )
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
        # The URL may carry a password: name the setting, not its value.
        errors.print(f"error: cannot reach Redis (--redis-url / JETTI_RELAY_REDIS_URL): {exc}",
                     markup=False)
        raise SystemExit(EXIT_REDIS) from exc
    finally:
        client.close()
    _report(errors, document.unit, summary)
    raise SystemExit(EXIT_REJECTED if summary.rejected else EXIT_OK)


def _report(errors: Console, unit: str, summary: EnqueueSummary) -> None:
    for rejection in summary.rejections:
        for problem in rejection.problems or (Problem("", "invalid order"),):
            errors.print(f"{unit} {rejection.position}: {problem}", markup=False)
    click.echo(summary.line())
