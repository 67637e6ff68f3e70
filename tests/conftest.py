"""Shared fixtures: a fresh store root per test, and the ``strata`` command run for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = (REPO / ".." / "shared" / "conformance").resolve()
IN_CI = os.environ.get("CI") == "true"
PEER_TOOLS = ("skopeo", "umoci", "runc", "mmdebstrap")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip root/peer tests where they cannot run, except in CI, which has everything."""
    if IN_CI:
        return
    not_root = os.geteuid() != 0
    missing = [t for t in PEER_TOOLS if shutil.which(t) is None]
    for item in items:
        if not_root and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if missing and item.get_closest_marker("peers"):
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    """An empty store root on the real disk (overlayfs cannot stack on overlayfs)."""
    root = tmp_path / "store"
    return root


class Strata:
    """Runs the real ``strata`` entry point in a subprocess against one store root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "STRATA_ROOT": str(self.root)}
        proc = subprocess.run(
            [sys.executable, "-m", "strata", *args],
            input=input.decode("latin-1") if input is not None else None,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"strata {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def fail(self, *args: str) -> str:
        """Run a command that must fail cleanly; return its one-line error."""
        proc = self(*args, check=False)
        assert proc.returncode != 0, f"strata {' '.join(args)} unexpectedly succeeded"
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {proc.stderr!r}"
        assert lines[0].startswith("Error: "), lines[0]
        return lines[0]


@pytest.fixture
def strata(store_root: Path) -> Iterator[Strata]:
    yield Strata(store_root)


def store_state(root: Path) -> dict[str, object]:
    """Everything observable in a store: its files (with sizes) and every table's rows."""
    import sqlite3

    files = {
        str(p.relative_to(root)): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("strata.db")
    }
    tables: dict[str, list[tuple[object, ...]]] = {}
    db = root / "strata.db"
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            names = [
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if not str(r[0]).startswith("sqlite_")
            ]
            for name in names:
                tables[name] = sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
        finally:
            conn.close()
    return {"files": files, "tables": tables}


DEBIAN_CACHE = Path(os.environ.get("STRATA_TEST_CACHE", "/var/tmp/strata-test-cache"))


def debian_rootfs_tar() -> Path:
    """A Debian bookworm minbase rootfs tar, made once by mmdebstrap and cached across runs.

    CI machines start empty, so the tests that need a real root filesystem build it themselves
    (about 30 s) instead of relying on anything left on the machine.
    """
    import fcntl

    tar = Path(os.environ.get("STRATA_TEST_ROOTFS_TAR", DEBIAN_CACHE / "bookworm-minbase.tar"))
    if tar.is_file():
        return tar
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        pytest.skip("needs root and mmdebstrap to make a Debian rootfs")
    tar.parent.mkdir(parents=True, exist_ok=True)
    with open(tar.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tar.is_file():
            partial = tar.with_suffix(f".{os.getpid()}.tmp")
            subprocess.run(
                ["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", "--format=tar",
                 "bookworm", str(partial)],
                check=True,
                env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
            )  # fmt: skip
            partial.rename(tar)
    return tar


def debian_store(factory: pytest.TempPathFactory, name: str, image: str) -> Strata:
    """A store of its own (under ``factory``'s ``name``) holding the Debian rootfs as ``image``:
    the store a test module's containers share."""
    strata = Strata(factory.mktemp(name) / "store")
    strata("import", str(debian_rootfs_tar()), image)
    return strata


def remove_containers(strata: Strata) -> None:
    """Remove whatever containers a test left in ``strata``, running or not."""
    leftover = strata("ps", "-a", "-q", "--no-trunc").stdout.split()
    if leftover:
        strata("rm", "-f", *leftover, check=False)


@pytest.fixture(scope="session")
def docker() -> object:
    """The anchors' Docker Engine (tests/anchors.py); tests that take it are marked ``peers``."""
    from tests.anchors import docker_or_skip

    return docker_or_skip()
