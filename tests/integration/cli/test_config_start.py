"""Configuration mistakes stop the start, in one line (issue 12 point 8), as a user meets them:
real `jetti-relay worker` and `jetti-relay config check` processes, a real Redis and the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.harness.workers import WorkerProcess, worker_argv, worker_target_env
from tests.factories import raw_order
from tests.fixtures.pipeline import FAST_ENV, wait_until

pytestmark = pytest.mark.integration

# A refusal comes before Celery or Redis is touched: well under this.
REFUSAL_TIMEOUT_S = 20.0


def relay_env(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    """This process's environment without its JETTI_RELAY_* variables, plus the test's fast
    settings, `base`, and `changes` (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("JETTI_RELAY_")}
    env.update(FAST_ENV)
    env.update(base)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def relay(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`jetti-relay ARGS` run to completion (cwd without a .env file). A worker that starts
    instead of refusing is killed with its whole process group, Celery children included."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=REFUSAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def target(redis_url: str, sandbox: Any) -> dict[str, str]:
    """The variables pointing a relay at the test Redis and the sandbox."""
    return worker_target_env(
        redis_url,
        base_url=sandbox.base_url,
        webhook_hash=sandbox.webhook_hash,
        api_token=sandbox.api_token,
        channel_id=sandbox.channel_id,
    )


def start_worker(tmp_path: Path, env: dict[str, str], *extra: str) -> WorkerProcess:
    ready = tmp_path / "worker.ready"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*worker_argv("cfg@%h", concurrency=1), *extra],
            env={**env, "JETTI_RELAY_READY_FILE": str(ready)},
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(name="cfg", process=process, log_path=log_path, ready_file=ready)


def test_worker_started_with_the_promised_hash_name_delivers(
    tmp_path: Path, target: dict[str, str], sandbox: Any
) -> None:
    """The issue's example: JETTI_RELAY_JETTI_WEBHOOK_HASH alone. The worker starts with that
    hash and the sandbox (which answers 401 to any other) accepts the order."""
    hash_value = target["JETTI_RELAY_WEBHOOK_HASH"]
    env = relay_env(
        target, JETTI_RELAY_WEBHOOK_HASH=None, JETTI_RELAY_JETTI_WEBHOOK_HASH=hash_value
    )
    worker = start_worker(tmp_path, env)
    try:
        worker.wait_ready()
        orders = tmp_path / "orders.json"
        orders.write_text(json.dumps(raw_order("cfg-alias-1")))
        enqueued = relay(["enqueue", str(orders)], env, tmp_path)
        assert enqueued.returncode == 0, enqueued.stderr
        wait_until(lambda: bool(sandbox.history("cfg-alias-1")), what="the order at the sandbox")
    finally:
        worker.stop()


def test_config_check_shows_the_alias_that_set_the_hash(
    tmp_path: Path, target: dict[str, str]
) -> None:
    """`config check --json` reports the hash as set (masked) by the alias, and no problem."""
    hash_value = target["JETTI_RELAY_WEBHOOK_HASH"]
    env = relay_env(
        target, JETTI_RELAY_WEBHOOK_HASH=None, JETTI_RELAY_JETTI_WEBHOOK_HASH=hash_value
    )
    result = relay(["config", "check", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["problems"] == []
    assert doc["settings"]["webhook_hash"] == {
        "value": "***",
        "variable": "JETTI_RELAY_WEBHOOK_HASH",
        "source": "JETTI_RELAY_JETTI_WEBHOOK_HASH (environment)",
    }
    assert hash_value not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"JETTI_RELAY_WEBHOK_HASH": "x"},
            "unknown setting JETTI_RELAY_WEBHOK_HASH (environment): "
            "did you mean JETTI_RELAY_WEBHOOK_HASH?",
            id="typo",
        ),
        pytest.param(
            {"JETTI_RELAY_JETTI_WEBHOOK_HASH": "another-hash"},
            "JETTI_RELAY_JETTI_WEBHOOK_HASH and JETTI_RELAY_WEBHOOK_HASH are both set, "
            "to different values",
            id="both-spellings-differ",
        ),
        pytest.param(
            {"JETTI_RELAY_WEBHOOK_HASH": ""}, "JETTI_RELAY_WEBHOOK_HASH is empty", id="empty-hash"
        ),
        pytest.param(
            {"JETTI_RELAY_JETTI_MODE": "sync", "JETTI_RELAY_API_TOKEN": None},
            "JETTI_RELAY_API_TOKEN is empty",
            id="sync-without-token",
        ),
        pytest.param(
            {"JETTI_RELAY_JETTI_API_URL": "http://api.jetti.io"},
            "JETTI_RELAY_JETTI_API_URL: must be an https:// URL",
            id="plain-http",
        ),
        pytest.param(
            {"JETTI_RELAY_LOCK_TTL_S": "20"},
            "JETTI_RELAY_LOCK_TTL_S (20) must be above",
            id="lock-ttl",
        ),
    ],
)
@pytest.mark.parametrize("command", [["worker"], ["config", "check"]])
def test_a_configuration_mistake_refuses_to_start_in_one_line(
    tmp_path: Path,
    target: dict[str, str],
    command: list[str],
    changes: dict[str, str | None],
    expected: str,
) -> None:
    """The worker exits 2 with one stderr line naming the variable, before starting Celery;
    `config check` exits 2 with the same problem."""
    result = relay(command, relay_env(target, **changes), tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(problems) == 1 and expected in problems[0], result.stderr
    assert "Traceback" not in result.stderr


def test_worker_loglevel_reaches_celery_and_our_logs(
    tmp_path: Path, target: dict[str, str]
) -> None:
    """`worker --loglevel DEBUG` wins over JETTI_RELAY_LOG_LEVEL=INFO in the Celery process:
    Celery's DEBUG start-up lines appear (they did not: our logging ignored the option)."""
    worker = start_worker(
        tmp_path,
        relay_env(target, JETTI_RELAY_LOG_LEVEL="INFO"),
        "--no-pump",
        "--loglevel",
        "DEBUG",
    )
    try:
        worker.wait_ready()
    finally:
        worker.stop()
    log = worker.log()
    assert '"level": "debug"' in log, log[-3000:]


def test_the_sandbox_prints_exactly_variables_the_relay_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jetti-relay sandbox` prints NAME=value lines; fed to the relay's settings with the
    unknown-variable check on, they point a sync-mode client at that sandbox, which answers."""
    import httpx

    from ops.harness.ports import free_port
    from worker.settings import get_settings, jetti_problems, load_settings
    from worker.wiring import build_jetti_client

    port = free_port()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ops.cli",
            "sandbox",
            "--port",
            str(port),
            "--webhook-hash",
            "h",
            "--api-token",
            "t",
            "--channel-id",
            "3",
        ],
        env={**relay_env({}), "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert sandbox.stdout is not None
        printed = [sandbox.stdout.readline().strip() for _ in range(3)]
        assert all(line.startswith("JETTI_RELAY_") for line in printed), printed
        for name in [n for n in os.environ if n.upper().startswith("JETTI_RELAY_")]:
            monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)
        for line in printed:
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("JETTI_RELAY_JETTI_MODE", "sync")
        monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "t")
        settings = load_settings()  # raises on any name the relay does not read
        assert jetti_problems(settings) == []
        assert settings.jetti_api_url == f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5.0) as http:
            client = build_jetti_client(settings, http)
            wait_until(lambda: _answers(client), what="the sandbox's import log")
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(timeout=10)
        if sandbox.stdout is not None:
            sandbox.stdout.close()
        get_settings.cache_clear()


def _answers(client: Any) -> bool:
    from worker.core.errors import JettiUnavailable

    try:
        client.list_imports(status="error", created_from=0.0, created_before=1.0)
    except JettiUnavailable:
        return False  # not listening yet
    return True
