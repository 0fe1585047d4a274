"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and they can fail.

`./run test` runs `lint-imports` on the tree; this test shows the contracts are not vacuous: in a
copy of the tree where the pure core imports redis, or a store imports the settings, the check
fails and names the broken contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(dest: Path) -> Path:
    for package in ("worker", "producers", "ops"):
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_tree_keeps_every_layer_contract(tmp_path: Path) -> None:
    """The tree as committed: every contract kept."""
    done = _lint(_copy_tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("worker/core/keys.py", "import redis", "core is pure"),
        ("worker/store/breaker.py", "import worker.settings", "stores import only the core"),
        ("worker/pipeline/processor.py", "import worker.store.ledger", "do not know each other"),
        ("producers/enqueue.py", "import worker.celery_app", "producers never import"),
        ("worker/core/records.py", "import worker.runtime", "worker is layered"),
    ],
)
def test_a_forbidden_import_breaks_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    """One forbidden import added to a copy of the tree makes `lint-imports` exit non-zero and
    name the contract it breaks."""
    tree = _copy_tree(tmp_path)
    target = tree / module
    source = target.read_text()
    head, sep, rest = source.partition("from __future__ import annotations\n")
    target.write_text(f"{head}{sep}\n{line}  # deliberately forbidden\n{rest}")
    done = _lint(tree)
    assert done.returncode != 0, done.stdout
    assert f"{contract}" in done.stdout
    assert "BROKEN" in done.stdout
