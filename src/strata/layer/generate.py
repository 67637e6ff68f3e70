"""A deterministic layer tar of a directory tree: the same tree gives the same diff ID.

The walk is depth first, each directory's names sorted by their bytes (the order of GNU tar's
``--sort=name`` in the C locale); the root itself is not a member. Everything is opened
relative to an already opened parent with O_NOFOLLOW, so a tree changed under our feet (a
container's files) cannot redirect the walk outside it. Directories on another filesystem
(mount points) are recorded but not entered, like ``tar --one-file-system``: a mounted /proc
or bind mount is not the tree's content. Hardlinked regular files are stored once, under the
first name in walk order; later names become hardlink members. Sockets are skipped.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from strata.errors import FormatError, SizeMismatch, StrataError
from strata.layer.entry import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    Xattrs,
    display_name,
    keep_xattr,
)
from strata.layer.stats import LayerStats
from strata.layer.tarwriter import TarWriter

_COPY_CHUNK: Final = 1 << 20
# Files up to this size are read with one call and written with their header in one piece.
_SMALL: Final = 256 * 1024
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: if a file was swapped for a fifo after we looked, open must not hang.
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NO_XATTRS: Final = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)
_PROC_FD: Final = os.path.isdir("/proc/self/fd")


def read_xattrs(target: int | bytes) -> Xattrs:
    """The xattrs worth keeping of an open file (fd) or, not following symlinks, a path."""
    try:
        if isinstance(target, int):
            names = os.listxattr(target)
        else:
            names = os.listxattr(target, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTRS:
            return ()
        raise
    if not names:
        return ()
    found: list[tuple[bytes, bytes]] = []
    for name in names:
        key = os.fsencode(name)
        if not keep_xattr(key):
            continue
        try:
            if isinstance(target, int):
                value = os.getxattr(target, name)
            else:
                value = os.getxattr(target, name, follow_symlinks=False)
        except OSError as e:
            if e.errno in _NO_XATTRS:
                continue  # removed since it was listed
            raise
        found.append((key, value))
    found.sort()
    return tuple(found)


class _Walk:
    """State of one archive run: the writer, the hardlinks seen, the open directory stack."""

    def __init__(
        self, root: Path, writer: TarWriter, clamp_mtime: int | None, label: str | None = None
    ) -> None:
        self.root = root
        self.label = label
        self.root_bytes = os.fsencode(root)
        self.writer = writer
        self.clamp = clamp_mtime
        self.links: dict[tuple[int, int], bytes] = {}

    def where(self, name: bytes) -> str:
        if self.label is not None:  # the tree as its user knows it, not where it is mounted
            return f"{self.label}: /{display_name(name)}"
        return f"{self.root}/{display_name(name)}" if name else str(self.root)

    def path_of(self, dir_fd: int, name: bytes, relative: bytes) -> bytes:
        """A path naming ``name`` in the open directory, for calls that take no dir_fd."""
        if _PROC_FD:
            return b"/proc/self/fd/%d/%s" % (dir_fd, name)
        return self.root_bytes + b"/" + relative

    def mtime(self, st: os.stat_result) -> int:
        seconds = st.st_mtime_ns // 1_000_000_000
        return seconds if self.clamp is None or seconds <= self.clamp else self.clamp

    def run(self, root_fd: int) -> None:
        try:
            root_dev = os.fstat(root_fd).st_dev
            top = _sorted_names(root_fd)
        except OSError as e:
            raise StrataError(f"{self.where(b'')}: cannot list: {e.strerror or e}") from None
        stack: list[tuple[int, bytes, Iterator[bytes]]] = [(root_fd, b"", iter(top))]
        try:
            while stack:
                dir_fd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if stack:  # the caller closes the root
                        os.close(dir_fd)
                    continue
                relative = prefix + name
                try:
                    child = self.member(dir_fd, name, relative, root_dev)
                except OSError as e:
                    raise StrataError(
                        f"{self.where(relative)}: cannot archive: {e.strerror or e}"
                    ) from None
                except FormatError as e:
                    raise FormatError(f"{self.label or self.root}: {e}") from None
                if child is not None:
                    try:
                        names_below = _sorted_names(child)
                    except OSError as e:
                        os.close(child)
                        raise StrataError(
                            f"{self.where(relative)}: cannot list: {e.strerror or e}"
                        ) from None
                    stack.append((child, relative + b"/", iter(names_below)))
        finally:
            for dir_fd, _, _ in stack[1:]:
                os.close(dir_fd)

    def member(self, dir_fd: int, name: bytes, relative: bytes, root_dev: int) -> int | None:
        """Write the member for ``name``; return an open fd if it is a directory to enter."""
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            self.regular(dir_fd, name, relative, st)
            return None
        if kind == stat.S_IFDIR:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                xattrs = read_xattrs(fd)
                self.writer.add(
                    TarEntry(
                        relative,
                        DIRTYPE,
                        mode,
                        st.st_uid,
                        st.st_gid,
                        self.mtime(st),
                        0,
                        xattrs=xattrs,
                    )
                )
            except BaseException:
                os.close(fd)
                raise
            if st.st_dev != root_dev:
                os.close(fd)
                return None
            return fd
        if kind == stat.S_IFSOCK:
            return None
        linkname = b""
        devmajor = devminor = 0
        if kind == stat.S_IFLNK:
            typeflag = SYMTYPE
            linkname = os.readlink(name, dir_fd=dir_fd)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            typeflag = CHRTYPE if kind == stat.S_IFCHR else BLKTYPE
            devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFIFO:
            typeflag = FIFOTYPE
        else:
            return None
        xattrs = read_xattrs(self.path_of(dir_fd, name, relative))
        self.writer.add(
            TarEntry(
                relative,
                typeflag,
                mode,
                st.st_uid,
                st.st_gid,
                self.mtime(st),
                0,
                linkname,
                devmajor,
                devminor,
                xattrs,
            )
        )
        return None

    def regular(self, dir_fd: int, name: bytes, relative: bytes, st: os.stat_result) -> None:
        mtime = self.mtime(st)
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                self.writer.add(
                    TarEntry(
                        relative,
                        LNKTYPE,
                        stat.S_IMODE(st.st_mode),
                        st.st_uid,
                        st.st_gid,
                        mtime,
                        0,
                        first,
                    )
                )
                return
            self.links[key] = relative
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            size = st.st_size
            entry = TarEntry(
                relative,
                REGTYPE,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                mtime,
                size,
                xattrs=read_xattrs(fd),
            )
            if size <= _SMALL:
                data = os.read(fd, size) if size else b""
                while len(data) < size:
                    more = os.read(fd, size - len(data))
                    if not more:
                        raise self.shrank(relative)
                    data += more
                self.writer.add(entry, data)
            else:
                self.writer.add_chunks(entry, self.chunks(fd, size, relative))
        finally:
            os.close(fd)

    def chunks(self, fd: int, size: int, relative: bytes) -> Iterator[bytes]:
        # Fresh bytes per read: the writer may hand them to its worker thread without a copy.
        left = size
        while left:
            data = os.read(fd, min(left, _COPY_CHUNK))
            if not data:
                raise self.shrank(relative)
            left -= len(data)
            yield data

    def shrank(self, relative: bytes) -> SizeMismatch:
        return SizeMismatch(f"{self.where(relative)}: file changed size while being archived")


def _sorted_names(dir_fd: int) -> list[bytes]:
    return sorted(map(os.fsencode, os.listdir(dir_fd)))


def write_tar_from_dir(
    root: Path, out: BinaryIO, *, clamp_mtime: int | None = None, label: str | None = None
) -> LayerStats:
    """Write the canonical tar of the tree under ``root`` to ``out``; return its diff ID.

    Members carry numeric ids, empty owner names, whole-second mtimes (at most ``clamp_mtime``
    when given), permission bits with setuid/setgid/sticky, xattrs as ``SCHILY.xattr.*``
    (except overlayfs and SELinux ones), symlinks, device nodes and fifos. Errors name a
    member as ``label: /path`` when a ``label`` is given (``root`` may be a temporary mount
    the user never saw), else by its path under ``root``.
    """
    try:
        root_fd = os.open(os.fsencode(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StrataError(f"{label or root}: cannot archive: {e.strerror or e}") from None
    try:
        with TarWriter(out) as writer:
            _Walk(root, writer, clamp_mtime, label).run(root_fd)
            return writer.finish()
    finally:
        os.close(root_fd)
