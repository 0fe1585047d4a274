"""Tracing off costs a no-op call and needs no opentelemetry; an endpoint without the `tracing`
extra is refused with one line naming the extra; the OTLP URL is the collector's traces path."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import worker.tracing as tracing
from ops.options import settings_from_options
from worker.core.exit_codes import ExitCode
from worker.core.tracing import NOOP_SPAN, NOOP_TRACER, ORDER_KEY
from worker.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENDPOINT = "http://user:s3cret@collector:4318"


def test_no_endpoint_is_the_noop_tracer() -> None:
    """Without an endpoint the process tracer is the no-op one: its spans have no context and
    every call on them does nothing."""
    tracer = tracing.process_tracer(None, instance_id="w")
    assert tracer is NOOP_TRACER and not tracer.enabled
    span = tracer.start("x", {ORDER_KEY: "k"}, parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert span is NOOP_SPAN and span.traceparent is None
    assert span.child("y", {}) is NOOP_SPAN
    span.set_attribute(ORDER_KEY, "k")
    span.end()


def test_tracing_off_needs_no_opentelemetry() -> None:
    """With opentelemetry not importable (the extra absent), the producers, the worker's
    runtime and the process tracer load and work: tracing off never imports it. (A fresh
    interpreter; redis-py itself probes for opentelemetry, so "not loaded" cannot be asked.)"""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # any import of it raises ImportError\n"
        "import producers, worker.runtime, worker.tracing as t\n"
        "from worker.core.tracing import NOOP_TRACER\n"
        "assert t.process_tracer(None, instance_id='w') is NOOP_TRACER\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_an_endpoint_without_the_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The line names the extra and its pip install, never the endpoint (it may hold a
    credential); building the tracer raises TracingUnavailable with the same line."""
    monkeypatch.setattr(tracing, "_missing_modules", lambda: ["opentelemetry.sdk"])
    line = tracing.tracing_problem(SECRET_ENDPOINT)
    assert line is not None and "pip install 'jetti-relay[tracing]'" in line
    assert "s3cret" not in line and "\n" not in line
    assert tracing.tracing_problem(None) is None
    with pytest.raises(tracing.TracingUnavailable, match=r"jetti-relay\[tracing\]"):
        tracing.process_tracer(SECRET_ENDPOINT, instance_id="w")


def test_a_command_refuses_to_start_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command's settings step exits 2 (CONFIG) with the one line when the endpoint is
    set and the extra is missing."""
    monkeypatch.setenv("JETTI_RELAY_OTLP_ENDPOINT", SECRET_ENDPOINT)
    monkeypatch.setattr(tracing, "_missing_modules", lambda: ["opentelemetry.sdk"])
    try:
        with pytest.raises(SystemExit) as stopped:
            settings_from_options()
    finally:
        get_settings.cache_clear()
    assert stopped.value.code == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jetti-relay[tracing]" in err and "s3cret" not in err


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/custom/traces", "https://otel.example/custom/traces"),
    ],
)
def test_the_otlp_url_is_the_collectors_traces_path(endpoint: str, url: str) -> None:
    """A collector's base URL gets OTLP/HTTP's `/v1/traces`; a URL with a path is kept."""
    from worker.tracing_otel import traces_url

    assert traces_url(endpoint) == url


def test_the_tracing_extra_is_in_all_and_test() -> None:
    """`pip install 'jetti-relay[tracing]'` brings the API, the SDK and the OTLP/HTTP exporter;
    `all` (and so `test`) include it."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = " ".join(extras["tracing"])
    for package in (
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    ):
        assert package in names
    assert "tracing" in extras["all"][0]
