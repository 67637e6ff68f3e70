"""Who owns a running container: an ``flock`` on ``containers/<id>/owner.lock``.

The process that waits for a container's exit (the ``run`` command itself, or the monitor of a
detached container) holds this lock for as long as it lives. The kernel drops the lock when that
process dies, however it dies, so "is anyone still looking after this container?" has an exact
answer from any other process: try the lock. No pid files, no pid reuse to guard against.

The monitor is forked from the command that starts it and inherits the *same* open file
description, so the lock passes from one to the other without a moment in which nobody holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from strata.errors import StoreError

LOCK_NAME = "owner.lock"
_POLL = 0.02


class OwnerLock:
    """A held owner lock (exclusive). ``fd`` is inheritable by a forked monitor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def try_acquire(cls, directory: Path) -> OwnerLock | None:
        """The lock if nobody holds it now, else None.

        A container whose directory is gone has nothing left to own: an empty lock then.
        """
        fd = _open(directory)
        if fd is None:
            return cls(-1)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise StoreError(f"{directory / LOCK_NAME}: cannot lock: {exc.strerror}") from None
        return cls(fd)

    @classmethod
    def acquire(cls, directory: Path, timeout: float) -> OwnerLock | None:
        """The lock, waiting up to ``timeout`` seconds for its holder to let go; else None."""
        deadline = time.monotonic() + timeout
        while True:
            lock = cls.try_acquire(directory)
            if lock is not None or time.monotonic() >= deadline:
                return lock
            time.sleep(_POLL)

    def release(self) -> None:
        """Let go (idempotent). Closing the descriptor drops the lock unless a fork shares it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OwnerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def owner_alive(directory: Path) -> bool:
    """Whether a process holds the container's owner lock right now.

    Probes with a shared lock, so that two lookers (two ``ps``) never see each other as owners.
    """
    fd = _open(directory)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise StoreError(f"{directory / LOCK_NAME}: cannot lock: {exc.strerror}") from None
    finally:
        os.close(fd)
    return False


def wait_for_owner(directory: Path) -> None:
    """Block until nobody holds the owner lock (a shared lock, so waiters do not queue)."""
    fd = _open(directory)
    if fd is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def _open(directory: Path) -> int | None:
    """The lock file's descriptor (created on first use), or None if the container is gone."""
    try:
        return os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{directory / LOCK_NAME}: cannot open: {exc.strerror}") from None
