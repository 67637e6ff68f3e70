"""A container's changes as a layer tar: from an overlay upper dir, or a tree and its parent.

Both produce the canonical form of `generate` (sorted depth-first walk, fixed headers, same
bytes for the same changes) and spell deletions the OCI way: ``.wh.NAME`` at NAME's place in
the walk, and ``.wh..wh..opq`` right after the member of a directory whose lower content is
hidden. Whiteout members have fixed metadata, so the diff ID does not depend on when a file
was deleted. Overlayfs's own xattrs are never written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from strata.errors import FormatError, StrataError
from strata.layer.entry import DIRTYPE, TarEntry, display_name
from strata.layer.generate import _Walk, read_xattrs
from strata.layer.stats import LayerStats
from strata.layer.tarwriter import TarWriter
from strata.layer.whiteout import (
    OVERLAY_METACOPY,
    OVERLAY_OPAQUE,
    OVERLAY_REDIRECT,
    USER_OVERLAY_OPAQUE,
    opaque_entry,
    whiteout_entry,
)

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_COMPARE_CHUNK: Final = 1 << 20
_OPAQUE_NAMES: Final = (os.fsdecode(OVERLAY_OPAQUE), os.fsdecode(USER_OVERLAY_OPAQUE))
_REDIRECT_NAMES: Final = tuple(os.fsdecode(name) for name in OVERLAY_REDIRECT)


def _open_root(root: Path) -> int:
    try:
        return os.open(os.fsencode(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StrataError(f"{root}: cannot archive: {e.strerror or e}") from None


def _split(relative: bytes) -> tuple[bytes, bytes]:
    directory, _, name = relative.rpartition(b"/")
    return directory, name


class _UpperWalk(_Walk):
    """The generate walk, reading overlayfs's whiteouts and opaque directories on the way."""

    def member(self, dir_fd: int, name: bytes, relative: bytes, root_dev: int) -> int | None:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            self.writer.add(whiteout_entry(*_split(relative)))
            return None
        opaque = False
        if stat.S_ISDIR(mode):
            opaque = self._opaque(self.path_of(dir_fd, name, relative), relative)
        elif stat.S_ISREG(mode) and st.st_size and not st.st_blocks:
            self._check_metacopy(self.path_of(dir_fd, name, relative), relative)
        child = super().member(dir_fd, name, relative, root_dev)
        if opaque:
            self.writer.add(opaque_entry(relative))
        return child

    def _opaque(self, path: bytes, relative: bytes) -> bool:
        names = os.listxattr(path, follow_symlinks=False)
        if any(name in _REDIRECT_NAMES for name in names):
            # The directory was renamed: its content lives under another name in a lower
            # layer, which a layer tar cannot refer to.
            raise FormatError(
                f"{display_name(relative)}: renamed directory (overlay redirect) cannot be "
                "stored in a layer: mount the overlay with redirect_dir=off"
            )
        for name in _OPAQUE_NAMES:
            if name in names and os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        return False

    def _check_metacopy(self, path: bytes, relative: bytes) -> None:
        # Only a file with no blocks can be a metadata-only copy-up (data still below).
        names = os.listxattr(path, follow_symlinks=False)
        if any(os.fsencode(name) in OVERLAY_METACOPY for name in names):
            raise FormatError(
                f"{display_name(relative)}: metadata-only copy-up (overlay metacopy) cannot be "
                "stored in a layer: mount the overlay with metacopy=off"
            )


def write_tar_from_upper(
    upper: Path, out: BinaryIO, *, clamp_mtime: int | None = None
) -> LayerStats:
    """Write the layer tar of the overlay upper dir ``upper`` to ``out``; return its diff ID.

    Everything is as `generate.write_tar_from_dir`, except: a 0/0 character device becomes the
    whiteout ``.wh.NAME``; a directory with ``trusted.overlay.opaque="y"`` (or
    ``user.overlay.opaque``) is followed by ``.wh..wh..opq``; a renamed directory (overlay
    ``redirect``) or a metadata-only copy-up cannot be stored and raises `FormatError`.
    """
    root_fd = _open_root(upper)
    try:
        with TarWriter(out) as writer:
            _UpperWalk(upper, writer, clamp_mtime).run(root_fd)
            return writer.finish()
    finally:
        os.close(root_fd)


class _Level:
    """One directory of the parallel walk: both fds (lower -1 below an added directory)."""

    __slots__ = ("lower", "names", "pending", "prefix", "upper")

    def __init__(
        self,
        lower: int,
        upper: int,
        prefix: bytes,
        names: Iterator[bytes],
        pending: TarEntry | None = None,
    ) -> None:
        self.lower = lower
        self.upper = upper
        self.prefix = prefix
        self.names = names
        self.pending = pending  # its own member, while it waits in _DiffWalk.pending


def _names(fd: int) -> set[bytes]:
    return set(map(os.fsencode, os.listdir(fd)))


def _lstat(dir_fd: int, name: bytes) -> os.stat_result | None:
    if dir_fd < 0:
        return None
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class _DiffWalk(_Walk):
    """Walks ``upper`` and ``lower`` side by side, writing what differs.

    A directory's member is written only once something below it (or its own metadata) is:
    ``pending`` holds the members of the unchanged directories on the way down.
    """

    def __init__(self, lower: Path, upper: Path, writer: TarWriter, clamp: int | None) -> None:
        super().__init__(upper, writer, clamp)
        self.lower_root = lower
        self.pending: list[TarEntry] = []

    def flush(self) -> None:
        for entry in self.pending:
            self.writer.add(entry)
        self.pending.clear()

    def dir_entry(self, fd: int, st: os.stat_result, relative: bytes) -> TarEntry:
        return TarEntry(
            relative, DIRTYPE, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, self.mtime(st),
            xattrs=read_xattrs(fd),
        )  # fmt: skip

    def diff(self, lower_fd: int, upper_fd: int) -> None:
        root_dev = os.fstat(upper_fd).st_dev
        names = sorted(_names(lower_fd) | _names(upper_fd))
        stack = [_Level(lower_fd, upper_fd, b"", iter(names))]
        try:
            while stack:
                level = stack[-1]
                name = next(level.names, None)
                if name is None:
                    stack.pop()
                    if self.pending and self.pending[-1] is level.pending:
                        self.pending.pop()  # nothing below changed: never written
                    if stack:  # the caller closes the roots
                        os.close(level.upper)
                        if level.lower >= 0:
                            os.close(level.lower)
                    continue
                relative = level.prefix + name
                try:
                    child = self.compare(level, name, relative, root_dev)
                except OSError as e:
                    raise StrataError(
                        f"{self.where(relative)}: cannot archive: {e.strerror or e}"
                    ) from None
                except FormatError as e:
                    raise FormatError(f"{self.root}: {e}") from None
                if child is not None:
                    stack.append(child)
        finally:
            for level in stack[1:]:
                os.close(level.upper)
                if level.lower >= 0:
                    os.close(level.lower)

    def compare(self, level: _Level, name: bytes, relative: bytes, root_dev: int) -> _Level | None:
        """Write what changed at ``name``; return the level to enter next, if any."""
        up = _lstat(level.upper, name)
        low = _lstat(level.lower, name)
        if up is None:
            self.flush()
            self.writer.add(whiteout_entry(*_split(relative)))
            return None
        if low is not None and stat.S_ISDIR(up.st_mode) and stat.S_ISDIR(low.st_mode):
            return self.both_dirs(level, name, relative, up, low, root_dev)
        if low is not None and self.same(level, name, up, low):
            return None
        self.flush()
        child = self.member(level.upper, name, relative, root_dev)
        if child is None:
            return None
        return _Level(-1, child, relative + b"/", iter(sorted(_names(child))))

    def both_dirs(
        self,
        level: _Level,
        name: bytes,
        relative: bytes,
        up: os.stat_result,
        low: os.stat_result,
        root_dev: int,
    ) -> _Level | None:
        upper_fd = os.open(name, _DIR_FLAGS, dir_fd=level.upper)
        try:
            entry = self.dir_entry(upper_fd, up, relative)
            lower_fd = os.open(name, _DIR_FLAGS, dir_fd=level.lower)
        except BaseException:
            os.close(upper_fd)
            raise
        try:
            changed = _meta(up) != _meta(low) or entry.xattrs != read_xattrs(lower_fd)
            if changed:
                self.flush()
                self.writer.add(entry)
            if up.st_dev != root_dev:  # a mount point: recorded, not entered
                os.close(upper_fd)
                os.close(lower_fd)
                return None
            if not changed:
                self.pending.append(entry)
            names = sorted(_names(lower_fd) | _names(upper_fd))
        except BaseException:
            os.close(upper_fd)
            os.close(lower_fd)
            raise
        return _Level(lower_fd, upper_fd, relative + b"/", iter(names), None if changed else entry)

    def same(self, level: _Level, name: bytes, up: os.stat_result, low: os.stat_result) -> bool:
        """True if ``name`` is unchanged from lower to upper (both not directories)."""
        if _meta(up) != _meta(low) or up.st_size != low.st_size or up.st_rdev != low.st_rdev:
            return False
        if read_xattrs(_proc_path(level.upper, name)) != read_xattrs(_proc_path(level.lower, name)):
            return False
        kind = stat.S_IFMT(up.st_mode)
        if kind == stat.S_IFLNK:
            return os.readlink(name, dir_fd=level.upper) == os.readlink(name, dir_fd=level.lower)
        if kind != stat.S_IFREG:
            return True
        # Nanosecond mtimes that agree mean the same write (as containerd decides); whole
        # seconds may come from a tar and say nothing, so the bytes are compared.
        if up.st_mtime_ns == low.st_mtime_ns and up.st_mtime_ns % 1_000_000_000:
            return True
        return _same_content(level.lower, level.upper, name)


def _proc_path(dir_fd: int, name: bytes) -> bytes:
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)


def _meta(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns // 1_000_000_000)


def _same_content(lower_dir: int, upper_dir: int, name: bytes) -> bool:
    a = os.open(name, _FILE_FLAGS, dir_fd=lower_dir)
    try:
        b = os.open(name, _FILE_FLAGS, dir_fd=upper_dir)
        try:
            while True:
                left = os.read(a, _COMPARE_CHUNK)
                right = os.read(b, _COMPARE_CHUNK)
                if left != right:
                    return False
                if not left:
                    return True
        finally:
            os.close(b)
    finally:
        os.close(a)


def write_tar_from_dirs(
    lower: Path, upper: Path, out: BinaryIO, *, clamp_mtime: int | None = None
) -> LayerStats:
    """Write the layer that turns tree ``lower`` into tree ``upper`` to ``out``.

    Added and changed entries (content, type, mode, owner, xattrs, mtime in seconds, link
    target, device) are written with their parent directories; each deleted name becomes a
    whiteout (a directory deleted with its content: one whiteout; emptied and recreated: one
    per name it lost). Unchanged regular files are recognised by equal size and metadata and,
    unless their nanosecond mtimes agree, equal bytes. Deterministic like `write_tar_from_dir`.
    """
    lower_fd = _open_root(lower)
    try:
        upper_fd = _open_root(upper)
        try:
            with TarWriter(out) as writer:
                _DiffWalk(lower, upper, writer, clamp_mtime).diff(lower_fd, upper_fd)
                return writer.finish()
        finally:
            os.close(upper_fd)
    finally:
        os.close(lower_fd)
