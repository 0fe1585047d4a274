"""What every `jetti-relay dlq` and `jetti-relay order` command shares: the stores, exit codes,
the filter options, time parsing and formatting.

Exit codes (every command):
    0  done
    1  done in part: some orders could not be replayed or erased (each is reported)
    2  usage error: a bad option, an invalid corrected raw order, a destructive command
       without --yes
    3  not found: no dead letter (or order) under that key
    4  Redis unreachable (within JETTI_RELAY_REDIS_*_TIMEOUT_S), or older than the oldest
       Redis supported: nothing was done, fix Redis and run it again
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click
import redis

from ops.options import settings_from_options
from worker.core.exit_codes import ExitCode
from worker.core.states import DeadReason, DeadStatus
from worker.redisconn import RedisTooOld
from worker.store.dead_query import DeadFilter
from worker.wiring import Stores, connect_stores

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 done in part (some orders could not be handled); 2 usage error; "
    "3 not found; 4 Redis unreachable or too old."
)

F = TypeVar("F", bound=Callable[..., Any])


def open_stores(redis_url: str | None) -> Stores:
    """The stores of the deployment the shared options and the environment describe
    (`worker.wiring.Stores`), on a Redis that passed the version check (RedisTooOld or a redis
    error otherwise)."""
    return connect_stores(settings_from_options(redis_url=redis_url))


def redis_failure_line(exc: Exception) -> str:
    """The one line a command prints before exit 4 (REDIS_UNREACHABLE): Redis unreachable (`redis`'s
    ConnectionError or TimeoutError) or older than supported (`RedisTooOld`)."""
    if isinstance(exc, RedisTooOld):
        return f"error: {exc}"
    # The URL may carry a password: name the setting, not its value.
    return f"error: cannot reach Redis (--redis-url / JETTI_RELAY_REDIS_URL): {exc}"


class _OneLineOnRedisFailure:
    """Mixed into a click command or group: an unreachable Redis (or one older than supported)
    becomes one line and exit code 4 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]  # click.Command/Group.invoke
        except (redis.ConnectionError, redis.TimeoutError, RedisTooOld) as exc:
            click.echo(redis_failure_line(exc), err=True)
            ctx.exit(ExitCode.REDIS_UNREACHABLE)


class StoreCommand(_OneLineOnRedisFailure, click.Command):
    """A click command that turns an unreachable Redis into one line and exit code 4."""


class StoreGroup(_OneLineOnRedisFailure, click.Group):
    """A click group whose commands turn an unreachable Redis into one line and exit code 4."""


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class When(click.ParamType[float]):
    """A point in time: ISO 8601 (no offset means UTC), epoch seconds, or an age such as
    `30m`, `6h`, `7d` (that long before now). Converts to epoch seconds."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            return time.time() - float(match.group(1)) * _UNIT_S[match.group(2)]
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(
                f"{text!r} is not a time: use ISO 8601 (2026-11-27T08:00:00Z), epoch "
                "seconds or an age such as 30m, 6h, 7d",
                param,
                ctx,
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


WHEN = When()


def filter_options(*, with_status: bool = True) -> Callable[[F], F]:
    """The dead-letter filters as options; the command receives them as `flt: DeadFilter`."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            reason: str | None,
            http_status: int | None,
            source: str | None,
            key_glob: str | None,
            since: float | None,
            until: float | None,
            error_contains: str | None,
            status: str | None = None,
            **kwargs: Any,
        ) -> Any:
            flt = DeadFilter(
                reason=DeadReason(reason) if reason else None,
                status=DeadStatus(status) if status else None,
                http_status=http_status,
                source=source,
                key_glob=key_glob,
                since=since,
                until=until,
                error_contains=error_contains,
            )
            return command(*args, flt=flt, **kwargs)

        options = [
            click.option(
                "--reason",
                type=click.Choice([r.value for r in DeadReason]),
                help="Only this dead-letter reason.",
            ),
            click.option(
                "--http-status",
                type=int,
                help="Only entries whose last attempt got this HTTP status.",
            ),
            click.option("--source", help="Only orders from this upstream source."),
            click.option(
                "--key",
                "key_glob",
                metavar="KEY|GLOB",
                help="An order key or an fnmatch glob, e.g. 'shop-a:*'.",
            ),
            click.option(
                "--since",
                type=WHEN,
                help="Dead-lettered at or after this time "
                "(ISO 8601, epoch seconds, or an age: 30m, 6h, 7d).",
            ),
            click.option("--until", type=WHEN, help="Dead-lettered at or before this time."),
            click.option(
                "--error",
                "error_contains",
                metavar="TEXT",
                help="Text in the error (case-insensitive).",
            ),
        ]
        if with_status:
            options.append(
                click.option(
                    "--status",
                    type=click.Choice([s.value for s in DeadStatus]),
                    help="Only entries in this status.",
                )
            )
        decorated: Any = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


def iso(at: float | None) -> str:
    """Epoch seconds as `2026-11-27T08:00:00Z` ('-' for None)."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(at: float | None, *, now: float | None = None) -> str:
    """How long ago `at` was, as `3d 4h`, `2h 5m`, `45s` ('-' for None)."""
    if at is None:
        return "-"
    seconds = max(0, int((time.time() if now is None else now) - at))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def echo_json(data: Any) -> None:
    """`data` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(code)
