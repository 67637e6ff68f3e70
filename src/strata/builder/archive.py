"""``ADD archive.tar /dest``: recognising a local tar archive and unpacking it into the rootfs.

A source is an archive when, decompressed if it is gzip, bzip2, xz or zstd (detected from its
first bytes, never from its name), it starts with a valid tar header: Docker's
``isArchivePath``. Members keep their owner, mode and time from the archive (``--chown`` does
not apply, as in Docker).

Unpacking is our own, not `strata.layer.apply.apply_layer`: that one replaces a symlink found
where a directory is needed (right for a layer, wrong here: ``ADD rootfs.tar /`` onto a
merged-/usr image must go through ``/lib -> usr/lib``). Each member's parent is resolved in the
rootfs as if it were ``/`` and opened without following links (`RootWriter`), so nothing lands
outside; a member whose cleaned name climbs above the destination is refused, as Docker
refuses it. Whiteout names (``.wh.*``) are dropped: in the layer made from this step they
would delete files instead of being files.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from strata.builder.context import globs
from strata.builder.owner import ROOT, Owner
from strata.builder.rootwriter import RootWriter
from strata.errors import BuildError, StrataError
from strata.layer.compression import open_decompressed
from strata.layer.entry import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
)
from strata.layer.tarreader import TarReader

_WHITEOUT: Final = ".wh."
_NODE_KINDS: Final = {CHRTYPE: 0o020000, BLKTYPE: 0o060000, FIFOTYPE: 0o010000}


def is_archive(path: str) -> bool:
    """True if the file at ``path`` is a (possibly compressed) tar archive."""
    try:
        with open(path, "rb") as f:
            stream = open_decompressed(f, source=path)
            try:
                reader = TarReader(stream, source=path)
                return next(iter(reader), None) is not None
            finally:
                stream.close()
    except (StrataError, OSError, ValueError, EOFError):
        return False


class _Unpacker:
    def __init__(self, writer: RootWriter, dest: list[str], source: str) -> None:
        self.writer = writer
        self.dest = dest
        self.source = source
        self.dirs: list[tuple[list[str], int, Owner, int]] = []
        self._parent: tuple[str, int, list[str]] | None = None

    def close(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _parent_fd(self, parent: str) -> tuple[int, list[str]]:
        if self._parent is not None and self._parent[0] == parent:
            return self._parent[1], self._parent[2]
        self.close()
        parts = self.writer.resolve(parent)
        fd = self.writer.open_dir(parts, create=ROOT)
        assert fd is not None
        self._parent = (parent, fd, parts)
        return fd, parts

    def _inside(self, name: str, what: str) -> list[str]:
        cleaned = globs.clean(name)
        if cleaned == ".." or cleaned.startswith("../"):
            raise BuildError(
                f"{self.writer.command} failed: {self.source}: {what} {name!r} "
                "is outside the destination"
            )
        cleaned = globs.clean(cleaned.lstrip("/"))
        return [] if cleaned == "." else cleaned.split("/")

    def member(self, entry: TarEntry, reader: TarReader) -> None:
        writer = self.writer
        parts = self._inside(os.fsdecode(entry.name), "member")
        if not parts or parts[-1].startswith(_WHITEOUT):
            return
        path = "/" + "/".join([*self.dest, *parts])
        parent_fd, parent_parts = self._parent_fd("/" + "/".join([*self.dest, *parts[:-1]]))
        name = parts[-1]
        owner = Owner(entry.uid, entry.gid)
        mode = entry.mode & 0o7777
        mtime_ns = entry.mtime * 1_000_000_000
        kind = entry.type
        if kind == REGTYPE:
            fd = writer.create(parent_fd, name)
            try:
                for chunk in reader.chunks():
                    view = chunk
                    while view:
                        view = view[os.write(fd, view) :]
                    writer.bytes += len(chunk)
                writer.finish_file(fd, mode, owner, mtime_ns)
            finally:
                os.close(fd)
            writer.files += 1
        elif kind == DIRTYPE:
            fd, resolved, own = writer.enter_dir(parent_fd, parent_parts, name)
            os.close(fd)
            if own:
                self.dirs.append((resolved, mode, owner, mtime_ns))
        elif kind == SYMTYPE:
            writer.put_symlink(parent_fd, name, os.fsdecode(entry.linkname), owner, mtime_ns)
        elif kind == LNKTYPE:
            target = self._inside(os.fsdecode(entry.linkname), "hardlink target")
            first = writer.resolve("/" + "/".join([*self.dest, *target]))
            st = writer.lstat(first)
            if st is None or not target or stat.S_ISDIR(st.st_mode):
                raise BuildError(
                    f"{writer.command} failed: {self.source}: hardlink {path} to "
                    f"{os.fsdecode(entry.linkname)!r}: no such file"
                )
            writer.hardlink(parent_fd, name, first)
        elif kind in _NODE_KINDS:
            rdev = os.makedev(entry.devmajor, entry.devminor)
            writer.put_node(parent_fd, name, _NODE_KINDS[kind] | mode, rdev, owner, mtime_ns)
        # Structure changed: a cached parent at or below this path may be stale now.
        if self._parent is not None and (
            self._parent[0] == path or self._parent[0].startswith(path + "/")
        ):
            self.close()

    def finish(self) -> None:
        self.close()
        for parts, mode, owner, mtime_ns in reversed(self.dirs):
            fd = self.writer.open_dir(parts, create=None)
            if fd is None:
                continue
            try:
                self.writer.finish_dir(fd, mode, owner, mtime_ns)
            finally:
                os.close(fd)


def extract_archive(writer: RootWriter, dest: list[str], src: str, source: str) -> None:
    """Unpack the archive at host path ``src`` into the rootfs directory ``dest``."""
    unpacker = _Unpacker(writer, dest, source)
    try:
        with open(src, "rb") as f:
            stream = open_decompressed(f, source=source)
            try:
                reader = TarReader(stream, source=source)
                for entry in reader:
                    unpacker.member(entry, reader)
            finally:
                stream.close()
        unpacker.finish()
    except OSError as e:
        raise BuildError(f"{writer.command} failed: {source}: {e.strerror or e}") from None
    except StrataError as e:
        if isinstance(e, BuildError):
            raise
        raise BuildError(f"{writer.command} failed: {e}") from None
    finally:
        unpacker.close()
