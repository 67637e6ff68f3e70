"""The sandbox of the hostile-layer corpus: canaries around a target, and the case registry."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .members import MODES

Check = Callable[[Path, str], None]


@dataclass
class Sandbox:
    """A target dir, a canary tree beside it and one in /tmp."""

    base: Path
    target: Path
    canary: Path
    tmp_canary: Path
    mode: str = "delete"

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        found: dict[str, tuple[object, ...]] = {}
        for top in (self.base, self.tmp_canary):
            for path in _walk(top, skip=self.target):
                st = os.lstat(path)
                content: object = None
                if stat.S_ISREG(st.st_mode):
                    content = hashlib.sha256(path.read_bytes()).hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    content = os.readlink(path)
                xattrs = sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False))
                    for n in os.listxattr(path, follow_symlinks=False)
                )
                found[str(path)] = (
                    st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_ino,
                    st.st_mtime_ns, st.st_ctime_ns, content, tuple(xattrs),
                )  # fmt: skip
        return found


def _walk(top: Path, skip: Path) -> Iterator[Path]:
    yield top
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def plant(root: Path) -> None:
    (root / "dir").mkdir(parents=True)
    (root / "file").write_bytes(b"precious\n")
    (root / "dir" / "inner").write_bytes(b"inner\n")
    os.symlink("file", root / "link")
    os.chmod(root / "file", 0o644)


@dataclass(frozen=True)
class Case:
    build: Callable[[Sandbox], bytes]
    error: type[Exception] | None = None
    check: Check | None = None
    modes: tuple[str, ...] = MODES
    root: bool = False
    limit: int | None = None


CASES: dict[str, Case] = {}


def case(
    *,
    error: type[Exception] | None = None,
    check: Check | None = None,
    modes: tuple[str, ...] = MODES,
    root: bool = False,
    limit: int | None = None,
) -> Callable[[Callable[[Sandbox], bytes]], Callable[[Sandbox], bytes]]:
    def register(build: Callable[[Sandbox], bytes]) -> Callable[[Sandbox], bytes]:
        CASES[build.__name__] = Case(build, error, check, modes, root, limit)
        return build

    return register


def that(*conditions: object) -> None:
    assert all(conditions), conditions


def is_dir(path: Path) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def regular(path: Path, content: bytes) -> bool:
    return stat.S_ISREG(os.lstat(path).st_mode) and path.read_bytes() == content
