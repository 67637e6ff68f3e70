"""Directory chores shared by the snapshotters: staged dirs under a lock, removal, disk usage.

A directory being built (``new-*``) or being deleted (``rm-*``) is held with flock(2) by the
process working on it, so `DirSnapshotter.cleanup` can tell one left by a crash (lock free) from
one in use (lock held) without any bookkeeping that a crash could leave inconsistent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from strata.snapshot.model import Usage

__all__ = ["disk_usage", "lock_dir", "make_locked_dir", "remove_tree", "unlock"]

_ATTEMPTS = 10  # new directories to try, each taken by a cleanup before we locked it


def make_locked_dir(parent: Path, prefix: str) -> tuple[Path, int]:
    """A new private directory under ``parent`` and an fd holding its exclusive flock.

    Between the directory's making and its lock it looks like a dead command's: a cleanup
    running then may take it (lock it, remove it). Ours is the directory still under its name
    once we hold the lock; if it went, another is made (the race found by a stress test).
    """
    for _ in range(_ATTEMPTS):
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # taken already
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            raise
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = os.fstat(fd)
        try:
            now = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return path, fd
        os.close(fd)
    raise OSError(errno.EAGAIN, f"{parent}: each new directory was taken by a cleanup")


def lock_dir(path: Path, *, wait: bool = True) -> int | None:
    """An fd holding ``path``'s exclusive flock; None if it is gone or (``wait=False``) held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock from `make_locked_dir` or `lock_dir`."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _ignore_missing(
    func: object, path: str, info: tuple[type[BaseException], BaseException, object]
) -> None:
    exc = info[1]
    if not (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
        raise exc


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything below it (a file or link too); gone already is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    shutil.rmtree(path, onerror=_ignore_missing)


def disk_usage(path: Path) -> Usage:
    """Bytes allocated (st_blocks) and inodes below ``path``, each hardlinked inode once."""
    seen: set[tuple[int, int]] = set()
    size = 0
    pending = [os.fspath(path)]
    while pending:
        current = pending.pop()
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident not in seen:
            seen.add(ident)
            size += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(current) as entries:
                pending.extend(entry.path for entry in entries)
    return Usage(size=size, inodes=len(seen))
