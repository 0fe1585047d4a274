"""Routing, splitting and auto-connect rules, read from a TOML file.

File format (every table optional)::

    [[route]]                 # first matching route wins (fnmatch glob on the line SKU)
    sku = "ENG-*"
    mode = "fulfill"          # "fulfill" needs warehouse_id, "dropship" needs dropship_provider_id
    warehouse_id = 12

    [split]
    skus = ["ENGRAVE-*"]      # lines whose SKU matches are split into one line per unit

    [defaults]
    auto_connect_by_sku = true    # options.findOrCreateChannelVariant unless the order sets it
    max_units_per_line = 1000     # refuse splits larger than this
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

# Refuse splitting a line into more lines than this unless the rules file says otherwise.
DEFAULT_MAX_UNITS_PER_LINE = 1000

RouteMode = Literal["fulfill", "dropship", "auto"]


class RulesError(ValueError):
    """A rules file cannot be read or breaks the format. Names the file and the key."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        self.path = str(path)
        self.key = key
        self.detail = message
        super().__init__(f"{self.path}: {key}: {message}")


@dataclass(frozen=True, slots=True)
class Route:
    """Route lines whose SKU matches `sku_glob` to a warehouse, a provider or Jetti's rules."""

    sku_glob: str
    mode: RouteMode
    warehouse_id: int | None = None
    dropship_provider_id: int | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """Rules applied by the transform when the raw order does not decide for itself."""

    routes: tuple[Route, ...] = ()
    split_skus: tuple[str, ...] = ()
    auto_connect_by_sku: bool | None = None
    max_units_per_line: int = DEFAULT_MAX_UNITS_PER_LINE

    @classmethod
    def empty(cls) -> Rules:
        """No routes, no splits, no auto-connect default."""
        return cls()

    def route_for(self, sku: str | None) -> Route | None:
        """The first route whose glob matches `sku` (case-sensitive), or None."""
        if sku is None:
            return None
        for route in self.routes:
            if fnmatchcase(sku, route.sku_glob):
                return route
        return None

    def splits(self, sku: str | None) -> bool:
        """True when a split rule matches `sku`."""
        return sku is not None and any(fnmatchcase(sku, g) for g in self.split_skus)


def _int_id(path: Path, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RulesError(path, key, "must be a positive integer")
    return value


def _route(path: Path, index: int, raw: object) -> Route:
    where = f"route[{index}]"
    if not isinstance(raw, dict):
        raise RulesError(path, where, "must be a table")
    unknown = set(raw) - {"sku", "mode", "warehouse_id", "dropship_provider_id"}
    if unknown:
        raise RulesError(path, f"{where}.{sorted(unknown)[0]}", "unknown key")
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku:
        raise RulesError(path, f"{where}.sku", "must be a non-empty string (a glob)")
    mode = raw.get("mode")
    if mode == "fulfill":
        if "dropship_provider_id" in raw:
            raise RulesError(path, f"{where}.dropship_provider_id", "not allowed with mode fulfill")
        wid = _int_id(path, f"{where}.warehouse_id", raw.get("warehouse_id"))
        return Route(sku, "fulfill", warehouse_id=wid)
    if mode == "dropship":
        if "warehouse_id" in raw:
            raise RulesError(path, f"{where}.warehouse_id", "not allowed with mode dropship")
        pid = _int_id(path, f"{where}.dropship_provider_id", raw.get("dropship_provider_id"))
        return Route(sku, "dropship", dropship_provider_id=pid)
    if mode == "auto":
        if "warehouse_id" in raw or "dropship_provider_id" in raw:
            raise RulesError(path, f"{where}.mode", "auto takes no warehouse or provider id")
        return Route(sku, "auto")
    raise RulesError(path, f"{where}.mode", 'must be "fulfill", "dropship" or "auto"')


def _parse(path: Path, doc: dict[str, Any]) -> Rules:
    unknown = set(doc) - {"route", "split", "defaults"}
    if unknown:
        raise RulesError(path, sorted(unknown)[0], "unknown table")
    raw_routes = doc.get("route", [])
    if not isinstance(raw_routes, list):
        raise RulesError(path, "route", "must be an array of tables ([[route]])")
    routes = tuple(_route(path, i, r) for i, r in enumerate(raw_routes))

    split = doc.get("split", {})
    if not isinstance(split, dict):
        raise RulesError(path, "split", "must be a table")
    if set(split) - {"skus"}:
        raise RulesError(path, f"split.{sorted(set(split) - {'skus'})[0]}", "unknown key")
    skus = split.get("skus", [])
    if not isinstance(skus, list) or not all(isinstance(s, str) and s for s in skus):
        raise RulesError(path, "split.skus", "must be a list of non-empty strings (globs)")

    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise RulesError(path, "defaults", "must be a table")
    extra = set(defaults) - {"auto_connect_by_sku", "max_units_per_line"}
    if extra:
        raise RulesError(path, f"defaults.{sorted(extra)[0]}", "unknown key")
    auto = defaults.get("auto_connect_by_sku")
    if auto is not None and not isinstance(auto, bool):
        raise RulesError(path, "defaults.auto_connect_by_sku", "must be true or false")
    cap = defaults.get("max_units_per_line", DEFAULT_MAX_UNITS_PER_LINE)
    cap = _int_id(path, "defaults.max_units_per_line", cap)
    return Rules(
        routes=routes, split_skus=tuple(skus), auto_connect_by_sku=auto, max_units_per_line=cap
    )


def load_rules(path: Path) -> Rules:
    """Read a rules file. Raises RulesError (a ValueError) naming the file and the offending key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise RulesError(path, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(path, "(syntax)", str(exc)) from exc
    return _parse(path, doc)
