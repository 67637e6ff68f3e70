"""The dependency direction of DESIGN.md, checked on every import in the source tree.

A package imports only from rows above it; siblings on one row do not import each other. One
amendment: ``strata.store`` (the SQLite connection helper and leases) is infrastructure that the
other row-3 packages may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "strata"

ROWS = {
    "errors": 0,  # the error tree is below everything, digest included
    "digest": 1,
    "gofmt": 1,  # Go's quoting and duration text: pure functions, like digest
    "jsonload": 1,  # bounded JSON decoding for every reader of outside input
    "oci": 2,
    "store": 3,
    "content": 3,
    "layer": 3,
    "snapshot": 3,
    "image": 4,
    "registry": 5,
    "runtime": 5,
    "build": 6,
    "system": 6,  # store-wide check and repair: reads every package below it
    "cli": 7,
    "__main__": 8,
}
INFRASTRUCTURE = {"store"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "strata"]


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_row() -> None:
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.name != "__pycache__"}
    packages -= {"__init__", "py"}
    missing = {p.removesuffix(".py") for p in packages} - set(ROWS) - {"py.typed", "__init__"}
    assert not missing, f"add {missing} to ROWS (and to DESIGN.md)"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_dependency_direction(path: Path) -> None:
    relative = path.relative_to(SRC)
    owner = relative.parts[0].removesuffix(".py")
    if owner == "__init__":
        return
    row = ROWS[owner]
    for line, module in _imports(path):
        target = _top(module)
        if target is None or target == owner:
            continue
        target_row = ROWS[target]
        allowed = target_row < row or (
            target in INFRASTRUCTURE and target_row == row and owner not in INFRASTRUCTURE
        )
        assert allowed, (
            f"{relative}:{line} imports {module}: row {row} ({owner}) may not import "
            f"row {target_row} ({target})"
        )
