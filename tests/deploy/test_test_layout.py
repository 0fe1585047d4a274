"""The test suite's own layout: shared helpers live in tests/factories.py and tests/fixtures/,
so no test module imports another, and files are named by behaviour, not by history."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                # `from . import test_x` names the module in the alias.
                found += [f"{module}.{alias.name}" for alias in node.names]
            elif node.module:
                found += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    """A helper two test files share belongs in tests/factories.py (plain data) or a module of
    tests/fixtures/ (service harnesses); importing it from a test module couples the two."""
    offenders = [
        f"{path.relative_to(TESTS.parent)} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith("tests.")
        and any(part.startswith("test_") or part == "conftest" for part in module.split("."))
    ]
    assert offenders == []


def test_no_test_file_is_named_after_a_review() -> None:
    """Files say what they check (test_exit_codes.py), not when they were written."""
    named_after_history = re.compile(r"(^|_)(review|fixes|issue\d*)(_|\.py$)")
    assert [p.name for p in TESTS.rglob("test_*.py") if named_after_history.search(p.name)] == []
