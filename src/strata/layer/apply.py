"""Apply a layer tar onto a directory, safely: nothing outside the target is ever touched.

Names are resolved as containerd resolves them, which is how a chroot would (`resolve`):
``..`` stops at the target root, and a symlink on a member's parent (planted earlier in the
same layer or present below) is followed *inside* the target, an absolute one from its root.
Every member is then placed relative to an open directory fd whose path holds no symlink
(`fsops.DirCache`), so nothing a layer says can reach outside. The member itself is never
followed: a file written where a symlink is replaces the symlink. A symlink's target is data.
A member naming the root (``.``, ``/``, ``a/..``, an empty name) is skipped, as both peers do.

Two targets, two spellings of deletions (``whiteouts``):

- ``"delete"``: the target is the full tree (copy snapshotter). ``.wh.NAME`` removes NAME and
  ``.wh..wh..opq`` empties its directory of everything lower layers put there. What this layer
  adds is never removed by its own whiteouts, whatever their order in the tar (OCI rule).
- ``"overlay"``: the target is an empty overlay upper dir. ``.wh.NAME`` becomes a 0/0
  character device, ``.wh..wh..opq`` the xattr ``trusted.overlay.opaque="y"``; a directory
  put where a whiteout was is made opaque, as overlayfs itself does. Symlinks are resolved
  in the upper dir alone, as containerd applies to an upper dir.

The whiteout prefix counts in the last component only (``.wh.etc/file`` is a file in a
directory named ``.wh.etc``, and ``.wh..wh.plnk/123`` a file in ``.wh..wh.plnk``, which
containerd and Docker's overlay2 keep too); a last component ``.wh..wh.NAME`` other than the
opaque marker is AUFS bookkeeping, skipped.

An existing entry is never written through: it is unlinked (a directory replaced by a
non-directory is removed with its tree) and created anew, so hardlinks from elsewhere keep
their content. A parent that exists as a non-directory is replaced by a directory, as the
same layer stacked with overlayfs would show it. Implicit parents (missing directory members)
are created 0755 root-owned. A hardlink's target is resolved like a name (its parent's
symlinks followed inside the root) and must be a non-directory already in the target (in
"overlay" mode: put there by this layer). overlayfs's own xattrs (``trusted.overlay.*``) and
SELinux labels in a layer are dropped. Device nodes are made only by root (skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast

from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    InvalidArgument,
    StrataError,
    UnsafePath,
)
from strata.layer import fsops
from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT, open_decompressed
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
    keep_xattr,
)
from strata.layer.fsops import CREATE, LOOKUP, REPLACE, fd_path, is_whiteout_device
from strata.layer.hashing import HashingReader
from strata.layer.resolve import clean, resolve
from strata.layer.tarreader import TarReader
from strata.layer.whiteout import (
    OVERLAY_OPAQUE,
    OVERLAY_XATTR_PREFIX,
    PREFIX,
    Deletions,
)

Whiteouts = Literal["overlay", "delete"]

_CHUNK: Final = 1 << 20
_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NS: Final = 1_000_000_000
_KINDS: Final = {CHRTYPE: stat.S_IFCHR, BLKTYPE: stat.S_IFBLK, FIFOTYPE: stat.S_IFIFO}
# Errors that say the member itself is malformed, not that the disk or the host failed.
_BAD_INPUT: Final = frozenset(
    {
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.ENOTDIR,
        errno.EINVAL,
        errno.EILSEQ,
        errno.ERANGE,
        errno.E2BIG,
    }
)


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What applying a layer did.

    ``diff_id`` (None if not computed) and ``size`` describe the uncompressed tar read (all
    of it, to its end);
    ``entries`` counts its members, ``bytes`` the file data written (and symlink targets:
    Docker's layer size counts their length too), ``whiteouts`` the
    whiteout and opaque members, ``skipped`` the members not applied (the root's own member,
    AUFS bookkeeping, device nodes when not root). ``opaque_root`` is True if the layer made
    the root opaque: overlayfs ignores that on an upper root, so a stack must then leave out
    the layers below this one (in "delete" mode it was applied like any opaque directory).
    """

    diff_id: Digest | None
    size: int
    entries: int
    bytes: int
    whiteouts: int
    skipped: int
    opaque_root: bool = False


def apply_layer(
    src: BinaryIO,
    target: Path,
    *,
    whiteouts: Whiteouts,
    source: str,
    limit: int | None = None,
    diff_id: Digest | None = None,
    compute_diff_id: bool = True,
) -> ApplyStats:
    """Apply the layer blob on ``src`` (plain, gzip, zstd, bzip2 or xz tar) onto ``target``.

    ``whiteouts`` is "delete" for a full tree, "overlay" for an empty overlay upper dir (see
    the module docstring). At most ``limit`` decompressed bytes are read (default
    `DEFAULT_DECOMPRESS_LIMIT`): past it `TooLarge`. A member that would reach outside
    ``target`` raises `UnsafePath`, a malformed one `FormatError`, both naming ``source`` and
    the member; the target is then left half-applied, for the caller to discard. Ownership is
    kept when running as root (and device nodes created), else files are the caller's.

    The sha256 of the uncompressed tar (its diff ID) is computed on the way (on a second
    core) unless ``compute_diff_id`` is False; given ``diff_id``, a different one raises
    `DigestMismatch` once the layer is applied. Unpacking images must check it: snapshots are
    shared by chain ID, which an image's config claims, so a wrong claim would poison them.
    """
    if diff_id is not None and not compute_diff_id:
        raise InvalidArgument("apply_layer: an expected diff_id needs compute_diff_id")
    if whiteouts not in ("overlay", "delete"):
        raise InvalidArgument(f"invalid whiteout mode {whiteouts!r}: must be overlay or delete")
    try:
        root_fd = os.open(os.fsencode(target), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StrataError(f"{target}: cannot apply a layer here: {e.strerror or e}") from None
    stream = open_decompressed(
        src, limit=DEFAULT_DECOMPRESS_LIMIT if limit is None else limit, source=source
    )
    applier = _Applier(root_fd, whiteouts == "overlay", source)
    hashing = HashingReader(stream, source, enabled=compute_diff_id)
    try:
        reader = TarReader(cast(BinaryIO, hashing), source=source)
        for entry in reader:
            try:
                applier.apply(entry, reader)
            except OSError as e:
                raise applier.error(entry.name, e) from None
            except (OverflowError, ValueError) as e:  # ids, times, xattr names out of range
                raise FormatError(f"{source}: member {display_name(entry.name)}: {e}") from None
        try:
            applier.finish()
        except OSError as e:
            raise StrataError(f"{source}: cannot apply: {e.strerror or e}") from None
        hashing.drain()
        digest = hashing.digest() if compute_diff_id else None
        if diff_id is not None and digest != diff_id:
            raise DigestMismatch(f"{source}: uncompressed tar is {digest}, expected {diff_id}")
        return ApplyStats(
            digest,
            hashing.size,
            applier.entries,
            applier.bytes,
            applier.deletions.count,
            applier.skipped + applier.deletions.skipped,
            applier.deletions.opaque_root,
        )
    finally:
        hashing.close()
        applier.dirs.close()
        os.close(root_fd)
        stream.close()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(view):
            written += os.write(fd, view[written:])


class _Applier:
    """The state of one application: the directory cache, what this layer added, dir times."""

    def __init__(self, root_fd: int, overlay: bool, source: str) -> None:
        self.root_fd = root_fd
        self.overlay = overlay
        self.source = source
        self.dirs = fsops.DirCache(root_fd, self._make_dir)
        self.privileged = os.geteuid() == 0
        self.euid, self.egid = os.geteuid(), os.getegid()
        self.umask = fsops.process_umask()
        # An empty upper whose dirs are all ours (none setgid): a new file gets our ids, so
        # a chown to them can be left out.
        root_mode = os.fstat(root_fd).st_mode
        self.fresh = overlay and not root_mode & stat.S_ISGID
        self.deletions = Deletions(self.dirs, overlay=overlay, source=source)
        self.added = self.deletions.added
        # directory -> (path parts, mtime, mode to set at the end or -1): set once every child
        # is in place, since creating children changes a directory's mtime.
        self.dir_times: dict[bytes, tuple[list[bytes], int, int]] = {}
        self.entries = self.bytes = self.skipped = 0

    def error(self, name: bytes, e: OSError) -> StrataError:
        what = f"{self.source}: member {display_name(name)}"
        if e.errno in _BAD_INPUT:
            return FormatError(f"{what}: {e.strerror}")
        return StrataError(f"{what}: cannot apply: {e.strerror or e}")

    def split(self, name: bytes) -> list[bytes]:
        """``name`` as clean components (absolute made relative, ``..`` stopped at the root)."""
        trimmed = name[:-1] if name[-1:] == b"/" else name  # a directory's trailing slash
        if (
            trimmed
            and trimmed[:1] not in b"./"  # (b"" is in it too: trimmed is not empty here)
            and b"/." not in trimmed
            and b"//" not in trimmed
            and trimmed[-1:] != b"/"
        ):
            return trimmed.split(b"/")  # the usual case, already clean
        return clean(name)

    def parent(self, parent: list[bytes], how: int) -> tuple[int | None, list[bytes]]:
        """The directory ``parent`` names and its real path, symlinks followed inside the root.

        None (with the path) if a non-directory is in the way and ``how`` does not replace it.
        """
        dir_fd = self.dirs.get(parent, CREATE)
        if dir_fd is not None:
            return dir_fd, parent  # no symlink on the way: the usual case, from the cache
        resolved = resolve(self.root_fd, parent)
        if resolved == parent:
            return self.dirs.get(parent, how), parent  # a non-directory, but no symlink
        # Where a symlink leads to a non-directory, containerd, Docker and a chroot all fail
        # (ENOTDIR): the layer cannot mean to replace what the link names.
        dir_fd = self.dirs.get(resolved, CREATE)
        if dir_fd is None and how == REPLACE:
            raise OSError(errno.ENOTDIR, "a symlink on its path leads to a non-directory")
        return dir_fd, resolved

    def apply(self, entry: TarEntry, reader: TarReader) -> None:
        self.entries += 1
        parts = self.split(entry.name)
        if not parts:
            self.skipped += 1  # the root itself: never replaced, its metadata left alone
            return
        base = parts[-1]
        if base.startswith(PREFIX):
            _, parent = self.parent(parts[:-1], CREATE)
            self.deletions.apply(entry.name, [*parent, base])
            return
        dir_fd, parent = self.parent(parts[:-1], REPLACE)
        assert dir_fd is not None
        parts = [*parent, base]
        kind = entry.type
        if kind == REGTYPE:
            self.file(dir_fd, base, parts, entry, reader)
        elif kind == DIRTYPE:
            self.directory(dir_fd, base, parts, entry)
        elif kind == SYMTYPE:
            self.symlink(dir_fd, base, parts, entry)
        elif kind == LNKTYPE:
            self.hardlink(dir_fd, base, parts, entry)
        else:
            self.node(dir_fd, base, parts, entry)
        if not self.overlay:
            self.added.add(b"/".join(parts))

    def clear(self, dir_fd: int, base: bytes, parts: list[bytes]) -> None:
        """Remove what is at ``base`` so a new entry can take its place."""
        try:
            os.unlink(base, dir_fd=dir_fd)
        except IsADirectoryError:
            self.dirs.forget(parts)
            fsops.remove_tree(dir_fd, base)
        except FileNotFoundError:
            pass
        self.dir_times.pop(b"/".join(parts), None)

    def owner(self, entry: TarEntry) -> bool:
        """True if the new inode needs a chown to the member's ids."""
        if not self.privileged:
            return False  # an unprivileged applier cannot give files away: they stay ours
        return not (self.fresh and entry.uid == self.euid and entry.gid == self.egid)

    def file(
        self, dir_fd: int, base: bytes, parts: list[bytes], entry: TarEntry, reader: TarReader
    ) -> None:
        perm = entry.mode & 0o777
        try:
            fd = os.open(base, _FILE_FLAGS, perm, dir_fd=dir_fd)
        except FileExistsError:
            self.clear(dir_fd, base, parts)
            fd = os.open(base, _FILE_FLAGS, perm, dir_fd=dir_fd)
        try:
            size = entry.size
            if size:
                # straight from the reader's buffer: no copy, usually one write per file
                for chunk in reader.chunks():
                    _write_all(fd, chunk)
            self.bytes += size
            if self.owner(entry):
                os.fchown(fd, entry.uid, entry.gid)
            mode = entry.mode & 0o7777
            # After the chown, which clears setuid/setgid; not needed when open's was exact.
            if mode != perm or perm & self.umask:
                os.fchmod(fd, mode)
            if entry.xattrs:
                fsops.set_xattrs(fd, self.xattrs(entry))
            ns = entry.mtime * _NS
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def xattrs(self, entry: TarEntry) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(pair for pair in entry.xattrs if keep_xattr(pair[0]))

    def directory(self, dir_fd: int, base: bytes, parts: list[bytes], entry: TarEntry) -> None:
        mode = entry.mode & 0o7777
        existed = False
        first = mode & 0o777 if self.privileged else 0o700
        try:
            os.mkdir(base, first, dir_fd=dir_fd)
        except FileExistsError:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                existed = True
            else:
                self.replace_with_dir(dir_fd, base, parts, st, first)
        if self.privileged and (existed or self.owner(entry)):
            os.chown(base, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
        if existed:
            keep = OVERLAY_XATTR_PREFIX if self.overlay else b""
            fsops.sync_xattrs(fd_path(dir_fd, base), self.xattrs(entry), keep)
        elif entry.xattrs:
            fsops.set_xattrs(fd_path(dir_fd, base), self.xattrs(entry))
        # The mode waits for the end when it could stand in our way (an unprivileged applier
        # in a read-only dir) or make children inherit a group (setgid).
        exact = self.privileged and not existed and mode == mode & 0o777 & ~self.umask
        rel = b"/".join(parts)
        self.dir_times.pop(rel, None)  # a duplicate member: last wins, and goes last
        self.dir_times[rel] = (parts, entry.mtime, -1 if exact else mode)

    def replace_with_dir(
        self, dir_fd: int, base: bytes, parts: list[bytes], st: os.stat_result, mode: int
    ) -> None:
        """Put a directory where a non-directory is; opaque if it replaces a whiteout."""
        opaque = self.overlay and is_whiteout_device(st)
        os.unlink(base, dir_fd=dir_fd)
        self.dir_times.pop(b"/".join(parts), None)
        os.mkdir(base, mode, dir_fd=dir_fd)
        if opaque:
            os.setxattr(fd_path(dir_fd, base), OVERLAY_OPAQUE, b"y", follow_symlinks=False)

    def _make_dir(self, dir_fd: int, base: bytes, parts: list[bytes], replace: bool) -> None:
        """An implicit parent: a directory no member describes (0755, ours)."""
        if replace:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            self.replace_with_dir(dir_fd, base, parts, st, 0o755)
        else:
            os.mkdir(base, 0o755, dir_fd=dir_fd)
        if self.umask & 0o755:
            fsops.chmod(dir_fd, base, 0o755)
        if not self.overlay:
            self.added.add(b"/".join(parts))

    def symlink(self, dir_fd: int, base: bytes, parts: list[bytes], entry: TarEntry) -> None:
        if not entry.linkname:
            raise FormatError(
                f"{self.source}: member {display_name(entry.name)}: symlink with an empty target"
            )
        try:
            os.symlink(entry.linkname, base, dir_fd=dir_fd)
        except FileExistsError:
            self.clear(dir_fd, base, parts)
            os.symlink(entry.linkname, base, dir_fd=dir_fd)
        self.bytes += len(entry.linkname)
        self.metadata(dir_fd, base, entry, chmod=False)

    def metadata(self, dir_fd: int, base: bytes, entry: TarEntry, *, chmod: bool) -> None:
        """Owner, mode, xattrs and mtime of a symlink or node, never following a symlink."""
        if self.owner(entry):
            os.chown(base, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
        if chmod:
            fsops.chmod(dir_fd, base, entry.mode & 0o7777)
        if entry.xattrs:
            fsops.set_xattrs(fd_path(dir_fd, base), self.xattrs(entry))
        ns = entry.mtime * _NS
        os.utime(base, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)

    def node(self, dir_fd: int, base: bytes, parts: list[bytes], entry: TarEntry) -> None:
        kind = _KINDS[entry.type]
        if kind != stat.S_IFIFO and not self.privileged:
            self.skipped += 1
            return
        device = os.makedev(entry.devmajor, entry.devminor) if kind != stat.S_IFIFO else 0
        perm = entry.mode & 0o777
        try:
            os.mknod(base, kind | perm, device, dir_fd=dir_fd)
        except FileExistsError:
            self.clear(dir_fd, base, parts)
            os.mknod(base, kind | perm, device, dir_fd=dir_fd)
        mode = entry.mode & 0o7777
        self.metadata(dir_fd, base, entry, chmod=mode != perm or bool(perm & self.umask))

    def hardlink(self, dir_fd: int, base: bytes, parts: list[bytes], entry: TarEntry) -> None:
        what = f"{self.source}: member {display_name(entry.name)}: hardlink target"
        target = clean(entry.linkname)
        if not target:
            raise UnsafePath(f"{what} is the target root")
        link_parent = target[:-1]
        link_dir = fsops.lookup_dir(self.root_fd, link_parent)
        if link_dir is None:
            link_parent = resolve(self.root_fd, link_parent)
            link_dir = fsops.lookup_dir(self.root_fd, link_parent)
        if link_dir is None:
            raise FormatError(f"{what} {display_name(entry.linkname)} not found")
        try:
            if [*link_parent, target[-1]] == parts:
                raise FormatError(f"{what} is the member itself")
            if self.overlay:
                try:
                    st = os.stat(target[-1], dir_fd=link_dir, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is None or is_whiteout_device(st):
                    raise FormatError(f"{what} {display_name(entry.linkname)} not found")
            self.link(link_dir, target[-1], dir_fd, base, parts, what)
        finally:
            os.close(link_dir)

    def link(
        self,
        link_dir: int,
        link_base: bytes,
        dir_fd: int,
        base: bytes,
        parts: list[bytes],
        what: str,
    ) -> None:
        for attempt in (1, 2):
            try:
                os.link(
                    link_base, base, src_dir_fd=link_dir, dst_dir_fd=dir_fd, follow_symlinks=False
                )
                return
            except FileExistsError:
                if attempt == 2:
                    raise
                self.clear(dir_fd, base, parts)
            except FileNotFoundError:
                raise FormatError(f"{what} {display_name(link_base)} not found") from None
            except PermissionError:
                raise FormatError(f"{what} {display_name(link_base)} is a directory") from None

    def finish(self) -> None:
        """Directory modes and mtimes, now that nothing more is created in them."""
        for parts, mtime, mode in reversed(self.dir_times.values()):
            dir_fd = self.dirs.get(parts[:-1], LOOKUP)
            if dir_fd is None:
                continue
            base = parts[-1]
            try:
                if mode >= 0:
                    fsops.chmod(dir_fd, base, mode)
                ns = mtime * _NS
                os.utime(base, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
