"""What one `jetti-relay migrate-keys` run did: the report `KeyMigration.run` returns
(worker/store/migrate.py), its summary line and its `--json` form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MigrationReport:
    """What a run did (or, with `dry_run`, would do). Names are Redis key names."""

    dry_run: bool
    orders: int = 0
    dead_letters: int = 0
    renamed: list[tuple[str, str]] = field(default_factory=list)
    merged: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    foreign_left: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    lowered: list[tuple[str, int, int]] = field(default_factory=list)
    reindexed: list[tuple[str, str]] = field(default_factory=list)
    cancels_marked: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing left for an engineer: no conflict, no name still holding another's data."""
        return not self.conflicts and not self.foreign_left

    def line(self) -> str:
        """The one-line summary printed last."""
        verb = "would " if self.dry_run else ""
        return (
            f"{'dry run: ' if self.dry_run else ''}orders {self.orders}, dead letters "
            f"{self.dead_letters}: {verb}rename {len(self.renamed)}, {verb}merge "
            f"{len(self.merged)}, {verb}re-publish {len(self.republished)}, {verb}lower "
            f"{len(self.lowered)} versions, {verb}re-index {len(self.reindexed)}, {verb}mark "
            f"{len(self.cancels_marked)} cancellations; conflicts "
            f"{len(self.conflicts)}, foreign left {len(self.foreign_left)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`--json`)."""
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "orders": self.orders,
            "dead_letters": self.dead_letters,
            "renamed": [{"from": a, "to": b} for a, b in self.renamed],
            "merged": [{"from": a, "to": b} for a, b in self.merged],
            "conflicts": self.conflicts,
            "foreign": self.foreign,
            "foreign_left": self.foreign_left,
            "republished": self.republished,
            "versions_lowered": [
                {"order_key": k, "from_ts_ms": a, "to_ts_ms": b} for k, a, b in self.lowered
            ],
            "reindexed": [{"order_key": k, "index": i} for k, i in self.reindexed],
            "cancels_marked": self.cancels_marked,
        }
