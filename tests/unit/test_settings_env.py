"""Configuration mistakes stop the start (issue 12 point 8): aliases, unknown names, secrets,
URLs, the lock TTL, and the sandbox's printed variables."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from ops.sandbox.cli import relay_variables
from worker.settings import (
    ENV_ALIASES,
    EXTERNAL_VARIABLES,
    Settings,
    SettingsError,
    check_timeouts,
    env_name,
    jetti_problems,
    known_variables,
    load_settings,
)
from worker.wiring import build_jetti_client

ROOT = Path(__file__).resolve().parents[2]
# This file names wrong variables on purpose; so does the subprocess test of the same point.
_DELIBERATELY_WRONG = {
    "tests/unit/test_settings_env.py",
    "tests/integration/cli/test_config_start.py",
    "ops/chaos/misconfig.py",  # the configuration-fault scenario sets a misspelt name on purpose
}
_VARIABLE = re.compile(r"\bJETTI_RELAY_[A-Z0-9_]*[A-Z0-9]\b")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No stray JETTI_RELAY_* variable or .env file may leak into a test.
    for name in list(os.environ):
        if name.upper().startswith("JETTI_RELAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def refusal(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
    return caught.value.problems


@pytest.mark.parametrize(
    ("alias", "value", "expected"),
    [
        ("JETTI_RELAY_JETTI_WEBHOOK_HASH", "h-123", "h-123"),
        ("JETTI_RELAY_JETTI_API_TOKEN", "t-456", "t-456"),
        ("JETTI_RELAY_JETTI_CHANNEL_ID", "42", 42),
        ("JETTI_RELAY_RATE_LIMIT_PER_S", "3.5", 3.5),
    ],
)
def test_the_promised_names_are_aliases(
    monkeypatch: pytest.MonkeyPatch, alias: str, value: str, expected: object
) -> None:
    """Each name the pipeline issue promised sets the same field as today's name."""
    monkeypatch.setenv(alias, value)
    got = getattr(load_settings(), ENV_ALIASES[alias])
    assert (got.get_secret_value() if hasattr(got, "get_secret_value") else got) == expected


def test_an_alias_in_the_dotenv_file_is_read(tmp_path: Path) -> None:
    """Aliases work from .env as well as from the environment."""
    (tmp_path / ".env").write_text("JETTI_RELAY_JETTI_WEBHOOK_HASH=from-file\n")
    assert load_settings().webhook_hash.get_secret_value() == "from-file"


def test_both_spellings_with_the_same_value_are_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting an alias and its canonical name to one value is not a mistake."""
    monkeypatch.setenv("JETTI_RELAY_WEBHOOK_HASH", "same")
    monkeypatch.setenv("JETTI_RELAY_JETTI_WEBHOOK_HASH", "same")
    assert load_settings().webhook_hash.get_secret_value() == "same"


def test_both_spellings_with_different_values_are_refused() -> None:
    """An alias and its canonical name that disagree are refused, naming both, not the values."""
    [problem] = refusal(
        JETTI_RELAY_WEBHOOK_HASH="one-s3cret", JETTI_RELAY_JETTI_WEBHOOK_HASH="two-s3cret"
    )
    assert "JETTI_RELAY_JETTI_WEBHOOK_HASH" in problem and "JETTI_RELAY_WEBHOOK_HASH" in problem
    assert "s3cret" not in problem


def test_an_unknown_variable_is_refused_with_the_closest_name() -> None:
    """A typo'd JETTI_RELAY_* name stops the start and names the variable it was meant to be."""
    [problem] = refusal(JETTI_RELAY_WEBHOK_HASH="x")
    assert problem.startswith("unknown setting JETTI_RELAY_WEBHOK_HASH")
    assert problem.endswith("did you mean JETTI_RELAY_WEBHOOK_HASH?")


def test_an_unknown_variable_in_the_dotenv_file_is_refused(tmp_path: Path) -> None:
    """The .env file is checked too, and the problem says where the name came from."""
    (tmp_path / ".env").write_text("JETTI_RELAY_REDIS_ULR=redis://x\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    [problem] = caught.value.problems
    assert ".env" in problem and "did you mean JETTI_RELAY_REDIS_URL?" in problem


def test_variables_read_outside_settings_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ./run script's and the benchmark's variables are not mistakes."""
    for name in EXTERNAL_VARIABLES:
        monkeypatch.setenv(name, "1")
    load_settings()


def test_every_settings_field_is_a_known_variable() -> None:
    """Known names come from the Settings fields, so a field another change adds is known."""
    assert {env_name(f) for f in Settings.model_fields} <= known_variables()


def test_every_jetti_relay_variable_in_the_repository_is_known() -> None:
    """Each JETTI_RELAY_* name the code, docs or compose files use is a setting, an alias or in
    EXTERNAL_VARIABLES: a variable read outside Settings must be listed there, in one place."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    unknown: dict[str, str] = {}
    for name in files:
        path = ROOT / name
        if name in _DELIBERATELY_WRONG or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for variable in _VARIABLE.findall(text):
            if variable not in known_variables():
                unknown.setdefault(variable, name)
    assert unknown == {}


def test_invalid_values_are_named_without_echoing_them() -> None:
    """An invalid value is refused with its variable's name and never its text."""
    problems = refusal(JETTI_RELAY_CHANNEL_ID="s3cret-ish", JETTI_RELAY_LOG_LEVEL="loud")
    named = [p.split(":")[0] for p in problems]
    assert named == ["JETTI_RELAY_CHANNEL_ID", "JETTI_RELAY_LOG_LEVEL"]
    assert not any("s3cret" in p or "loud" in p for p in problems)


@pytest.mark.parametrize(
    ("mode", "env", "missing"),
    [
        ("async", {}, ["JETTI_RELAY_WEBHOOK_HASH"]),
        ("async", {"webhook_hash": "  "}, ["JETTI_RELAY_WEBHOOK_HASH"]),
        ("sync", {}, ["JETTI_RELAY_API_TOKEN", "JETTI_RELAY_CHANNEL_ID"]),
        ("sync", {"api_token": "t"}, ["JETTI_RELAY_CHANNEL_ID"]),
        ("async", {"webhook_hash": "h"}, []),
        ("sync", {"api_token": "t", "channel_id": "3"}, []),
    ],
)
def test_a_missing_jetti_secret_is_a_problem_for_the_mode(
    mode: str, env: dict[str, str], missing: list[str]
) -> None:
    """Async needs the webhook hash; sync needs the API token and the channel id."""
    problems = jetti_problems(Settings(jetti_mode=mode, **env))  # type: ignore[arg-type]
    assert [p.split(" ")[0] for p in problems] == missing


@pytest.mark.parametrize(
    "url",
    [
        "https://api.jetti.io",
        "https://api.jetti.io/",
        "https://api.jetti.io/api",
        "https://api.jetti.io/api/",
    ],
)
def test_the_api_url_works_with_or_without_api(url: str) -> None:
    """JETTI_RELAY_JETTI_API_URL may end in /api (as the sandbox and Jetti's docs print it)."""
    settings = Settings(jetti_mode="sync", jetti_api_url=url, api_token="t", channel_id=5)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"id": 1})

    build_jetti_client(settings, httpx.Client(transport=httpx.MockTransport(handler))).submit(b"{}")
    assert seen == ["https://api.jetti.io/api/channels/5/manual-sale.json"]


@pytest.mark.parametrize("field", ["jetti_async_url", "jetti_api_url"])
@pytest.mark.parametrize("url", ["http://api.jetti.io", "ftp://api.jetti.io", "api.jetti.io"])
def test_jetti_urls_must_be_https(monkeypatch: pytest.MonkeyPatch, field: str, url: str) -> None:
    """The hash or token never travels in clear text to a remote host (reliability L2)."""
    [problem] = refusal(**{env_name(field): url})
    assert problem.startswith(f"{env_name(field)}: must be an https:// URL")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]", "sandbox", "relay.localhost"]
)
def test_plain_http_is_allowed_to_loopback_and_the_sandbox(host: str) -> None:
    """Loopback, localhost and the compose sandbox service may be plain http."""
    assert Settings(jetti_api_url=f"http://{host}:8080").jetti_api_url == f"http://{host}:8080"


def test_lock_ttl_must_outlive_the_hard_time_limit() -> None:
    """The order lock is never extended: it must outlive a task (reliability L7)."""
    settings = Settings(lock_ttl_s=150.0, hard_time_limit_s=150.0)
    [problem] = check_timeouts(settings, "prefork")
    assert "JETTI_RELAY_LOCK_TTL_S" in problem and "JETTI_RELAY_HARD_TIME_LIMIT_S" in problem


def test_the_sandbox_prints_variables_the_relay_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's printed lines, fed to the relay's settings with the unknown-variable check
    on, point a sync relay at the sandbox's endpoints."""
    lines = relay_variables("0.0.0.0", 8099, 4)
    for line in lines:
        name, _, value = line.partition("=")
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JETTI_RELAY_API_TOKEN", "t")
    settings = load_settings()
    assert (
        jetti_problems(Settings(jetti_mode="sync", api_token="t", channel_id=settings.channel_id))
        == []
    )
    assert settings.jetti_async_url == (
        "http://127.0.0.1:8099/webhooks/custom-channels/manual-sale.json"
    )
    assert (settings.jetti_api_url, settings.channel_id) == ("http://127.0.0.1:8099", 4)
