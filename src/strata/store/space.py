"""A full disk: the reserve that lets strata free space on it, and the one-line errors it gives.

What we chose, and why. A command that frees space (``rmi``, ``image prune``, releasing a lease,
``system check --repair``) must first record in ``strata.db`` that the blobs are no longer used,
and only then delete them: deleting the files first would leave, after a crash or a failed commit,
rows that name blobs that are gone (an image listed but unusable). But on a full disk SQLite cannot
write that transaction: in WAL mode every commit appends pages to ``strata.db-wal``, and even a
read needs ``strata.db-shm`` (32 KiB) once the last connection has deleted it. SQLite settings do
not help: a rollback journal needs space too, and ``locking_mode=EXCLUSIVE`` (no shm) would make
every command wait for every other.

So the store keeps a small reserve: ``strata.db-reserve``, a file of `RESERVE_SIZE` bytes whose
blocks are really allocated (fallocate), next to the database. When SQLite reports that the disk
is full, the reserve gives back `STEP` bytes at a time (the file is shortened, which frees its
blocks at once) and the open is tried again; and a write transaction marked ``reclaim`` (it deletes
rows so that space can be freed, or records that something ended) first releases the reserve until
`RECLAIM_ROOM` bytes are free, because SQLite rolls back a COMMIT that finds no space, so it cannot
simply be retried. Any open (reads too) may take from the reserve, but a transaction only when it
is marked ``reclaim``, so that a command that would add data fails at once instead of eating the
reserve that ``prune`` needs. Every open of the database grows the reserve back, in steps, while
there is space: the space a read borrowed comes back when its shm file goes, and what ``prune``
borrowed comes back from the blobs it deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Final

from strata.errors import NoSpace

__all__ = [
    "NEARLY_FULL",
    "RECLAIM_ROOM",
    "RESERVE_SIZE",
    "STEP",
    "Reserve",
    "is_no_space",
    "megabytes",
    "nearly_full",
    "no_space",
]

RESERVE_SIZE: Final = 4 << 20
STEP: Final = 256 << 10
NEARLY_FULL: Final = 1 << 20
RECLAIM_ROOM: Final = 2 << 20
_MODE: Final = 0o600
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(err: BaseException) -> bool:
    """True for an OSError that says the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and err.errno in _NO_SPACE


def megabytes(size: int) -> str:
    """``size`` bytes in MB (10^6, as Docker prints sizes), rounded up so that 1 byte is 1 MB."""
    return f"{max(1, -(-size // 1_000_000))} MB"


def no_space(
    what: str, err: OSError | None = None, *, needed: int | None = None, written: int = 0
) -> NoSpace:
    """The one-line error for a write (``what``: "writing blob sha256:… of IMAGE") that found no
    space; ``needed`` is how many more bytes it would have taken, where known, and ``written``
    how many it had written."""
    reason = "disk quota exceeded" if err is not None and err.errno == errno.EDQUOT else None
    text = f"{what}: {reason or 'no space left on device'}"
    if needed is not None and needed > 0:
        text += f" (needs {megabytes(needed)} more)"
    return NoSpace(text, written=written)


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return NEARLY_FULL  # unknown: assume there is room, as before there was a reserve


def nearly_full(path: Path) -> bool:
    """True if the filesystem holding ``path`` has less than `NEARLY_FULL` bytes free."""
    return _free(path) < NEARLY_FULL


class Reserve:
    """The reserve file at ``path`` (see the module's docstring). Never raises: it is a cushion,
    and a store where it cannot be made (read-only, another owner) works as one without it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        """Bytes held now (0 if there is no reserve file)."""
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def replenish(self) -> None:
        """Grow the reserve back towards `RESERVE_SIZE`, a `STEP` at a time, while there is space.

        Concurrent commands may grow and shrink it at once; each only extends or shortens the one
        file, so the worst outcome is a reserve a step larger or smaller than meant.
        """
        if self.size() >= RESERVE_SIZE:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, _MODE)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            while size < RESERVE_SIZE:
                step = min(STEP, RESERVE_SIZE - size)
                os.posix_fallocate(fd, size, step)
                size += step
        except OSError:
            pass  # no more space: the reserve stays as large as it got
        finally:
            os.close(fd)

    def make_room(self, where: Path) -> None:
        """Release the reserve, a `STEP` at a time, until the filesystem of ``where`` has
        `RECLAIM_ROOM` bytes free or the reserve is spent (a reclaiming transaction's room)."""
        while _free(where) < RECLAIM_ROOM and self.release():
            pass

    def release(self) -> int:
        """Give `STEP` bytes of the reserve back to the filesystem; return how many were freed."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return 0
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return 0
            # Shortening a file needs no new block on any filesystem strata runs on.
            os.ftruncate(fd, max(0, size - STEP))
            return size - max(0, size - STEP)
        except OSError:
            return 0
        finally:
            os.close(fd)
