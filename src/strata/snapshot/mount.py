"""Performing `Mount` lists with mount(2) and umount2(2) via ctypes: no mount(8) on the hot path.

Overlay options name their directories by absolute paths so that a `Mount` means the same thing
to any reader (runc, mount(8), a log). mount(2) takes at most one page of options, though, and
absolute paths of 128 lower layers do not fit; so `mount_all` changes into the directory all those
paths share (the store root, whose ``l/`` holds 8-character links to each layer) and passes
relative ones: ``lowerdir=l/ABCD1234:l/EFGH5678,...``. The working directory is process-wide, so
that change is made under a lock and undone before `mount_all` returns, even when mount(2) fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from strata.errors import InvalidArgument, StrataError
from strata.snapshot.model import Mount

__all__ = ["PAGE_SIZE", "mount_all", "mount_points", "option_data", "shorten", "unmount"]

PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")

MS_RDONLY: Final = 0x1
MS_NOSUID: Final = 0x2
MS_NODEV: Final = 0x4
MS_NOEXEC: Final = 0x8
MS_SYNCHRONOUS: Final = 0x10
MS_REMOUNT: Final = 0x20
MS_DIRSYNC: Final = 0x80
MS_NOATIME: Final = 0x400
MS_NODIRATIME: Final = 0x800
MS_BIND: Final = 0x1000
MS_REC: Final = 0x4000
MS_UNBINDABLE: Final = 1 << 17
MS_PRIVATE: Final = 1 << 18
MS_SLAVE: Final = 1 << 19
MS_SHARED: Final = 1 << 20
MS_RELATIME: Final = 1 << 21
MS_STRICTATIME: Final = 1 << 24
MNT_DETACH: Final = 0x2

# Flag words of mount(8): word -> (clears the flag instead of setting it, flag).
_FLAGS: Final[dict[str, tuple[bool, int]]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}
_PROPAGATION: Final[dict[str, int]] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
_PATH_OPTIONS: Final = ("lowerdir", "upperdir", "workdir")
_ESCAPE: Final = re.compile(rb"\\([0-7]{3})")

_cwd_lock = threading.Lock()
_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        # The interpreter is linked against libc, so dlopen(NULL) finds mount(2) without the
        # ldconfig fork that ctypes.util.find_library costs.
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        lib.mount.restype = ctypes.c_int
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.umount2.restype = ctypes.c_int
        _libc = lib
    return _libc


def _enc(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _sys_mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    """mount(2); raises OSError with the errno (caught and reworded by the callers)."""
    if _lib().mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data or None)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _sys_umount(target: str, flags: int) -> None:
    if _lib().umount2(os.fsencode(target), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _parse(mount: Mount) -> tuple[int, int, list[str]]:
    """Split options into mount flags, propagation flags and filesystem data."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in mount.options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        else:
            data.append(option)
    return flags, propagation, data


def shorten(mount: Mount) -> tuple[Mount, str | None]:
    """Rewrite an overlay mount's absolute directories relative to the directory they share.

    Returns the rewritten mount and that directory (to change into before mount(2)), or the
    mount unchanged and None when there is nothing to gain (not overlay, relative or unrelated
    paths).
    """
    if mount.type != "overlay":
        return mount, None
    paths: list[str] = []
    for option in mount.options:
        name, sep, value = option.partition("=")
        if sep and name in _PATH_OPTIONS:
            paths.extend(value.split(":") if name == "lowerdir" else [value])
    if not paths or not all(os.path.isabs(p) for p in paths):
        return mount, None
    base = os.path.commonpath(paths)
    if base == "/":
        return mount, None
    options: list[str] = []
    for option in mount.options:
        name, sep, value = option.partition("=")
        if sep and name in _PATH_OPTIONS:
            parts = value.split(":") if name == "lowerdir" else [value]
            options.append(f"{name}=" + ":".join(os.path.relpath(p, base) for p in parts))
        else:
            options.append(option)
    return Mount(mount.type, mount.source, tuple(options)), base


def option_data(mount: Mount) -> str:
    """The data string mount(2) receives for ``mount`` (after `shorten`)."""
    return ",".join(_parse(shorten(mount)[0])[2])


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    """Run the body in ``path`` and come back, whatever happens (even if cwd was renamed)."""
    with _cwd_lock:
        saved = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(path)
            yield
        finally:
            os.fchdir(saved)
            os.close(saved)


def _mount_one(mount: Mount, target: str) -> None:
    flags, propagation, _ = _parse(mount)
    if mount.type == "bind" or flags & MS_BIND:
        source = os.path.abspath(mount.source)
        _sys_mount(source, target, None, MS_BIND | (flags & MS_REC), "")
        rest = flags & ~(MS_BIND | MS_REC)
        if rest:
            # A bind mount ignores every flag but MS_REC; ro & co need a remount of the bind.
            try:
                _sys_mount(None, target, None, MS_REMOUNT | MS_BIND | rest, "")
            except OSError:
                _sys_umount(target, MNT_DETACH)
                raise
    else:
        short, base = shorten(mount)
        data = ",".join(_parse(short)[2])
        if len(os.fsencode(data)) >= PAGE_SIZE:
            raise InvalidArgument(
                f"cannot mount {mount.type} on {target}: options take {len(data)} bytes,"
                f" more than mount(2) accepts ({PAGE_SIZE - 1})"
            )
        if base is None:
            _sys_mount(mount.source, target, mount.type, flags, data)
        else:
            with _working_directory(base):
                _sys_mount(mount.source, target, mount.type, flags, data)
    if propagation:
        try:
            _sys_mount(None, target, None, propagation, "")
        except OSError:
            _sys_umount(target, MNT_DETACH)
            raise


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount each of ``mounts`` on ``target``, in order; all or nothing.

    Raises a one-line `StrataError` naming the target and the system's reason.
    """
    where = os.path.abspath(target)
    done = 0
    try:
        for mount in mounts:
            try:
                _mount_one(mount, where)
            except OSError as err:
                raise StrataError(
                    f"cannot mount {mount.type} on {where}: {err.strerror or err}"
                ) from None
            done += 1
    except BaseException:
        for _ in range(done):
            with contextlib.suppress(OSError):
                _sys_umount(where, MNT_DETACH)
        raise


def mount_points(under: Path) -> list[Path]:
    """Mount points at or below ``under``, in the order of /proc/self/mountinfo (oldest first)."""
    top = os.path.realpath(under)
    prefix = top.rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", "rb") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise StrataError(f"cannot read /proc/self/mountinfo: {err.strerror or err}") from None
    found: list[Path] = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4]))
        if point == top or point.startswith(prefix):
            found.append(Path(point))
    return found


def unmount(target: Path, *, detach: bool = False) -> None:
    """Unmount everything mounted at or below ``target``, newest and deepest first.

    Nothing mounted is not an error. ``detach`` uses MNT_DETACH (lazy) for busy mounts.
    """
    points = list(reversed(mount_points(target)))
    points.sort(key=lambda p: len(p.parts), reverse=True)
    for point in points:
        try:
            _sys_umount(str(point), MNT_DETACH if detach else 0)
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):
                continue  # gone already, with its parent or by another hand
            raise StrataError(f"cannot unmount {point}: {err.strerror or err}") from None
