"""Helpers for the snapshot tests: describing trees, checksumming them, mounting for a while."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from strata.snapshot.model import Snapshotter
from strata.snapshot.mount import mount_all, unmount

_counter = itertools.count()


def describe(root: Path) -> dict[str, str]:
    """Every entry below ``root``: type, mode, owner, content digest, link target, device, xattrs.

    Times are left out: reading a tree may update atimes, and directory mtimes are not ours.
    """
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            parts = [stat.filemode(st.st_mode), f"{st.st_uid}:{st.st_gid}"]
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    parts.append(hashlib.sha256(fh.read()).hexdigest()[:16])
            elif stat.S_ISLNK(st.st_mode):
                parts.append("-> " + os.readlink(path))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                parts.append(f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
            xattrs = sorted(
                f"{a}={os.getxattr(path, a, follow_symlinks=False)!r}"
                for a in os.listxattr(path, follow_symlinks=False)
            )
            parts.extend(xattrs)
            out[rel] = " ".join(parts)
    return out


def checksum(root: Path) -> str:
    """One digest of `describe` plus file mtimes: equal only for untouched trees."""
    digest = hashlib.sha256()
    for rel, line in sorted(describe(root).items()):
        st = os.lstat(root / rel)
        mtime = "" if stat.S_ISDIR(st.st_mode) else str(st.st_mtime_ns)
        digest.update(f"{rel}\0{line}\0{mtime}\n".encode())
    return digest.hexdigest()


def files(root: Path) -> dict[str, str]:
    """Regular files below ``root`` and their text; directories as ``"<dir>"``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "<dir>"
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                out[rel] = Path(path).read_text()
            elif stat.S_ISCHR(st.st_mode):
                out[rel] = f"<char {os.major(st.st_rdev)},{os.minor(st.st_rdev)}>"
            else:
                out[rel] = "<other>"
    return out


def is_whiteout(path: Path) -> bool:
    """An overlay whiteout: a character device 0/0 (hardlinked to others by newer kernels)."""
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@contextlib.contextmanager
def mounted(snapshotter: Snapshotter, key: str, where: Path) -> Iterator[Path]:
    """``key`` mounted on a fresh directory under ``where`` for the ``with`` body."""
    target = where / f"mnt-{next(_counter)}"
    target.mkdir()
    mount_all(snapshotter.mounts(key), target)
    try:
        yield target
    finally:
        unmount(target)


def store_state(root: Path) -> tuple[list[str], list[str], list[tuple[object, ...]]]:
    """What a failed operation must leave as it found: snapshot dirs, short links, rows."""
    snaps = sorted(p for p in os.listdir(root / "snapshots") if not p.startswith("."))
    links = sorted(os.listdir(root / "l")) if (root / "l").exists() else []
    conn = sqlite3.connect(root / "strata.db")
    try:
        rows = sorted(conn.execute("SELECT * FROM snapshots").fetchall(), key=repr)
    finally:
        conn.close()
    return snaps, links, rows


def add_trigger(root: Path, event: str) -> None:
    """Make every ``event`` (INSERT, UPDATE, DELETE) on snapshots fail inside SQLite."""
    conn = sqlite3.connect(root / "strata.db")
    try:
        conn.execute(
            f"CREATE TRIGGER fail_{event.lower()} BEFORE {event} ON snapshots"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        conn.commit()
    finally:
        conn.close()


def drop_trigger(root: Path, event: str) -> None:
    conn = sqlite3.connect(root / "strata.db")
    try:
        conn.execute(f"DROP TRIGGER fail_{event.lower()}")
        conn.commit()
    finally:
        conn.close()


def write(files_: dict[str, str]) -> Callable[[Path], None]:
    """A change that writes ``files_`` (path -> text) below its target."""

    def change(target: Path) -> None:
        for rel, text in files_.items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_text(text)

    return change
