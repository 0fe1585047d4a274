"""The rules file: routes, splits and defaults from TOML, with errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.core.rules import Route, Rules, RulesError, load_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "rules" / "example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_loads() -> None:
    """The example rules file (docs/contract.md, Rules file) parses into routes and splits."""
    rules = load_rules(EXAMPLE)
    assert rules.routes[0] == Route("DS-*", "dropship", dropship_provider_id=7)
    assert rules.routes[1] == Route("WH-*", "fulfill", warehouse_id=12)
    assert rules.split_skus == ("ENGRAVE-*",)
    assert rules.auto_connect_by_sku is True
    assert rules.max_units_per_line == 1000


def test_empty_rules_do_nothing() -> None:
    """Rules.empty() routes nothing, splits nothing and has no auto-connect default."""
    rules = Rules.empty()
    assert rules.route_for("X") is None
    assert not rules.splits("X")
    assert rules.auto_connect_by_sku is None


def test_first_matching_route_wins() -> None:
    """Routes are tried in file order with fnmatch globs."""
    rules = Rules(routes=(Route("A*", "auto"), Route("AB*", "fulfill", warehouse_id=1)))
    assert rules.route_for("ABC") == Route("A*", "auto")
    assert rules.route_for("B") is None
    assert rules.route_for(None) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[route]]\nsku = "A"\nmode = "fulfill"\n', "route[0].warehouse_id"),
        ('[[route]]\nsku = "A"\nmode = "fulfill"\nwarehouse_id = "12"\n', "route[0].warehouse_id"),
        ('[[route]]\nsku = "A"\nmode = "dropship"\n', "route[0].dropship_provider_id"),
        ('[[route]]\nsku = "A"\nmode = "teleport"\n', "route[0].mode"),
        ('[[route]]\nmode = "auto"\n', "route[0].sku"),
        ('[[route]]\nsku = "A"\nmode = "auto"\nwarehouse_id = 1\n', "route[0].mode"),
        ('[[route]]\nsku = "A"\nmode = "auto"\ncolour = 1\n', "route[0].colour"),
        ("[split]\nskus = [1]\n", "split.skus"),
        ("[defaults]\nauto_connect_by_sku = 1\n", "defaults.auto_connect_by_sku"),
        ("[defaults]\nmax_units_per_line = 0\n", "defaults.max_units_per_line"),
        ("[routes]\n", "routes"),
        ("not toml =", "(syntax)"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    """Every bad rules file raises RulesError (a ValueError) naming the file and the key."""
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as exc:
        load_rules(path)
    assert isinstance(exc.value, ValueError)
    assert exc.value.key == key
    assert str(exc.value).startswith(f"{path}: {key}: ")


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    """An unreadable file is reported, not a bare OSError."""
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "absent.toml")
