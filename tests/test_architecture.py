"""The dependency rules of DESIGN.md, checked on every module of the source tree.

1. Direction: a package imports only from rows above it; siblings on one row do not import each
   other. One amendment: ``strata.store`` (the SQLite connection helper and leases) is
   infrastructure that the other row-3 packages may use. Every form of import counts: ``import
   strata.x``, ``from strata.x import y``, ``from strata import x``, relative imports, and
   ``importlib.import_module`` / ``__import__`` (with a literal name, or with a table of literal
   names in the same module), at module level, under ``if TYPE_CHECKING:`` or inside a function.
2. No cycles inside a package among the imports that run when a module is loaded.
3. Each SQLite table (``strata.store.schema``) is read and written by the package that owns it
   only; the exceptions are listed below, each with its reason.

The scanners are plain functions over source text, and the ``test_scanner_*`` tests feed them
small snippets, so that a scanner which stops seeing a form of import fails here, loudly.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.store.schema import MIGRATIONS

SRC = Path(__file__).resolve().parents[1] / "src" / "strata"

ROWS = {
    "errors": 0,  # the error tree is below everything, digest included
    "digest": 1,
    "gofmt": 1,  # Go's quoting and duration text: pure functions, like digest
    "jsonload": 1,  # bounded JSON decoding for every reader of outside input
    "oci": 2,
    "dockerfile": 2,  # the Dockerfile language: parser, shell words, typed instructions; pure
    "store": 3,
    "content": 3,
    "layer": 3,
    "snapshot": 3,
    "volume": 3,  # named volumes: directories under volumes/, their rows and their users
    "network": 3,  # bridge networks through the CNI plugins (DESIGN.md: networks, volumes)
    "diff": 4,  # the seam between snapshots and layers: apply, compare, chain IDs
    "image": 5,
    "registry": 6,
    "runtime": 6,
    "builder": 7,
    "system": 7,  # store-wide check and repair: reads every package below it
    "api": 8,
    "cli": 9,
    "__main__": 10,
    # `strata/__init__.py` re-exports the API (lazily), so it is on the API's row: `from strata
    # import x` below that row (x not a module) is the upward import it is.
    "__init__": 8,
}
# `strata/__init__.py` is the API's front door: it may import `strata.api`, its row-mate.
FRONT_DOORS = {("__init__", "api")}
INFRASTRUCTURE = {"store"}

# Each table's owner: the package that writes it today. Only the owner reads or writes it.
TABLE_OWNERS = {
    "images": "image",
    "tags": "image",
    "repo_digests": "image",
    "layers": "image",
    "leases": "store",
    "lease_resources": "store",
    "snapshots": "snapshot",
    "containers": "runtime",
    "build_cache": "builder",
    "build_lineage": "builder",
    "layer_compressions": "registry",
    "blob_sources": "registry",
    "volumes": "volume",
    "volume_users": "volume",
    "networks": "network",
}
# Packages that may read (and repair) every table: `system check` audits the whole store, and its
# repair deletes rows that name what is gone (by a table name it only knows at run time).
AUDITORS = {"system"}
# Crossings the code makes today, each a finding for the next step of issue 11 (one reader and
# one writer of the store). A listed crossing that disappears fails the test: shrink the list.
KNOWN_CROSSINGS = {
    # Garbage collection keeps the compressed blobs a push made (strata.registry's record) while
    # an image has their layer: image, row 5, reads a row-6 table (gc, in its own module).
    ("image/gc.py", "layer_compressions"): "gc keeps pushed compressions alive",
    # pull skips layers it already has by reading the layers table instead of asking ImageStore.
    ("registry/pull.py", "layers"): "pull reads layer rows to skip known blobs",
}


@dataclass(frozen=True)
class Import:
    """One import a module makes, resolved to the dotted name of what it loads."""

    line: int
    target: str
    lazy: bool  # inside a function (or named for importlib): runs at call time, not at load
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


def all_modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of the tree by dotted name (a package by its own name, not ``__init__``)."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        parts = ("strata", *path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _in_strata(name: str) -> bool:
    return name == "strata" or name.startswith("strata.")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"import_module", "__import__"}
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )


class _ImportScanner:
    """Collects a module's imports of strata, knowing whether each is lazy or typing-only."""

    def __init__(self, module: str, is_package: bool, modules: Iterable[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = set(modules)
        self.found: list[Import] = []
        self.unreadable: list[int] = []  # lines of importlib calls with a name we cannot read
        self.named: list[tuple[int, str]] = []  # string literals that name a strata module

    def walk(self, node: ast.AST, lazy: bool = False, typing_only: bool = False) -> None:
        """Visit ``node`` and its children; ``lazy`` inside a function, ``typing_only`` under
        ``if TYPE_CHECKING:``."""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lazy = True
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                self.walk(child, lazy, True)
            for child in node.orelse:
                self.walk(child, lazy, typing_only)
            return
        self._record(node, lazy, typing_only)
        for inner in ast.iter_child_nodes(node):
            self.walk(inner, lazy, typing_only)

    def _record(self, node: ast.AST, lazy: bool, typing_only: bool) -> None:
        def add(target: str) -> None:
            if _in_strata(target):
                self.found.append(Import(getattr(node, "lineno", 0), target, lazy, typing_only))

        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = self._relative(node.level, node.module or "") if node.level else node.module
            # `from p import x` loads p.x when x is a module, else p (x a name defined in p).
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in self.modules else base or "")
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            target = self._dynamic_target(node)
            if target is None:
                self.unreadable.append(node.lineno)
            else:
                add(target)
        elif isinstance(node, ast.Constant) and node.value in self.modules:
            self.named.append((node.lineno, str(node.value)))

    def _relative(self, level: int, name: str, package: str | None = None) -> str:
        parts = (self.package if package is None else package).split(".")
        parts = parts[: len(parts) - (level - 1)]
        return ".".join([*parts, *([name] if name else [])])

    def _dynamic_target(self, call: ast.Call) -> str | None:
        name = call.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            if not name.value.startswith("."):
                return name.value
            # import_module(".x", package): relative to the literal package it is given.
            anchors = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "package")]
            package = next(
                (a.value for a in anchors if isinstance(a, ast.Constant) and a.value), ""
            )
            level = len(name.value) - len(name.value.lstrip("."))
            return self._relative(level, name.value.lstrip("."), str(package))
        first = name.values[0] if isinstance(name, ast.JoinedStr) and name.values else None
        if (
            isinstance(first, ast.FormattedValue)
            and isinstance(first.value, ast.Name)
            and first.value.id == "__name__"
        ):
            return self.module  # f"{__name__}.{x}": its own submodule, named by a table here
        return None


def scan_imports(
    source: str, module: str, is_package: bool = False, modules: Iterable[str] = ()
) -> list[Import]:
    """The strata modules that ``source`` (the text of ``module``) imports, in every form.

    An importlib call whose name is not a literal is read through the module's string literals
    that name strata modules (the usual lazy table: name -> "strata.x.y"); a module with such a
    call and no such literal cannot be checked and fails with the line of the call.
    """
    scanner = _ImportScanner(module, is_package, modules)
    scanner.walk(ast.parse(source))
    found = list(scanner.found)
    if scanner.unreadable:
        if not scanner.named:
            raise AssertionError(
                f"{module}:{scanner.unreadable[0]}: an importlib call whose module the test "
                "cannot read: name its targets as string literals in this module"
            )
        found += [Import(line, name, lazy=True, typing_only=False) for line, name in scanner.named]
    return found


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the directed graph ``edges`` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


# A table named after a keyword in SQL text: upper-case keywords, so prose ("read from images")
# does not count. `{` stands for a table the code names at run time; it counts only in a
# statement (a Dockerfile message's "FROM {name}" is not one).
_TABLE_USE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(\w+|\{)")
_STATEMENT = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|REPLACE)\b")


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *ast.walk(tree)]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def scan_tables(source: str, tables: Iterable[str]) -> list[tuple[int, str]]:
    """The tables ``source``'s SQL literals read or write: (line, table), ``?`` for a run-time
    name. Docstrings are prose and do not count."""
    tree = ast.parse(source)
    known = set(tables)
    skip = _docstrings(tree)
    inner = {
        id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values
    }  # the parts of an f-string are read with it, once
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in inner:
            continue
        text = _literal_text(node)
        if text is None:
            continue
        for match in _TABLE_USE.finditer(text):
            name = match.group(1)
            if name == "{" and _STATEMENT.search(text):
                found.append((getattr(node, "lineno", 0), "?"))
            elif name in known:
                found.append((getattr(node, "lineno", 0), name))
    return found


def schema_tables() -> set[str]:
    """Every table the migrations create."""
    return {m for sql in MIGRATIONS for m in re.findall(r"CREATE TABLE (\w+)", sql)}


MODULES = all_modules()


def _owner(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _scan(module: str) -> list[Import]:
    path = MODULES[module]
    return scan_imports(path.read_text(), module, path.name == "__init__.py", MODULES)


# --- the scanners, on snippets ------------------------------------------------------------------

SNIPPET_MODULES = {
    "strata",
    "strata.builder",
    "strata.builder.a",
    "strata.builder.b",
    "strata.builder.sub",
    "strata.builder.sub.c",
    "strata.image",
    "strata.image.store",
    "strata.jsonload",
}


def _targets(source: str, module: str = "strata.builder.a", is_package: bool = False) -> set[str]:
    return {i.target for i in scan_imports(source, module, is_package, SNIPPET_MODULES)}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("import strata.image.store", "strata.image.store"),
        ("import strata.image.store as s", "strata.image.store"),
        ("from strata.image.store import ImageStore", "strata.image.store"),
        ("from strata.image import store", "strata.image.store"),
        ("from strata.image import ImageStore", "strata.image"),
        ("from strata import image", "strata.image"),
        ("from strata import jsonload", "strata.jsonload"),
        ("from strata import __version__", "strata"),
        ("from . import b", "strata.builder.b"),
        ("from .b import f", "strata.builder.b"),
        ("from .sub import c", "strata.builder.sub.c"),
        ("from .. import image", "strata.image"),
        ("from ..image.store import ImageStore", "strata.image.store"),
        ("import importlib\nimportlib.import_module('strata.image.store')", "strata.image.store"),
        ("from importlib import import_module\nimport_module('strata.image')", "strata.image"),
        ("import importlib\nimportlib.import_module('..image', 'strata.builder')", "strata.image"),
        ("__import__('strata.image.store')", "strata.image.store"),
        ("def f():\n    from strata.image import store", "strata.image.store"),
        ("if TYPE_CHECKING:\n    from strata.image.store import X", "strata.image.store"),
        (
            "import importlib\nHOMES = {'X': 'strata.image.store'}\n"
            "def get(n):\n    return importlib.import_module(HOMES[n])",
            "strata.image.store",
        ),
    ],
)
def test_scanner_sees_every_form_of_import(source: str, target: str) -> None:
    assert target in _targets(source)


def test_scanner_resolves_relative_imports_in_a_package_init() -> None:
    assert _targets("from . import a", "strata.builder", is_package=True) == {"strata.builder.a"}
    # In a package's __init__, `.` is the package itself: `..` is its parent.
    assert _targets("from .. import a", "strata.builder.sub", is_package=True) == {
        "strata.builder.a"
    }


def test_scanner_ignores_other_packages_and_prose() -> None:
    assert _targets("import os\nfrom pathlib import Path\nX = 'strata.image.store'") == set()


def test_scanner_marks_lazy_and_typing_only_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import strata.builder.b\n"
        "if TYPE_CHECKING:\n"
        "    import strata.image\n"
        "else:\n"
        "    import strata.jsonload\n"
        "def f() -> None:\n"
        "    import strata.builder.sub\n"
    )
    found = {i.target: (i.lazy, i.typing_only) for i in scan_imports(source, "strata.builder.a")}
    assert found == {
        "strata.builder.b": (False, False),
        "strata.image": (False, True),
        "strata.jsonload": (False, False),
        "strata.builder.sub": (True, False),
    }


def test_scanner_refuses_an_importlib_call_it_cannot_read() -> None:
    with pytest.raises(AssertionError, match="cannot read"):
        scan_imports("import importlib\ndef f(n):\n    importlib.import_module(n)", "strata.x")


def test_find_cycle_names_the_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_scan_tables_reads_sql_not_prose() -> None:
    source = (
        '"""Rows FROM images are read here."""\n'
        "def f(conn, t):\n"
        '    """Docstring: DELETE FROM tags."""\n'
        '    conn.execute("SELECT i.x FROM images i JOIN tags t ON t.m = i.m")\n'
        '    conn.execute("INSERT OR REPLACE INTO layers (a) VALUES (?)")\n'
        '    conn.execute("UPDATE containers SET state = ?")\n'
        '    conn.execute(f"DELETE FROM {t} WHERE rowid = ?")\n'
        '    conn.execute("WITH chain AS (SELECT 1) SELECT * FROM chain")\n'
        '    raise ValueError(f"FROM {t}: No such image")\n'
        '    raise ValueError("cannot read from images")\n'
    )
    tables = {"images", "tags", "layers", "containers"}
    assert sorted(scan_tables(source, tables)) == [
        (4, "images"),
        (4, "tags"),
        (5, "layers"),
        (6, "containers"),
        (7, "?"),
    ]


# --- the rules, on the tree ---------------------------------------------------------------------


def test_every_package_has_a_row() -> None:
    missing = {_owner(m) for m in MODULES} - set(ROWS)
    assert not missing, f"add {missing} to ROWS (and to DESIGN.md)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_dependency_direction(module: str) -> None:
    owner = _owner(module)
    row = ROWS[owner]
    where = MODULES[module].relative_to(SRC)
    for imp in _scan(module):
        target = _owner(imp.target)
        if target == owner:
            continue
        target_row = ROWS[target]
        allowed = (
            target_row < row
            or (target in INFRASTRUCTURE and target_row == row and owner not in INFRASTRUCTURE)
            or (owner, target) in FRONT_DOORS
        )
        assert allowed, (
            f"{where}:{imp.line} imports {imp.target}: row {row} ({owner}) may not import "
            f"row {target_row} ({target})"
        )


def _load_time_edges(owner: str) -> dict[str, set[str]]:
    # Only imports that run while a module loads make a cycle that can break (a half-initialised
    # module seen by its importer). A lazy import inside a function runs after every module has
    # loaded (it is the usual way to break such a cycle), and a TYPE_CHECKING one never runs; so
    # neither counts here, while both still count for the direction above, being dependencies.
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        if _owner(module) != owner:
            continue
        edges[module] = {
            i.target
            for i in _scan(module)
            if not i.lazy and not i.typing_only and _owner(i.target) == owner
        } - {module}
    return edges


@pytest.mark.parametrize("owner", sorted(set(ROWS) - {"__init__", "__main__"}))
def test_no_import_cycle_inside_a_package(owner: str) -> None:
    cycle = find_cycle(_load_time_edges(owner))
    assert cycle is None, f"import cycle in strata.{owner}: {' -> '.join(cycle or [])}"


def test_every_table_has_an_owner() -> None:
    tables = schema_tables()
    assert tables == set(TABLE_OWNERS), (
        f"tables without an owner: {tables - set(TABLE_OWNERS)}; "
        f"owners of no table: {set(TABLE_OWNERS) - tables}"
    )
    assert set(TABLE_OWNERS.values()) <= set(ROWS)


def _table_uses() -> Iterator[tuple[str, int, str]]:
    tables = set(TABLE_OWNERS)
    for module, path in MODULES.items():
        if module == "strata.store.schema":
            continue  # the migrations create every table
        for line, table in scan_tables(path.read_text(), tables):
            yield str(path.relative_to(SRC)), line, table


def test_each_table_is_used_only_by_its_owner() -> None:
    crossings = set()
    wrong = []
    for where, line, table in _table_uses():
        owner = where.split("/")[0].removesuffix(".py")
        if owner in AUDITORS or TABLE_OWNERS.get(table) == owner:
            continue
        if (where, table) in KNOWN_CROSSINGS:
            crossings.add((where, table))
            continue
        whose = "a table named at run time" if table == "?" else f"strata.{TABLE_OWNERS[table]}'s"
        wrong.append(f"{where}:{line} uses {table} ({whose}), not its own")
    assert not wrong, "\n".join(wrong)
    stale = set(KNOWN_CROSSINGS) - crossings
    assert not stale, f"crossings gone (remove them from KNOWN_CROSSINGS): {sorted(stale)}"


# The packages that may ask a snapshotter what its directories hold: the snapshotter itself and
# the diff seam, which picks the whiteout form and the tree to compare with from it.
DIFF_KIND_READERS = {"snapshot", "diff"}


def test_only_snapshot_and_diff_read_diff_kind() -> None:
    readers = [
        f"{path.relative_to(SRC)}:{number}"
        for module, path in MODULES.items()
        if _owner(module) not in DIFF_KIND_READERS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "diff_kind" in line
    ]
    assert not readers, (
        "only strata.snapshot and strata.diff may read diff_kind (ask strata.diff instead): "
        + ", ".join(readers)
    )
