"""The ``file:<hex>`` / ``dir:<hex>`` / ``multi:<hex>`` names Docker's legacy builder writes into
a COPY/ADD history entry, computed as Docker 20.10 computes them.

Docker names each source by tarsum v1 sums (moby ``pkg/tarsum``): per entry, the sha256 of
``name<name>mode<mode>uid<uid>gid<gid>size<size>typeflag<t>linkname<l>uname<u>gname<g>``
``devmajor<n>devminor<n>`` (then each xattr as ``<key><value>``) followed by the content. No
mtime. Which header it sums depends on where the source is:

* the build context: the header of the tar the Docker CLI sent — mode without file-type bits,
  uid/gid forced to 0, uname/gname blank, directories named with a trailing ``/``, the second
  and later names of a hardlinked file as hardlinks (size 0) to the first in walk order, only
  ``security.capability`` among xattrs (builder/remotecontext/archive.go);
* another stage (``COPY --from``) or a download (``ADD URL``): a header made from the file's
  stat by the daemon — mode *with* Go's type bits, real uid/gid, user and group names looked
  up on the host, no hardlink detection (builder/remotecontext/lazycontext.go, filehash.go).

A single file is ``file:<sum>`` (a download its bare sum); a directory is ``dir:`` + sha256 of
the comma-joined, sorted sums of everything under it (itself included, unless it is the root),
where each path is first resolved through symlinks inside its root and a path that resolves to
nothing is summed as the path itself; several sources are ``multi:`` over their names in order
(builder/dockerfile/copy.go, internals.go). These are computed only when a step runs: the cache
key uses strata's own sums (content, mode, owner), which cost nothing on a rebuild.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import stat
from functools import cache
from pathlib import Path
from typing import Any, Final

from strata.builder.context.hashcache import _buffer
from strata.builder.context.scan import Context
from strata.builder.sources import ContextRoot, Item, StageRoot
from strata.errors import BuildError, UnsafePath
from strata.runtime.rootfs import resolve_components

_TYPE_BITS: Final = {  # Go's archive/tar c_IS* bits, which moby's FileInfoHeader adds back
    stat.S_IFREG: 0o100000,
    stat.S_IFDIR: 0o40000,
    stat.S_IFLNK: 0o120000,
    stat.S_IFCHR: 0o20000,
    stat.S_IFBLK: 0o60000,
    stat.S_IFIFO: 0o10000,
    stat.S_IFSOCK: 0o140000,
}
_TYPEFLAGS: Final = {
    stat.S_IFREG: "0",
    stat.S_IFLNK: "2",
    stat.S_IFCHR: "3",
    stat.S_IFBLK: "4",
    stat.S_IFDIR: "5",
    stat.S_IFIFO: "6",
}
_CAPABILITY: Final = "security.capability"


def _multi(prefix: str, sums: list[str]) -> str:
    """moby's ``hashStringSlice``."""
    return (
        prefix + ":" + hashlib.sha256(",".join(sums).encode("utf-8", "surrogateescape")).hexdigest()
    )


@cache
def _user(uid: int) -> str:
    with contextlib.suppress(KeyError, OverflowError):
        return pwd.getpwuid(uid).pw_name
    return ""


@cache
def _group(gid: int) -> str:
    with contextlib.suppress(KeyError, OverflowError):
        return grp.getgrgid(gid).gr_name
    return ""


def _capability(path: str) -> str | None:
    """The ``security.capability`` xattr as moby's ``ReadSecurityXattrToTarHeader`` reads it."""
    try:
        value = bytearray(os.getxattr(path, _CAPABILITY, follow_symlinks=False))
    except OSError:
        return None
    if len(value) > 3 and value[3] == 3:  # VFS_CAP_REVISION_3 becomes revision 2
        value[3] = 2
        del value[20:]
    return value.decode("utf-8", "surrogateescape")


def entry_sum(
    name: str,
    st: os.stat_result,
    host: str,
    *,
    lazy: bool,
    linkname: str = "",
    hardlink: str = "",
) -> str:
    """The tarsum v1 sum of one entry (see the module docstring for ``lazy``)."""
    fmt = stat.S_IFMT(st.st_mode)
    mode = st.st_mode & 0o7777
    if lazy:
        mode |= _TYPE_BITS.get(fmt, 0)
    regular = fmt == stat.S_IFREG
    if fmt == stat.S_IFDIR and not name.endswith("/"):
        name += "/"
    typeflag = _TYPEFLAGS.get(fmt, "0")
    size = st.st_size if regular and not hardlink else 0
    if hardlink:
        typeflag, linkname = "1", hardlink
    uid, gid = (st.st_uid, st.st_gid) if lazy else (0, 0)
    uname, gname = (_user(uid), _group(gid)) if lazy else ("", "")
    major = minor = 0
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    header = (
        f"name{name}mode{mode}uid{uid}gid{gid}size{size}typeflag{typeflag}linkname{linkname}"
        f"uname{uname}gname{gname}devmajor{major}devminor{minor}"
    )
    digest = hashlib.sha256(header.encode("utf-8", "surrogateescape"))
    capability = _capability(host)
    if capability is not None:
        digest.update(f"{_CAPABILITY}{capability}".encode("utf-8", "surrogateescape"))
    if regular and size:
        _read_into(digest, host)
    return digest.hexdigest()


def _read_into(digest: Any, path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None
    try:
        buf = _buffer()
        while n := os.readv(fd, [buf]):
            digest.update(buf[:n])
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)


class ContextSums:
    """Docker's sums of build context paths, as the daemon has them from the CLI's tar."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.root = ContextRoot(context)
        self._sums: dict[str, str] = {}
        self._first_links: dict[tuple[int, int], str] | None = None

    def _hardlink(self, path: str, st: os.stat_result) -> str:
        """The first name of ``path``'s inode in walk order if it is not ``path`` itself."""
        if st.st_nlink < 2 or not stat.S_ISREG(st.st_mode):
            return ""
        if self._first_links is None:
            first: dict[tuple[int, int], str] = {}
            for entry in self.context.entries:
                est = entry.stat
                if est.st_nlink > 1 and stat.S_ISREG(est.st_mode) and not entry.implicit:
                    first.setdefault((est.st_dev, est.st_ino), entry.path)
            self._first_links = first
        name = self._first_links.get((st.st_dev, st.st_ino), path)
        return "" if name == path else name

    def hash(self, path: str) -> str:
        """moby's ``archiveContext.Hash``: the sum of what ``path`` resolves to, else ``path``."""
        resolved = self.root.resolve(path)
        if resolved is None or resolved[0] == "." or resolved[2]:
            return path  # not an entry of the tar the CLI sent
        rel, st, _ = resolved
        found = self._sums.get(rel)
        if found is None:
            host = self.context.host_path(rel)
            link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
            found = entry_sum(
                rel, st, host, lazy=False, linkname=link, hardlink=self._hardlink(rel, st)
            )
            self._sums[rel] = found
        return found

    def describe(self, item: Item) -> str:
        """``file:<sum>`` or ``dir:<sum>`` of one source."""
        if item.kind == "file":
            return "file:" + self.hash(item.key)
        resolved = self.root.resolve(item.key)
        base = resolved[0] if resolved is not None else item.key
        paths = [] if base == "." else [base]
        paths += [entry.path for entry in self.context.below(base)]
        return _multi("dir", sorted(self.hash(p) for p in paths))


class StageSums:
    """Docker's sums of paths in another stage's rootfs (or a download's directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = StageRoot(root)
        self._sums: dict[str, str] = {}

    def _resolve(self, path: str) -> str:
        try:
            return "/".join(resolve_components(self.root, "/" + path))
        except UnsafePath as e:
            raise BuildError(str(e)) from None

    def hash(self, path: str) -> str:
        """moby's ``lazySource.Hash``: the sum of the resolved path, else that path itself."""
        rel = self._resolve(path)
        host = os.path.join(self.root, rel) if rel else os.fspath(self.root)
        try:
            st = os.lstat(host)
        except OSError:
            return rel or "."
        found = self._sums.get(rel)
        if found is None:
            link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
            found = entry_sum(rel or ".", st, host, lazy=True, linkname=link)
            self._sums[rel] = found
        return found

    def describe(self, item: Item) -> str:
        """``file:<sum>`` or ``dir:<sum>`` of one source."""
        if item.kind == "file":
            return "file:" + self.hash(item.key)
        base = self._resolve(item.key)
        prefix = base + "/" if base else ""
        paths = [base] if base else []
        paths += [prefix + member.rel for member in self.source.members(base or ".")]
        return _multi("dir", sorted(self.hash(p) for p in paths))


def download_sum(item: Item) -> str:
    """A download's bare sum: a lazy header of the daemon's temporary file (root, 0600)."""
    st = os.stat(item.host)
    fake = os.stat_result((stat.S_IFREG | 0o600, *st[1:4], 0, 0, *st[6:]))
    return entry_sum(item.name, fake, item.host, lazy=True)


def docker_description(items: tuple[Item, ...], root: Context | Path, fallback: str) -> str:
    """Docker's name of a COPY/ADD's sources, for its history entry.

    ``fallback`` is used when a source is something the legacy builder has no name for (a
    heredoc, which it does not support).
    """
    sums: ContextSums | StageSums = (
        ContextSums(root) if isinstance(root, Context) else StageSums(root)
    )
    names = []
    for item in items:
        if item.kind == "data":
            return fallback
        if item.key.startswith(("http://", "https://")):
            names.append(download_sum(item))
        else:
            names.append(sums.describe(item))
    return names[0] if len(names) == 1 else _multi("multi", names)
