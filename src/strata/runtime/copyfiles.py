"""Files copied as ``docker cp`` copies them: a path in a root as a tar, a tar into a directory.

Both ends of a copy are a *root* (an open directory fd) and a path inside it: the container's
root filesystem on one side, the host's ``/`` on the other. Paths are resolved as a chroot
would resolve them (`strata.layer.resolve`): a symlink met on the way is followed *inside* the
root, an absolute one from the root, and ``..`` stops there, so a link in the container aimed
at ``/etc`` names the container's ``/etc``, never the host's. Everything after the resolution
works through directory fds opened with ``O_NOFOLLOW``: nothing the tree says can lead the copy
outside the directory it writes into, whatever links a tar or a tree holds.

Docker's naming rules (``pkg/archive/copy.go``): a source is archived under its base name
(``/d`` as ``d/...``), or as ``./...`` when it ends in ``/.`` (its contents); the extractor
renames that top component to what the destination makes of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO, Final

from strata.errors import FormatError, InvalidArgument, NotFound, StrataError
from strata.layer.entry import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    display_name,
)
from strata.layer.fsops import PATH_FLAGS, lookup_dir, remove_tree
from strata.layer.resolve import clean, resolve
from strata.layer.tarreader import TarReader
from strata.layer.tarwriter import TarWriter

_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 1 << 20
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PathStat:
    """What a path in a root is, once resolved: its parent (real, link-free components), its
    own name (empty for the root itself), and its lstat (None: it does not exist)."""

    parent: list[bytes]
    name: bytes
    st: os.stat_result | None

    @property
    def exists(self) -> bool:
        return self.st is not None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)

    @property
    def parts(self) -> list[bytes]:
        return [*self.parent, self.name] if self.name else list(self.parent)


def wants_dir(path: str) -> bool:
    """Whether ``path`` ends as Docker's directory forms do (``/`` or ``/.``)."""
    return path.endswith(("/", "/.")) or path == "."


def contents_only(path: str) -> bool:
    """Docker's ``SRC/.``: the directory's contents, not the directory."""
    return path.endswith("/.") or path == "."


def stat_in_root(root_fd: int, path: str, *, follow: bool = False) -> PathStat:
    """Resolve ``path`` inside the root; the last component is followed only with ``follow``
    or a trailing ``/`` (``/.``), as Docker follows it."""
    parts = clean(os.fsencode(path))
    if follow or wants_dir(path):
        parts = resolve(root_fd, parts)  # every link on it, the last one's too
    if not parts:
        return PathStat([], b"", os.stat(b".", dir_fd=root_fd))
    parent = resolve(root_fd, parts[:-1])
    fd = lookup_dir(root_fd, parent)
    if fd is None:
        return PathStat(parent, parts[-1], None)
    try:
        st: os.stat_result | None = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    finally:
        os.close(fd)
    return PathStat(parent, parts[-1], st)


def open_dir(root_fd: int, parts: list[bytes]) -> int:
    """An fd of the existing, link-free directory ``parts`` (NotFound if it is not one)."""
    fd = lookup_dir(root_fd, parts)
    if fd is None:
        raise NotFound("no such directory")
    return fd


# -- archive --------------------------------------------------------------------------------


def write_archive(root_fd: int, source: PathStat, top: bytes, out: BinaryIO) -> None:
    """Write a tar of ``source`` (file or tree) to ``out``, its top entry named ``top``
    (``.`` for a directory's contents), the rest below it. Nothing is followed."""
    if source.st is None:
        raise NotFound("no such file or directory")
    parent = open_dir(root_fd, source.parent)
    try:
        with TarWriter(out) as writer:
            _Archiver(writer).member(parent, source.name or b".", top)
            writer.finish()
    finally:
        os.close(parent)


class _Archiver:
    def __init__(self, writer: TarWriter) -> None:
        self.writer = writer
        self.links: dict[tuple[int, int], bytes] = {}

    def member(self, dir_fd: int, name: bytes, path: bytes) -> None:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        mode = st.st_mode
        base = TarEntry(
            name=path,
            type=DIRTYPE,
            mode=stat.S_IMODE(mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime=st.st_mtime_ns // _NS,
        )
        if stat.S_ISDIR(mode):
            self.writer.add(base)
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                for child in sorted(map(os.fsencode, os.listdir(fd))):
                    self.member(fd, child, b"%s/%s" % (path, child))
            finally:
                os.close(fd)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                self.writer.add(replace(base, type=LNKTYPE, linkname=self.links[key]))
                return
            self.links[key] = path
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            try:
                entry = replace(base, type=REGTYPE, size=st.st_size)
                self.writer.add_chunks(entry, _read_exactly(fd, st.st_size, path))
            finally:
                os.close(fd)
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=dir_fd)
            self.writer.add(replace(base, type=SYMTYPE, linkname=target))
        elif stat.S_ISFIFO(mode):
            self.writer.add(replace(base, type=FIFOTYPE))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.writer.add(replace(base, type=kind, devmajor=major, devminor=minor))
        # sockets are not archived (as tar and Docker skip them)


def _read_exactly(fd: int, size: int, path: bytes) -> Iterator[bytes]:
    left = size
    while left:
        data = os.read(fd, min(left, _CHUNK))
        if not data:
            raise StrataError(f"{display_name(path)}: file changed size while being copied")
        left -= len(data)
        yield data


# -- extract --------------------------------------------------------------------------------


def extract_archive(
    src: BinaryIO,
    dest_fd: int,
    *,
    source: str,
    rename: tuple[bytes, bytes] | None = None,
    keep_owner: bool = True,
) -> int:
    """Extract the tar on ``src`` into the directory ``dest_fd``; the number of entries.

    ``rename`` = (old, new) replaces a first component ``old`` with ``new`` (Docker's rebase
    of a copied tree onto its destination name). Names are cleaned (``..`` stops at the
    destination) and their parents resolved inside it; an existing entry is replaced, never
    written through. ``keep_owner`` keeps the members' ids (as root); else files are ours.
    """
    extractor = _Extractor(dest_fd, keep_owner and os.geteuid() == 0, source)
    reader = TarReader(src, source=source)
    count = 0
    for entry in reader:
        name = entry.name
        if rename is not None:
            first, slash, rest = name.strip(b"/").partition(b"/")
            if first == rename[0].strip(b"/") or clean(first) == clean(rename[0]):
                name = rename[1] + slash + rest
        try:
            extractor.apply(entry, clean(name), reader)
        except OSError as e:
            raise StrataError(f"{source}: {display_name(entry.name)}: {e.strerror or e}") from None
        count += 1
    if count == 0:
        raise FormatError(f"{source}: not a tar archive, or an empty one")
    extractor.finish()
    return count


class _Extractor:
    def __init__(self, dest_fd: int, keep_owner: bool, source: str) -> None:
        self.dest_fd = dest_fd
        self.keep_owner = keep_owner
        self.source = source
        self.dir_times: list[tuple[list[bytes], int]] = []

    def parent(self, parts: list[bytes]) -> tuple[int, list[bytes]]:
        """An fd of the parent directory of ``parts``, made if missing, links followed inside
        the destination."""
        resolved = resolve(self.dest_fd, parts)
        cur = os.open(b".", PATH_FLAGS, dir_fd=self.dest_fd)
        try:
            for name in resolved:
                try:
                    fd = os.open(name, PATH_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    os.mkdir(name, 0o755, dir_fd=cur)
                    fd = os.open(name, PATH_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = fd
        except BaseException:
            os.close(cur)
            raise
        return cur, resolved

    def apply(self, entry: TarEntry, parts: list[bytes], reader: TarReader) -> None:
        if not parts:
            return  # the destination itself: left as it is
        dir_fd, parent = self.parent(parts[:-1])
        base = parts[-1]
        try:
            kind = entry.type
            if kind == DIRTYPE:
                self.directory(dir_fd, base, entry)
                self.dir_times.append(([*parent, base], entry.mtime))
                return
            self.clear(dir_fd, base)
            if kind == REGTYPE:
                fd = os.open(base, _NEW_FILE, 0o600, dir_fd=dir_fd)
                try:
                    for chunk in reader.chunks():
                        _write_all(fd, chunk)
                    if self.keep_owner:
                        os.fchown(fd, entry.uid, entry.gid)
                    os.fchmod(fd, entry.mode & 0o7777)
                    os.utime(fd, ns=(entry.mtime * _NS, entry.mtime * _NS))
                finally:
                    os.close(fd)
                return
            if kind == SYMTYPE:
                os.symlink(entry.linkname, base, dir_fd=dir_fd)
            elif kind == LNKTYPE:
                target = clean(entry.linkname)
                if not target:
                    raise OSError(errno.EINVAL, "hard link to the destination itself")
                link_dir, _ = self.parent(target[:-1])
                try:
                    os.link(
                        target[-1],
                        base,
                        src_dir_fd=link_dir,
                        dst_dir_fd=dir_fd,
                        follow_symlinks=False,
                    )
                finally:
                    os.close(link_dir)
                return
            elif kind == FIFOTYPE:
                os.mkfifo(base, 0o600, dir_fd=dir_fd)
            elif kind in (CHRTYPE, BLKTYPE):
                if os.geteuid() != 0:
                    return
                mode = stat.S_IFCHR if kind == CHRTYPE else stat.S_IFBLK
                device = os.makedev(entry.devmajor, entry.devminor)
                os.mknod(base, mode | 0o600, device, dir_fd=dir_fd)
            else:
                return  # other member types carry nothing a filesystem holds
            self.metadata(dir_fd, base, entry, symlink=kind == SYMTYPE)
        finally:
            os.close(dir_fd)

    def clear(self, dir_fd: int, base: bytes) -> None:
        """Make room for a new entry: what is there goes (a directory with its tree)."""
        try:
            os.unlink(base, dir_fd=dir_fd)
        except IsADirectoryError:
            remove_tree(dir_fd, base)
        except FileNotFoundError:
            pass

    def directory(self, dir_fd: int, base: bytes, entry: TarEntry) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(base, dir_fd=dir_fd)
                os.mkdir(base, 0o700, dir_fd=dir_fd)
        if self.keep_owner:
            os.chown(base, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
        fd = os.open(base, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            os.fchmod(fd, entry.mode & 0o7777)
        finally:
            os.close(fd)

    def metadata(self, dir_fd: int, base: bytes, entry: TarEntry, *, symlink: bool) -> None:
        if self.keep_owner:
            os.chown(base, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
        if not symlink:
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.chmod(f"/proc/self/fd/{fd}", entry.mode & 0o7777)
            finally:
                os.close(fd)
        ns = entry.mtime * _NS
        os.utime(base, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: their children's creation changed them."""
        for parts, mtime in reversed(self.dir_times):
            fd = lookup_dir(self.dest_fd, parts)
            if fd is None:
                continue
            with contextlib.suppress(OSError):
                os.utime(f"/proc/self/fd/{fd}", ns=(mtime * _NS, mtime * _NS))
            os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def check_pair(source_dir: bool, dest: PathStat, dest_path: str) -> None:
    """Docker's refusals of a source onto a destination (before anything is written)."""
    if dest.exists and not dest.is_dir and source_dir:
        raise InvalidArgument("cannot copy directory")
    if not dest.exists and wants_dir(dest_path) and not source_dir:
        raise NotFound("no such directory")
