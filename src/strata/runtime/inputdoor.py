"""Where a later ``attach`` gets a running container's input: the monitor's input door.

The command that starts a container may give it its stdin; anyone who attaches later needs a
way in too (Docker's daemon multiplexes its attach streams). The monitor keeps the container's
output (it writes the log, which an attached client follows), so all a later client needs is
somewhere to write: the monitor hands it a duplicate of the container's input, the terminal's
master side (``-t``) or the write end of the stdin pipe it holds open (``-i``), over a Unix
socket with SCM_RIGHTS. What the client then writes reaches the container as typed.

The socket is in the abstract namespace, named by the container ID: a bundle path under a deep
store root can pass the 108 bytes a socket path may have. An abstract socket has no file
permissions, so the monitor answers only a peer of its own user (``SO_PEERCRED``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading

_MESSAGE = b"I"


def _address(container_id: str) -> str:
    return f"\0strata/input/{container_id}"


class InputDoor:
    """The monitor's side: hands ``fd`` (not closed here) to each client that asks, until
    `close`."""

    def __init__(self, container_id: str, fd: int) -> None:
        self._fd = fd
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.bind(_address(container_id))
        except OSError:  # a previous run's door not yet closed: no later attach gets input
            self._sock.close()
            self._thread: threading.Thread | None = None
            return
        self._sock.listen(4)
        self._sock.settimeout(0.2)  # how soon `close` is noticed
        self._thread = threading.Thread(target=self._serve, name="input-door", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                if _peer_uid(conn) == os.getuid():
                    socket.send_fds(conn, [_MESSAGE], [self._fd])

    def close(self) -> None:
        """Stop answering; the caller then closes the fd it handed out."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._sock.close()


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def open_input(container_id: str) -> int | None:
    """The client's side: a descriptor that writes to the running container's input, or None
    when it takes none (no ``-i`` or ``-t``, its stdin given to the command that started it,
    or its monitor from before the door)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(5.0)
        try:
            sock.connect(_address(container_id))
            message, fds, _, _ = socket.recv_fds(sock, len(_MESSAGE), 1)
        except OSError:
            return None
    if message != _MESSAGE or not fds:
        for fd in fds:
            os.close(fd)
        return None
    return fds[0]
