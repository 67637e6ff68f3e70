"""Walking the build context: the files a build may read, and the size Docker reports for them.

The walk is Go's ``filepath.Walk`` as the Docker CLI runs it to make the context tar: names
sorted, symlinks not followed, ``.dockerignore`` applied with parent results carried down, an
excluded directory skipped unless an exception could re-include something below it. Sockets
are left out (Docker's tar skips them).

``Context.tar_size`` is the length of the uncompressed tar the CLI would send ("Sending build
context to Docker daemon  86.15MB"): per member a 512-byte header (plus a PAX header where
USTAR cannot hold the name, link target, size or time), file data padded to 512 bytes, data
once per hardlinked inode, and the two zero blocks that end the archive. The Dockerfile and
``.dockerignore`` are counted even when excluded: the CLI adds them back so the daemon can read
them, then the daemon drops them from what ``COPY`` sees.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

from strata.builder.context.files import read_build_file
from strata.builder.context.ignore import DEFAULT_SOURCE, IgnoreRules, MatchInfo
from strata.errors import BuildError
from strata.layer.tarwriter import pax_record

BLOCK: Final = 512
_NAME_SIZE: Final = 100
_PREFIX_SIZE: Final = 155
_MAX_OCTAL11: Final = 8**11
# The name the Docker CLI gives a Dockerfile from outside the context: ".dockerfile." + 20 hex.
_OUTSIDE_DOCKERFILE_NAME: Final = ".dockerfile." + "0" * 20
_UNITS: Final = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


class ContextEntry(NamedTuple):
    """One path of the context: ``path`` is relative and ``/``-separated, ``stat`` its lstat.

    ``implicit`` marks an excluded directory kept only because something below it is
    re-included (the daemon recreates it as a plain 0755 directory). A NamedTuple, not a
    dataclass: contexts have many thousands of entries and tuples are built 2.5x faster.
    """

    path: str
    stat: os.stat_result
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """The scanned build context: the entries ``COPY`` may read, in walk order."""

    root: Path
    rules: IgnoreRules
    entries: tuple[ContextEntry, ...]
    tar_size: int
    _index: dict[str, int] = field(repr=False, compare=False)
    _base: str = field(repr=False, compare=False, default="")

    def get(self, relpath: str) -> ContextEntry | None:
        """The entry at the cleaned relative path ``relpath``, None if absent or excluded."""
        index = self._index.get(relpath)
        return None if index is None else self.entries[index]

    def below(self, relpath: str) -> tuple[ContextEntry, ...]:
        """Every entry strictly below directory ``relpath`` (``.`` for the whole context)."""
        if relpath in (".", ""):
            return self.entries
        start = self._index.get(relpath)
        if start is None:
            return ()
        prefix = relpath + "/"
        end = start + 1
        entries = self.entries
        while end < len(entries) and entries[end].path.startswith(prefix):
            end += 1
        return entries[start + 1 : end]

    def host_path(self, relpath: str) -> str:
        """The path on the host of the context path ``relpath``."""
        return (self._base or os.fspath(self.root) + "/") + relpath


def human_size_precise(size: float) -> str:
    """go-units ``HumanSizeWithPrecision(size, 4)``: ``86.15MB``, ``2.048kB``, ``113B``."""
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{value:.4g}{_UNITS[unit]}"


def _split_ustar(name: bytes) -> bool:
    """Go's ``splitUSTARPath``: can a long ASCII name go into USTAR's prefix and name?"""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return False
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1 : length] == b"/":
        length -= 1
    cut = name.rfind(b"/", 0, length)
    suffix = len(name) - cut - 1
    return not (cut <= 0 or suffix > _NAME_SIZE or suffix == 0 or cut > _PREFIX_SIZE)


def member_size(name: str, st: os.stat_result, linkname: str = "", *, data: bool = True) -> int:
    """Bytes Go's archive/tar writes for this member (Docker's headers: PAX only if needed)."""
    if len(name) <= _NAME_SIZE and len(linkname) <= _NAME_SIZE and (name + linkname).isascii():
        size = st.st_size if data and stat.S_ISREG(st.st_mode) else 0
        if size < _MAX_OCTAL11 and 0 <= st.st_mtime < _MAX_OCTAL11:
            return BLOCK + -(-size // BLOCK) * BLOCK
    raw = os.fsencode(name)
    link = os.fsencode(linkname)
    size = st.st_size if data and stat.S_ISREG(st.st_mode) else 0
    mtime = int(st.st_mtime)
    total = BLOCK + -(-size // BLOCK) * BLOCK
    if (
        len(raw) <= _NAME_SIZE
        and raw.isascii()
        and len(link) <= _NAME_SIZE
        and link.isascii()
        and size < _MAX_OCTAL11
        and 0 <= mtime < _MAX_OCTAL11
    ):
        return total
    records = 0
    if (len(raw) > _NAME_SIZE or not raw.isascii()) and not _split_ustar(raw):
        records += len(pax_record(b"path", raw))
    if len(link) > _NAME_SIZE or not link.isascii():
        records += len(pax_record(b"linkpath", link))
    if size >= _MAX_OCTAL11:
        records += len(pax_record(b"size", b"%d" % size))
    if not 0 <= mtime < _MAX_OCTAL11:
        records += len(pax_record(b"mtime", b"%d" % mtime))
    if records:
        total += BLOCK + -(-records // BLOCK) * BLOCK
    return total


class _Sizer:
    """Adds up the context tar as the walk goes, hardlinks once per inode."""

    def __init__(self) -> None:
        self.total = 2 * BLOCK
        self._inodes: dict[tuple[int, int], str] = {}

    def add(self, root: str, path: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self.total += member_size(path + "/", st)
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(os.path.join(root, path))
            except OSError:
                target = ""
            self.total += member_size(path, st, target)
        elif stat.S_ISREG(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._inodes.get(key)
            if first is None:
                self._inodes[key] = path
                self.total += member_size(path, st)
            else:
                self.total += member_size(path, st, first, data=False)
        else:
            self.total += member_size(path, st)


def _listdir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise BuildError(f"error checking context: can't read {path}: {e.strerror}") from None


def _lstat(entry: os.DirEntry[str]) -> os.stat_result:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError as e:
        raise BuildError(f"error checking context: can't stat {entry.path}: {e.strerror}") from None


@dataclass(slots=True)
class _Frame:
    children: list[os.DirEntry[str]]
    prefix: str
    info: MatchInfo | None
    # An excluded directory walked for possible exceptions: added (as implicit) on first need.
    pending: ContextEntry | None = None
    index: int = 0


def _walk(root: str, rules: IgnoreRules, sizer: _Sizer) -> Iterator[ContextEntry]:
    frames = [_Frame(_listdir(root), "", None)]
    while frames:
        frame = frames[-1]
        if frame.index >= len(frame.children):
            frames.pop()
            continue
        child = frame.children[frame.index]
        frame.index += 1
        rel = frame.prefix + child.name
        st = _lstat(child)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            continue
        is_dir = stat.S_ISDIR(mode)
        info: MatchInfo | None = None
        if rules:
            excluded, info = rules.match(rel, frame.info)
            if excluded:
                if is_dir and not rules.can_skip_dir(rel):
                    pending = ContextEntry(rel, st, implicit=True)
                    frames.append(_Frame(_listdir(child.path), rel + "/", info, pending))
                continue
        for waiting in frames:
            if waiting.pending is not None:
                yield waiting.pending
                waiting.pending = None
        sizer.add(root, rel, st)
        yield ContextEntry(rel, st)
        if is_dir:
            frames.append(_Frame(_listdir(child.path), rel + "/", info))


def _build_file(root: Path, dockerfile: str | os.PathLike[str] | None) -> tuple[str, str]:
    """(host path, name in the tar) of the Dockerfile."""
    host = Path(dockerfile) if dockerfile is not None else root / "Dockerfile"
    try:
        rel = os.path.relpath(os.path.abspath(host), os.path.abspath(root))
    except ValueError:
        rel = os.pardir
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return os.fspath(host), _OUTSIDE_DOCKERFILE_NAME
    return os.fspath(host), rel


def scan_context(
    root: Path,
    rules: IgnoreRules | None = None,
    *,
    dockerfile: str | os.PathLike[str] | None = None,
) -> Context:
    """Walk the context at ``root`` with ``rules`` (none: everything is in).

    ``dockerfile`` is the path given with ``-f`` (absolute or relative to the current
    directory, possibly outside the context; None: ``root/Dockerfile``). It is counted in
    ``tar_size`` even if excluded, as is ``.dockerignore``. An unreadable context raises
    `BuildError`.
    """
    base = os.fspath(root)
    try:
        if not stat.S_ISDIR(os.stat(base).st_mode):
            raise BuildError(f"unable to prepare context: path {base!r} is not a directory")
    except OSError as e:
        raise BuildError(f"unable to prepare context: path {base!r}: {e.strerror}") from None
    rules = rules if rules is not None else IgnoreRules.empty()
    sizer = _Sizer()
    entries = tuple(_walk(base, rules, sizer))
    index = {entry.path: i for i, entry in enumerate(entries)}
    extra: list[tuple[str, str]] = [(os.path.join(base, DEFAULT_SOURCE), DEFAULT_SOURCE)]
    extra.append(_build_file(root, dockerfile))
    for host, name in extra:
        if name in index:
            continue
        try:
            st = os.stat(host)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sizer.total += member_size(name, st)
    return Context(Path(root), rules, entries, sizer.total, index, base.rstrip("/") + "/")


def load_ignore(root: Path) -> IgnoreRules:
    """The rules of ``root/.dockerignore`` (none if it does not exist)."""
    raw = read_build_file(Path(root) / DEFAULT_SOURCE, Path(root), DEFAULT_SOURCE)
    if raw is None:
        return IgnoreRules.empty()
    return IgnoreRules.parse(raw.decode("utf-8", "surrogateescape"), DEFAULT_SOURCE)
