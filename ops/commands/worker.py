"""`jetti-relay worker` and `jetti-relay pump`: a worker for one machine, and the pump alone.

`jetti-relay worker` starts `celery -A worker.celery_app worker` (task events on) as a child
process and runs the retry pump, the sweeper, the alert notifier (ops/notify) and the Redis
Stream intake (`producers.stream`) in this process, so one command runs everything a single
machine needs. The pump, the sweeper and the notifier are leader-elected and the intake's
consumers share the stream: start as many as you like.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import FrameType

import click

from ops.options import redis_url_option, refuse_to_start, settings_from_options
from worker.core.exit_codes import ExitCode
from worker.settings import CHILD_RESTART_VARIABLE, LOG_LEVELS, Settings, check_timeouts

# A Celery worker that exits on its own is started again after a pause. kombu can end the
# consumer with "Unrecoverable error: AttributeError(... 'hostname')" when Redis goes away while
# it reconnects (chaos scenario 2, Redis kill -9): without this the machine stopped consuming.
# The pause after a child that ran well, and the first of a run of quick exits.
RESTART_DELAY_MIN_S = 1.0
# Quick exits in a row double the pause up to this, so a persistent failure does not spin.
RESTART_DELAY_MAX_S = 30.0
# A child that ran at least this long was healthy: the pauses start again from the minimum.
HEALTHY_RUN_S = 60.0
# Exits remembered for the pause: from the sixth quick exit in a row it is at its cap anyway.
RESTART_HISTORY = 8
# Exit codes that end `jetti-relay worker` when the FIRST child exits with them: a clean exit,
# and the refusals to start (a configuration mistake, or EX_CONFIG for a Redis older than
# supported): starting again would only repeat them. A restarted child is always started again:
# the settings and the Redis version were checked before the first, and what a restart meets
# (a replica down, a failover) is an outage to ride out.
FINAL_EXIT_CODES = frozenset({ExitCode.OK, ExitCode.CONFIG, ExitCode.REDIS_TOO_OLD})


def restart_delay_s(run_times_s: Sequence[float]) -> float:
    """Seconds to pause before starting the next Celery child, from how long each child so far
    ran, oldest first (the last one just exited): RESTART_DELAY_MIN_S, doubled for each further
    child in a row that ran less than HEALTHY_RUN_S, at most RESTART_DELAY_MAX_S."""
    quick = 0
    for ran_s in reversed(run_times_s):
        if ran_s >= HEALTHY_RUN_S:
            break
        quick += 1
    return min(RESTART_DELAY_MIN_S * 2.0 ** max(quick - 1, 0), RESTART_DELAY_MAX_S)


def child_is_final(code: int, *, restart: int) -> bool:
    """Whether a Celery child's exit `code` ends `jetti-relay worker`: only for the first child
    (`restart` 0), and only for FINAL_EXIT_CODES."""
    return restart == 0 and code in FINAL_EXIT_CODES


def refuse_unsupported_redis(settings: Settings) -> None:
    """Exit 78 (REDIS_TOO_OLD) with one line when the ledger's Redis is older than supported.

    An unreachable Redis is not refused: it may still be starting (compose, a failover), and
    the worker and the pump wait for it. The check then runs again in the Celery worker
    (worker/celery_app.py) once it connects.
    """
    import redis

    from worker.redisconn import RedisTooOld, require_supported
    from worker.wiring import redis_client

    client = redis_client(settings)
    try:
        require_supported(client)
    except RedisTooOld as exc:
        click.echo(f"jetti-relay: refusing to start: {exc}", err=True)
        sys.exit(ExitCode.REDIS_TOO_OLD)
    except (redis.ConnectionError, redis.TimeoutError):
        pass
    finally:
        client.close()


def _maintenance_thread(stop: threading.Event) -> threading.Thread:
    from worker.runtime import build_maintenance, build_maintenance_parts

    parts = build_maintenance_parts()
    # The alert notifier (ops/notify) beside the pump: leader-elected like it, so every
    # machine runs one and only the lease holder sends. It lives in ops (it reads
    # ops/monitoring), which worker/runtime.py may not import, so it is started here.
    from ops.notify.build import build_notifier

    build_notifier(parts.settings, holder=parts.holder).start(stop)
    return build_maintenance(parts).start(stop)


@click.command()
@redis_url_option
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Worker processes (default: JETTI_RELAY_WORKER_CONCURRENCY).",
)
@click.option(
    "--pool",
    default="prefork",
    show_default=True,
    help="Celery pool; prefork is the one where time limits and worker-loss handling apply.",
)
@click.option(
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Log level of this process and Celery's (default: JETTI_RELAY_LOG_LEVEL, else INFO).",
)
@click.option(
    "--pump/--no-pump",
    default=True,
    show_default=True,
    help="Also run the retry pump and the sweeper in this process.",
)
@click.option(
    "--intake/--no-intake",
    default=None,
    help="Also read the Redis Stream intake (<key prefix>:intake) in this process "
    "[default: as --pump].",
)
@click.option("--hostname", "-n", default=None, help="Celery node name (default: celery@HOST).")
def worker(
    redis_url: str | None,
    concurrency: int | None,
    pool: str,
    loglevel: str | None,
    pump: bool,
    intake: bool | None,
    hostname: str | None,
) -> None:
    """Start a Celery worker with the retry pump, the sweeper and the stream intake (one
    machine's worth).

    Exits 2 with one line per problem when the settings are wrong or the Jetti secret of the
    mode is missing, before anything starts.
    """
    # --loglevel goes through the environment, so the Celery child logs at the same level.
    settings = settings_from_options(redis_url=redis_url, log_level=loglevel, sends_to_jetti=True)
    if problems := check_timeouts(settings, pool):
        refuse_to_start(problems)
    from worker.startup_replication import replication_problem

    # First: sentinels that cannot be used are refused at once, before a client that finds
    # the primary through them spends its retries.
    if problem := replication_problem(settings):
        refuse_to_start([problem])
    refuse_unsupported_redis(settings)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-E",
        "--pool",
        pool,
        "--loglevel",
        settings.log_level,
    ]
    processes = concurrency or settings.worker_concurrency
    if processes:
        argv += ["-c", str(processes)]
    if hostname:
        argv += ["-n", hostname]

    def start_child(restart: int) -> subprocess.Popen[bytes]:
        env = os.environ.copy()
        env.pop(CHILD_RESTART_VARIABLE, None)  # the first child is checked as a first start
        if restart:
            env[CHILD_RESTART_VARIABLE] = str(restart)
        return subprocess.Popen(argv, env=env)

    child = [start_child(0)]  # the one running now; a list so that `forward` sees a new one
    restarts = 0
    started_s = time.monotonic()
    run_times_s: deque[float] = deque(maxlen=RESTART_HISTORY)
    stop = threading.Event()
    threads = [_maintenance_thread(stop)] if pump else []
    if pump if intake is None else intake:  # --intake follows --pump unless given
        from ops.commands.intake import default_consumer
        from producers.stream import start_stream_intake

        threads.append(start_stream_intake(settings, consumer=default_consumer(), stop=stop))

    def forward(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if child[0].poll() is None:
            child[0].send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        code = child[0].wait()
        run_times_s.append(time.monotonic() - started_s)
        if stop.is_set() or child_is_final(code, restart=restarts):
            break
        delay_s = restart_delay_s(run_times_s)
        click.echo(
            f"jetti-relay worker: celery exited with {code} after {run_times_s[-1]:.0f} s; "
            f"starting it again in {delay_s:g} s (restart {restarts + 1})",
            err=True,
        )
        if stop.wait(delay_s):
            break
        restarts += 1
        child[0] = start_child(restarts)
        started_s = time.monotonic()
        if stop.is_set():  # a signal that arrived while the new child was starting
            child[0].send_signal(signal.SIGTERM)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    sys.exit(code)


@click.command()
@redis_url_option
def pump(redis_url: str | None) -> None:
    """Run only the retry pump and the sweeper (leader-elected; safe on several hosts)."""
    refuse_unsupported_redis(settings_from_options(redis_url=redis_url))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = _maintenance_thread(stop)
    while thread.is_alive():
        thread.join(timeout=0.5)
