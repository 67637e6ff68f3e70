"""Containers that die with the process that made them: a build's RUN steps.

Docker's daemon removes a build's intermediate container when the client goes away, however it
goes. strata has no daemon: a ``strata build`` killed with SIGKILL runs no ``finally``, and its
RUN container (whose init runc orphaned to us) would run on, mounted and recorded, for ever.

So the first tied container forks a *guard*: a process in its own session that holds a pidfd of
the build and the read end of a pipe whose write end only the build holds (close-on-exec, so
neither runc nor a container gets it). Each tied container's ID goes down the pipe as it is
created. The pidfd turns readable when the build dies, however it dies (not the pipe's end of
file: a process the build forked without exec, the chroot backend's intermediate, shares the
write end). A normal exit writes ``done`` first (``atexit``: the containers were removed by then,
in the build's own ``finally``) and the guard just leaves; without ``done``, the guard becomes
``python -m strata.runtime.orphans``, which removes every named container still recorded: kill it
through its runtime, then with the owner lock (the kernel dropped the build's) unmount it and
delete its snapshot, files and record, as ``rm -f`` would.

The forked guard runs no code of the build: it closes every descriptor it inherited (the
build's output pipes, SQLite, the owner locks) before waiting, and execs a fresh interpreter for
the cleanup, so locks other threads held at the fork cannot bite. If the guard is killed too,
the container's record says it is tied, and the next command that looks at it removes it
(:meth:`strata.runtime.records.ContainerRecords.refresh`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

TIED_LABEL = "strata.tied-to-owner"  # on a container that is removed once its owner is gone
_DONE = b"done\n"

_lock = threading.Lock()
_pipe: int = -1
_pid: int = 0


def tie(root: Path, container_id: str) -> None:
    """Remove ``container_id`` (of the store at ``root``) if this process dies without exiting.

    The first call forks the guard; later ones only name another container to it.
    """
    global _pipe, _pid
    line = f"+{os.fsencode(root).hex()} {container_id}\n".encode()
    with _lock:
        if _pipe < 0 or _pid != os.getpid():
            _pipe = _start_guard()
            _pid = os.getpid()
            atexit.register(_goodbye)
        os.write(_pipe, line)  # a line is far under PIPE_BUF: written whole


def _start_guard() -> int:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked guard
        _watch(read_fd, parent)
    os.close(read_fd)
    return write_fd


def _goodbye() -> None:
    """A normal exit: the guard has nothing to clean (see the module docstring)."""
    global _pipe
    if _pipe >= 0 and _pid == os.getpid():
        with contextlib.suppress(OSError):
            os.write(_pipe, _DONE)
        os.close(_pipe)
        _pipe = -1


def _watch(read_fd: int, parent: int) -> NoReturn:  # pragma: no cover - the forked guard
    try:
        os.setsid()  # no terminal's signals, no process group a kill of the build's group hits
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # Whoever waits for the build's output (or lock) must not wait for us.
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in (0, 1, 2, read_fd):
                with contextlib.suppress(OSError):
                    os.close(int(name))
        tied = _listen(read_fd, parent)
        if tied:
            os.execv(sys.executable, [sys.executable, "-m", "strata.runtime.orphans", *tied])
    finally:
        os._exit(0)


def _listen(read_fd: int, parent: int) -> list[str]:  # pragma: no cover - the forked guard
    """The containers to remove once ``parent`` has died; none if it said ``done``.

    The parent's death is seen through a pidfd, not as the pipe's end of file: a process the
    build forked without exec (the chroot backend's intermediate) keeps a copy of the write end.
    """
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        pidfd = -1
    if os.getppid() != parent:  # it died before the pidfd was open: the pidfd may not be it
        if pidfd >= 0:
            os.close(pidfd)
        pidfd = -1
    os.set_blocking(read_fd, False)
    data = bytearray()
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    dead = pidfd < 0
    while True:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read_fd, 65536):
                data += chunk
            dead = True  # end of file: every writer is gone
        lines = bytes(data).splitlines()
        if _DONE.strip() in lines:
            return []
        if dead:
            return [line[1:].decode() for line in lines if line.startswith(b"+")]
        for fd, _ in poller.poll():
            if fd == pidfd:
                dead = True  # one more read picks up what it wrote last
