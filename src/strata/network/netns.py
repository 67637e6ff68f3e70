"""Network namespaces made to outlive any process: a bind mount of the namespace on a file.

A container's namespace is made before its process (the CNI plugins configure it, then runc
joins it by path) and must survive the process only until its teardown. It is made in a
short-lived thread: ``unshare(CLONE_NEWNET)`` moves only the calling thread, so the thread
binds its new namespace onto the file and ends, and no other thread ever leaves the host's
namespace.

The directory holding the files is a plain directory, not the shared bind mount of itself that
``ip netns`` makes: a mount namespace copied from the host's holds the namespace files' mounts
(and so the namespaces) until it goes, but the OCI runtimes drop their copy of the host's mounts
at ``pivot_root``, and each teardown deletes the veth itself (CNI DEL) rather than waiting for the
namespace to be freed. (A self bind mount that is re-made on every start stacks mounts: it must
be made once per host, which needs a mountinfo parse per start.)
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MNT_DETACH = 0x2
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str, target: str, flags: int) -> None:
    _check(_libc.mount(source.encode(), target.encode(), None, flags, None), f"mount {target}")


def _is_mount(path: Path) -> bool:
    """Whether ``path`` (a file or a directory) is a mount point: Path.is_mount is for
    directories only before Python 3.12."""
    try:
        return path.stat().st_dev != path.parent.stat().st_dev or path.is_mount()
    except OSError:
        return False


def create(path: Path) -> None:
    """A new network namespace, held by a bind mount on ``path`` (made here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    failure: list[BaseException] = []

    def make() -> None:
        try:
            _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            _loopback_up()  # a socket made now is in the new namespace
            _mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), _MS_BIND)
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=make, name="netns")
    thread.start()
    thread.join()
    if failure:
        with contextlib.suppress(OSError):
            path.unlink()
        raise failure[0]


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        (_, flags) = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def exists(path: Path) -> bool:
    """Whether ``path`` still holds a namespace."""
    return _is_mount(path)


def remove(path: Path) -> None:
    """Let the namespace go (the kernel frees it, and its veth ends, with its last user)."""
    if _is_mount(path):
        _check(_libc.umount2(str(path).encode(), _MNT_DETACH), f"umount {path}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
