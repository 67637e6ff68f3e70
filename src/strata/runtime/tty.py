"""Terminals for ``run -t``: the console socket, raw mode, window size and the copy loop.

The container's pty is created inside the container (so ``tty`` there names ``/dev/pts/N`` of its
own devpts) and its master is handed to us over a unix socket with SCM_RIGHTS: runc's
``--console-socket`` protocol, which the chroot backend speaks too. We then put our own terminal
in raw mode, so every key (Ctrl-C, Ctrl-D, ...) reaches the container's line discipline, and copy
bytes both ways until the container exits. Window size changes (SIGWINCH) are applied to the
master, which signals the container's foreground process group.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import threading
import tty
from collections.abc import Iterator
from types import FrameType

from strata.errors import ContainerError
from strata.runtime.backend import ProcessIO

_WINSIZE = "HHHH"
_CHUNK = 1 << 16


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None if it is not a terminal."""
    try:
        raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, columns, _, _ = struct.unpack(_WINSIZE, raw)
    return rows, columns


def set_terminal_size(fd: int, rows: int, columns: int) -> None:
    """Set the window size of the pty on ``fd`` (the kernel then signals SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack(_WINSIZE, rows, columns, 0, 0))


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[None]:
    """Put the terminal on ``fd`` in raw mode; always restore it. A no-op for a non-terminal."""
    if fd is None or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error, OSError):  # a hung-up terminal needs nothing
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def receive_fd(sock: socket.socket) -> int:
    """Receive one file descriptor sent with SCM_RIGHTS on a connected socket."""
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise ContainerError("console socket: no file descriptor received")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def send_fd(sock: socket.socket, fd: int) -> None:
    """Send one file descriptor with SCM_RIGHTS (the payload names it, as runc's does)."""
    socket.send_fds(sock, [b"/dev/ptmx"], [fd])


class ConsoleSocket:
    """A listening console socket for ``runc --console-socket``, in the abstract namespace.

    Nothing touches the filesystem, so nothing is left behind; a connection from a process of
    another user is refused (SO_PEERCRED), since anyone on the host can connect to the name.
    """

    def __init__(self) -> None:
        self.address = f"@strata-console-{os.urandom(12).hex()}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind("\0" + self.address[1:])
        self._sock.listen(4)

    def receive(self, abort_fd: int) -> int:
        """The pty master sent by the runtime; ContainerError if ``abort_fd`` (a pidfd of the
        runtime process) becomes readable first, i.e. the runtime exited without sending."""
        creds = struct.calcsize("3i")
        while True:
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            poller.register(abort_fd, select.POLLIN)
            ready = {fd for fd, _ in poller.poll()}
            if self._sock.fileno() not in ready:
                raise ContainerError("the runtime exited before sending the console")
            conn, _ = self._sock.accept()
            with conn:
                _, uid, _ = struct.unpack(
                    "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds)
                )
                if uid == os.geteuid():
                    return receive_fd(conn)

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll()
            continue
        view = view[written:]


class _Session:
    """The state of one attach: what is open, what waits to be written."""

    def __init__(self, master: int, stdin: int | None, stdout: int) -> None:
        self.master, self.stdin, self.stdout = master, stdin, stdout
        self.pending = bytearray()  # from stdin, not yet accepted by the master
        self.reading_stdin = stdin is not None
        self.reading_master = True
        self.stdout_open = True
        self.stdin_is_tty = stdin is not None and os.isatty(stdin)
        self.hung_up = False  # our terminal went away

    def poll_set(self, until: int, wake: int) -> select.poll:
        poller = select.poll()
        poller.register(until, select.POLLIN)
        poller.register(wake, select.POLLIN)
        if self.reading_stdin and self.stdin is not None and len(self.pending) < _CHUNK:
            poller.register(self.stdin, select.POLLIN)
        events = (select.POLLIN if self.reading_master else 0) | (
            select.POLLOUT if self.pending else 0
        )
        if events:
            poller.register(self.master, events)
        return poller

    def output(self, chunk: bytes) -> None:
        if self.stdout_open:
            try:
                _write_all(self.stdout, chunk)
            except OSError:  # our terminal or pipe is gone: the output has nowhere to go
                self.stdout_open = False

    def from_stdin(self) -> None:
        assert self.stdin is not None
        try:
            chunk = os.read(self.stdin, _CHUNK)
        except OSError:
            chunk = b""
        if chunk:
            self.pending += chunk
            return
        self.reading_stdin = False
        # End of input on a terminal is a hangup (the window closed): hang up the container's
        # terminal too. End of a pipe or file only means there is nothing more to send.
        self.hung_up = self.stdin_is_tty

    def from_master(self, mask: int) -> None:
        if mask & select.POLLIN:
            try:
                chunk = os.read(self.master, _CHUNK)
            except BlockingIOError:
                chunk = b""
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                self.reading_master = False  # every slave closed: the end is near
                return
            if chunk:
                self.output(chunk)
        elif mask & (select.POLLHUP | select.POLLERR):
            self.reading_master = False
            self.pending.clear()
        if self.pending and mask & select.POLLOUT:
            try:
                written = os.write(self.master, self.pending)
            except BlockingIOError:
                written = 0
            except OSError:
                self.pending.clear()
                self.reading_stdin = False
                written = 0
            del self.pending[:written]

    def drain(self) -> None:
        while self.reading_master:
            try:
                chunk = os.read(self.master, _CHUNK)
            except OSError:
                return
            if not chunk:
                return
            self.output(chunk)


def attach(master: int, stdin: int | None, stdout: int, *, until: int) -> None:
    """Copy ``stdin`` to the pty ``master`` and the master to ``stdout`` until ``until`` (a pidfd
    of the process whose end ends the session) is readable; then copy what is left.

    ``stdin`` (None: nothing to send) is put in raw mode if it is a terminal, and its window
    size is given to the master now and on every SIGWINCH. Our own descriptors stay blocking:
    they may be shared with the shell that started us. Returns early if our terminal hangs up:
    the caller then closes the master, which hangs up the container's terminal in turn.
    """
    os.set_blocking(master, False)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    size_from = stdin if stdin is not None and os.isatty(stdin) else None
    if size_from is None and os.isatty(stdout):
        size_from = stdout

    def resize() -> None:
        if size_from is not None and (size := terminal_size(size_from)) is not None:
            with contextlib.suppress(OSError):
                set_terminal_size(master, *size)

    def on_winch(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"w")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGWINCH, on_winch) if main else None
    session = _Session(master, stdin, stdout)
    try:
        resize()
        with raw_mode(stdin):
            while not session.hung_up:
                events = dict(session.poll_set(until, wake_r).poll())
                if until in events:
                    session.drain()
                    break
                if wake_r in events:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 64)
                    resize()
                if stdin is not None and stdin in events:
                    session.from_stdin()
                if master in events:
                    session.from_master(events[master])
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def attach_until_exit(master: int, pid: int, stdio: ProcessIO) -> None:
    """:func:`attach` the caller's stdio to ``master`` until process ``pid`` (a child) exits or
    our terminal hangs up; always closes ``master``. The caller then reaps ``pid``."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        os.close(master)
        return
    try:
        attach(master, stdio.stdin, stdio.stdout, until=pidfd)
    finally:
        os.close(pidfd)
        os.close(master)
