"""`jetti-relay preview` and `jetti-relay schema`: the pure core, seen from a terminal.

Imports only the contract, rules and transform, never Celery or Redis, so it starts fast and
runs without any service.

Exit codes of `preview`: 0 every order built; 1 at least one order invalid (the valid ones
still print); 2 usage error or unreadable rules file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click

from ops.options import check_id_prefix
from worker.core.contract import RawOrder, parse_raw_order, raw_order_schema
from worker.core.errors import InvalidOrder, Problem, TransformError
from worker.core.exit_codes import ExitCode
from worker.core.jsonio import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, loads_document
from worker.core.limits import DEFAULT_MAX_LINE_ITEMS
from worker.core.rules import Rules, RulesError, load_rules
from worker.core.transform import transform

# A preview file may hold many orders; each one is still held to the per-order size cap.
MAX_FILE_BYTES = 256 * 1_048_576


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _array_element_lines(text: str) -> list[int]:
    """The 1-based line on which each top-level array element starts (best effort)."""
    decoder = json.JSONDecoder(parse_float=str, parse_constant=str)
    lines: list[int] = []
    pos = text.index("[") + 1
    try:
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text) or text[pos] == "]":
                return lines
            lines.append(_line_of(text, pos))
            _, pos = decoder.raw_decode(text, pos)
    except (json.JSONDecodeError, RecursionError):
        return lines


Item = tuple[int | None, Any]
"""(line number in the input or None, decoded document or the InvalidOrder it raised)."""


def _documents(text: str) -> Iterator[Item]:
    """Split the input into orders: a JSON array, one JSON object, or JSON Lines."""
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped[0] == "[":
        try:
            doc = loads_document(text, max_bytes=MAX_FILE_BYTES, max_depth=DEFAULT_MAX_DEPTH + 1)
        except InvalidOrder as exc:
            yield 1, exc
            return
        lines = _array_element_lines(text)
        for index, element in enumerate(doc):
            yield (lines[index] if index < len(lines) else None), element
        return
    first_line = _line_of(text, len(text) - len(stripped))
    try:
        yield first_line, loads_document(text)
        return
    except InvalidOrder as exc:
        if len([ln for ln in text.splitlines() if ln.strip()]) <= 1:
            yield first_line, exc
            return
    for number, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        try:
            yield number, loads_document(raw_line, max_bytes=DEFAULT_MAX_BYTES)
        except InvalidOrder as exc:
            yield number, exc


def _report(position: int, line: int | None, problems: list[Problem]) -> None:
    where = f"order {position}" + (f" (line {line})" if line is not None else "")
    for problem in problems:
        click.echo(f"{where}: {problem}", err=True)


@click.command()
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML rules file (routes, splits, auto-connect default).",
)
@click.option(
    "--id-prefix",
    callback=check_id_prefix,
    default="",
    help="The producer's id prefix (as `jetti-relay enqueue --id-prefix`): the worker sends "
    "the order key, prefix + id, as externalId.",
)
@click.option(
    "--max-line-items",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_LINE_ITEMS,
    show_default=True,
    help="Most line items one order may become after splitting (the worker's "
    "JETTI_RELAY_MAX_LINE_ITEMS).",
)
def preview(source: BinaryIO, rules_path: Path | None, id_prefix: str, max_line_items: int) -> None:
    """Print the manual-sale payload the worker would send for each raw order in FILE.

    FILE holds one JSON object, a JSON array of objects, or JSON Lines; `-` reads stdin.
    Payloads go to stdout as JSON Lines; invalid orders go to stderr as
    `order N (line L): path: message`. Exit 1 if any order was invalid. `externalId` is the
    order key the worker would send: --id-prefix + the order's id.
    """
    try:
        rules = load_rules(rules_path) if rules_path is not None else Rules.empty()
    except RulesError as exc:
        raise click.UsageError(str(exc)) from exc
    data = source.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise click.UsageError(f"input is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"input is not UTF-8 (byte {exc.start})") from exc

    total = invalid = 0
    for position, (line, doc) in enumerate(_documents(text), start=1):
        total += 1
        try:
            if isinstance(doc, InvalidOrder):
                raise doc
            order: RawOrder = parse_raw_order(doc)
            built = transform(
                order,
                rules,
                max_units_per_line=rules.max_units_per_line,
                external_id=id_prefix + order.id,
                max_line_items=max_line_items,
            )
        except (InvalidOrder, TransformError) as exc:
            invalid += 1
            _report(position, line, exc.problems)
            continue
        click.echo(built.body.decode("utf-8"))
        if order.cancelled_at is not None:
            reason = f" ({order.cancel_reason})" if order.cancel_reason else ""
            click.echo(
                f"order {position}: note: cancelled upstream at "
                f"{order.cancelled_at.isoformat()}{reason}",
                err=True,
            )
    click.echo(f"{total} orders: {total - invalid} valid, {invalid} invalid", err=True)
    if invalid:
        raise SystemExit(ExitCode.REJECTED)


@click.command()
def schema() -> None:
    """Print the raw-order contract as JSON Schema (docs/raw-order.schema.json is this output)."""
    click.echo(json.dumps(raw_order_schema(), indent=2, sort_keys=False))
