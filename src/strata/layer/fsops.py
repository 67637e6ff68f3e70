"""Filesystem steps that never follow a symlink: directory lookup by fds, removal, attributes.

Everything here works relative to an open directory fd. A path inside the target is resolved
one component at a time with ``openat(O_PATH|O_NOFOLLOW|O_DIRECTORY)``, so a symlink (planted
by a layer or present below) is never traversed: it is reported, or replaced, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from typing import Final

from strata.layer.entry import display_name

PATH_FLAGS: Final = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
LIST_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# More directory fds than this are never kept open at once, however deep a layer nests.
MAX_OPEN: Final = 64
NO_XATTRS: Final = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})

LOOKUP: Final = 0  # resolve existing directories only
CREATE: Final = 1  # create missing directories; a non-directory in the way ends the lookup
REPLACE: Final = 2  # create missing directories and replace non-directories in the way

MakeDir = Callable[[int, bytes, list[bytes], bool], None]
"""``make_dir(parent_fd, name, parts, replace)``: put a directory at ``name`` (``parts`` is its
path from the root); ``replace`` says a non-directory is in the way and must go first."""


def fd_path(fd: int, name: bytes = b"") -> bytes:
    """A path naming ``name`` in the open directory ``fd`` (or ``fd`` itself), for the calls
    that take no dir_fd. Only the final component may be a symlink, and callers pass
    follow_symlinks=False for it."""
    return b"/proc/self/fd/%d/%s" % (fd, name) if name else b"/proc/self/fd/%d" % fd


class DirCache:
    """Open fds of the chain of directories last resolved, so sorted tars resolve for free.

    ``fds[i]`` is the directory ``parts[:i]`` (``fds[0]`` the root, owned by the caller); an
    fd of -1 was closed to stay under `MAX_OPEN` and is reopened on demand. An fd returned by
    `get` is valid until the next `get` or `forget`.
    """

    def __init__(self, root_fd: int, make_dir: MakeDir) -> None:
        self._make_dir = make_dir
        self.parts: list[bytes] = []
        self.fds: list[int] = [root_fd]
        self._open = 0

    def close(self) -> None:
        """Close every fd but the root's."""
        self._truncate(0)

    def _truncate(self, depth: int) -> None:
        fds = self.fds
        while len(fds) > depth + 1:
            fd = fds.pop()
            if fd >= 0:
                os.close(fd)
                self._open -= 1
        del self.parts[depth:]

    def forget(self, parts: list[bytes]) -> None:
        """Drop cached fds of ``parts`` and below (the directory is about to be removed)."""
        depth = len(parts)
        if len(self.parts) >= depth and self.parts[:depth] == parts:
            self._truncate(depth - 1)

    def get(self, parts: list[bytes], how: int = REPLACE) -> int | None:
        """The directory ``parts`` (relative to the root), resolved without following symlinks;
        None if it is missing or a non-directory and ``how`` does not allow making it."""
        cached = self.parts
        if parts == cached:
            fd = self.fds[-1]
            if fd >= 0:
                return fd
        depth = 0
        limit = min(len(parts), len(cached))
        while depth < limit and parts[depth] == cached[depth]:
            depth += 1
        self._truncate(depth)
        fds = self.fds
        if fds[depth] < 0:
            self._reopen(depth)
        cur = fds[depth]
        for i in range(depth, len(parts)):
            name = parts[i]
            _check_component(name)
            try:
                fd = os.open(name, PATH_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                if how == LOOKUP:
                    return None
                self._make_dir(cur, name, parts[: i + 1], False)
                fd = os.open(name, PATH_FLAGS, dir_fd=cur)
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                if how != REPLACE:
                    return None
                self._make_dir(cur, name, parts[: i + 1], True)
                fd = os.open(name, PATH_FLAGS, dir_fd=cur)
            self.parts.append(name)
            fds.append(fd)
            self._open += 1
            if self._open > MAX_OPEN:
                self._shed()
            cur = fd
        return cur

    def _shed(self) -> None:
        # Close the shallowest open fd below the root; the deepest stay, as sorted tars need.
        for i in range(1, len(self.fds)):
            if self.fds[i] >= 0:
                os.close(self.fds[i])
                self.fds[i] = -1
                self._open -= 1
                return

    def _reopen(self, depth: int) -> None:
        top = depth
        while self.fds[top] < 0:
            top -= 1
        for i in range(top + 1, depth + 1):
            self.fds[i] = os.open(self.parts[i - 1], PATH_FLAGS, dir_fd=self.fds[i - 1])
            self._open += 1


def _check_component(name: bytes) -> None:
    # Callers split names already; this keeps a slip from ever climbing with "..".
    if name in (b"", b".", b"..") or b"/" in name:
        raise OSError(errno.EINVAL, "unsafe path component")


def lookup_dir(root_fd: int, parts: list[bytes]) -> int | None:
    """An fd (the caller closes it) of directory ``parts``, or None if it is missing or any
    component is not a directory (symlinks included). ``parts == []`` dups the root."""
    cur = os.open(b".", PATH_FLAGS, dir_fd=root_fd)
    for name in parts:
        try:
            _check_component(name)
            fd = os.open(name, PATH_FLAGS, dir_fd=cur)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                os.close(cur)
                return None
            os.close(cur)
            raise
        os.close(cur)
        cur = fd
    return cur


def list_names(dir_fd: int) -> list[bytes]:
    """The names in directory ``dir_fd`` (an O_PATH fd is fine), unsorted."""
    fd = os.open(b".", LIST_FLAGS, dir_fd=dir_fd)
    try:
        return [os.fsencode(name) for name in os.listdir(fd)]
    finally:
        os.close(fd)


def remove(dir_fd: int, name: bytes) -> bool:
    """Remove ``name`` from ``dir_fd``, a whole tree if it is a directory; False if absent."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        pass
    remove_tree(dir_fd, name)
    return True


def remove_tree(dir_fd: int, name: bytes) -> None:
    """Remove directory ``name`` and everything below it, without following symlinks.

    Subdirectories are first moved up beside ``name`` and removed in turn, so depth never
    costs open fds or recursion: a hostile layer may nest thousands of levels.
    """
    pending = [name]
    while pending:
        current = pending[-1]
        before = len(pending)
        fd = os.open(current, LIST_FLAGS, dir_fd=dir_fd)
        try:
            for child in os.listdir(fd):
                raw = os.fsencode(child)
                try:
                    os.unlink(raw, dir_fd=fd)
                except IsADirectoryError:
                    moved = _free_name(dir_fd)
                    os.rename(raw, moved, src_dir_fd=fd, dst_dir_fd=dir_fd)
                    pending.append(moved)
        finally:
            os.close(fd)
        if len(pending) == before:  # nothing moved out: ``current`` is empty now
            pending.pop()
            os.rmdir(current, dir_fd=dir_fd)


def _free_name(dir_fd: int) -> bytes:
    while True:
        name = b".strata-rm-" + secrets.token_hex(8).encode()
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return name


def chmod(dir_fd: int, name: bytes, mode: int) -> None:
    """chmod ``name`` in ``dir_fd`` unless it is a symlink (whose mode means nothing)."""
    # glibc refuses AT_SYMLINK_NOFOLLOW on a symlink (Python raises): exactly what we want.
    with contextlib.suppress(NotImplementedError, ValueError):
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)


def set_xattrs(target: int | bytes, xattrs: tuple[tuple[bytes, bytes], ...]) -> None:
    """Set ``xattrs`` on an open fd or (not following symlinks) a path.

    A filesystem without xattrs is not an error, nor is a symlink or device refusing
    ``user.*`` attributes (the kernel allows those on regular files and directories only).
    """
    for key, value in xattrs:
        try:
            if isinstance(target, int):
                os.setxattr(target, key, value)
            else:
                os.setxattr(target, key, value, follow_symlinks=False)
        except OSError as e:
            if e.errno in NO_XATTRS or (e.errno == errno.EPERM and key.startswith(b"user.")):
                continue
            raise OSError(e.errno, f"xattr {display_name(key)}: {e.strerror}") from None


def sync_xattrs(path: bytes, xattrs: tuple[tuple[bytes, bytes], ...], keep: bytes) -> None:
    """Make the xattrs of ``path`` exactly ``xattrs`` (names starting ``keep`` are left)."""
    try:
        present = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in NO_XATTRS:
            return
        raise
    wanted = {key for key, _ in xattrs}
    for name in present:
        key = os.fsencode(name)
        if key not in wanted and not (keep and key.startswith(keep)):
            try:
                os.removexattr(path, key, follow_symlinks=False)
            except OSError as e:
                if e.errno not in NO_XATTRS and e.errno != errno.ENODATA:
                    raise
    set_xattrs(path, xattrs)


def is_whiteout_device(st: os.stat_result) -> bool:
    """True for overlayfs's whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def process_umask() -> int:
    """The umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # unknown: assume the worst, so modes are always set explicitly
