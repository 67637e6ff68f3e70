"""``COPY`` and ``ADD``: what they read, their cache key, and writing it into the new layer.

Two steps, so the cache can be asked in between:

1. `plan_copy` resolves the sources (context, ``--from`` stage, heredocs, ``ADD`` URLs, which
   are downloaded here because their bytes are part of the key) and sums them into a
   `SourceSet` (digest for the key, table for explanations, ``file:``/``dir:``/``multi:``
   description for the history entry).
2. `apply_copy` writes the plan into a mounted rootfs, with Docker's rules: a directory source
   copies its contents; a file lands in the destination directory under its own name when the
   destination ends in ``/`` or is a directory, else at the destination; missing parents are
   made 0755; files keep mode and mtime; everything is owned 0:0 unless ``--chown``, except
   that ``COPY --from`` without ``--chown`` keeps the owners it finds (Docker 20.10's
   ``preserveOwnership``; the plan's owner is then None);
   ``--chmod`` applies to copied files and directories; ``ADD`` unpacks local tar archives.

`copy_sources` does both. A plan holding downloads must be closed (``with plan_copy(...)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strata.builder import fetch
from strata.builder.archive import extract_archive, is_archive
from strata.builder.context import globs
from strata.builder.context.hashcache import HashCache
from strata.builder.context.scan import Context
from strata.builder.context.sums import SourceGroup, SourceSet, record, source_set
from strata.builder.copytree import copy_tree
from strata.builder.owner import ROOT, Owner, chowned_mode
from strata.builder.rootwriter import RootWriter
from strata.builder.sources import (
    ContextRoot,
    Item,
    Member,
    SourceRoot,
    StageRoot,
    trim_source,
)
from strata.errors import BuildError
from strata.image.scratch import owned_prefix

Source = str | tuple[str, bytes]
"""A path, glob or URL as written, or a heredoc as ``(name, content)``."""

_UNNAMED: Final = "__unnamed__"


@dataclass(frozen=True, slots=True)
class CopyStats:
    """What `apply_copy` wrote: entries (files, links, nodes) and file bytes."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A resolved ``COPY``/``ADD``: ``dest`` is absolute (a trailing ``/`` kept)."""

    command: str
    dest: str
    items: tuple[Item, ...]
    sources: SourceSet
    owner: Owner | None  # None: each entry keeps its source's owner (COPY --from)
    chmod: int | None
    tempdir: str | None = None

    @property
    def description(self) -> str:
        """``file:<hex>``, ``dir:<hex>`` or ``multi:<hex>`` for the history entry."""
        return self.sources.description

    def close(self) -> None:
        """Remove downloaded sources."""
        if self.tempdir is not None:
            shutil.rmtree(self.tempdir, ignore_errors=True)

    def __enter__(self) -> CopyPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalize_dest(workdir: str, dest: str) -> str:
    """The absolute destination (moby's ``normalizeDest``): relative to ``workdir``."""
    if dest.startswith("/"):
        return dest
    joined = globs.clean("/" + workdir + "/" + dest)
    # "." and "dir/." name a directory, as a trailing "/" does (BuildKit's rule; the classic
    # builder gets there because WORKDIR made the directory).
    if (dest.endswith("/") or dest == "." or dest.endswith("/.")) and not joined.endswith("/"):
        joined += "/"
    return joined


def _own(owner: Owner | None, st: os.stat_result | None) -> Owner:
    """The owner an entry gets: the step's, else (preserving) the source's, else root."""
    if owner is not None:
        return owner
    return Owner(st.st_uid, st.st_gid) if st is not None else ROOT


def _member_record(m: Member, owner: Owner | None, chmod: int | None) -> str:
    """The record of a non-regular member (files are done inline, see `_group`)."""
    mode = m.st.st_mode
    owner = _own(owner, m.st)
    if stat.S_ISDIR(mode):
        dir_mode = chmod if chmod is not None else (0o755 if m.implicit else stat.S_IMODE(mode))
        return record("d", dir_mode, owner.uid, owner.gid, 0, "-")
    if stat.S_ISLNK(mode):
        return record("l", 0o777, owner.uid, owner.gid, 0, m.link)
    kind = "p" if stat.S_ISFIFO(mode) else ("c" if stat.S_ISCHR(mode) else "b")
    rdev = f"{os.major(m.st.st_rdev)},{os.minor(m.st.st_rdev)}"
    return record(kind, stat.S_IMODE(mode), owner.uid, owner.gid, 0, rdev)


def _group(
    item: Item, digests: dict[str, str], owner: Owner | None, chmod: int | None
) -> SourceGroup:
    ids = f"{owner.uid}:{owner.gid}" if owner is not None else ""
    if item.kind == "dir":
        prefix = "" if item.key == "." else item.key + "/"
        entries: list[tuple[str, str, str]] = []
        size = 0
        is_reg = stat.S_ISREG
        # The hot loop of a no-change rebuild: regular files' records built inline.
        for m in item.members:
            st = m.st
            if is_reg(st.st_mode):
                mode = chmod if chmod is not None else st.st_mode & 0o7777
                who = ids or f"{st.st_uid}:{st.st_gid}"
                rec = f"f {mode:04o} {who} {st.st_size} {digests[m.host]}"
                size += st.st_size
            else:
                rec = _member_record(m, owner, chmod)
            entries.append((prefix + m.rel, m.rel, rec))
        return SourceGroup("dir", tuple(entries), size)
    if item.data is not None:
        size, digest = len(item.data), hashlib.sha256(item.data).hexdigest()
    else:
        assert item.st is not None
        size, digest = item.st.st_size, digests[item.host]
    own = _own(owner, item.st)
    rec = record("f", chmod if chmod is not None else item.mode, own.uid, own.gid, size, digest)
    return SourceGroup("file", ((item.key, item.name, rec),), size)


def _local_items(root: SourceRoot, orig: str, command: str, extract: bool) -> list[Item]:
    path = trim_source(orig)
    root.check_inside(command, path)
    if globs.has_wildcards(path):
        try:
            for segment in path.split("/"):
                globs.check(segment)
        except globs.BadPattern:
            raise BuildError(f"{command} failed: invalid pattern {orig!r}") from None
        matches = root.glob(path)
    else:
        matches = [path]
    items = []
    for match in matches:
        resolved = root.resolve(match)
        if resolved is None:
            raise root.describe_missing(command, path)
        rel, st, _ = resolved
        key = globs.clean(match)
        host = root.host_path(rel)
        if stat.S_ISDIR(st.st_mode):
            items.append(Item("dir", key, "", host, st, members=tuple(root.members(rel))))
        elif stat.S_ISREG(st.st_mode):
            name = os.path.basename(globs.clean(match))
            item = Item("file", key, name, host, st, None, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            items.append(_with_extract(item, extract))
        else:
            raise BuildError(f"{command} failed: {path}: not a regular file or directory")
    return items


def _with_extract(item: Item, extract: bool) -> Item:
    return dataclasses.replace(item, extract=True) if extract else item


def _url_item(url: str, dest: str, tempdir: str, timeout: float) -> tuple[Item, str]:
    got = fetch.download(url, Path(tempdir), timeout=timeout)
    name = got.filename
    if not name:
        if dest.endswith("/"):
            raise BuildError(f"ADD failed: cannot determine filename for source {url}")
        name = _UNNAMED
    st = os.stat(got.path)
    item = Item("file", url, name, os.fspath(got.path), st, None, 0o600, got.mtime * 10**9)
    return item, got.sha256


def plan_copy(
    sources: Sequence[Source],
    dest: str,
    *,
    root: Context | Path,
    command: str = "COPY",
    workdir: str = "/",
    owner: Owner | None = ROOT,
    chmod: int | None = None,
    hashes: HashCache | None = None,
    tempdir: Path | None = None,
    timeout: float = fetch.DEFAULT_TIMEOUT,
) -> CopyPlan:
    """Resolve ``sources`` for ``COPY``/``ADD`` into ``dest`` and sum them.

    ``root`` is the scanned build context or, for ``--from``, the other stage's rootfs.
    ``dest`` is as written (relative to ``workdir`` unless absolute). ``owner`` is the result
    of `resolve_chown` (default 0:0; None keeps the sources' owners), ``chmod`` of
    `parse_chmod`. ``hashes`` remembers file
    hashes across builds; downloads go to a new directory under ``tempdir``.
    """
    if command not in ("COPY", "ADD"):
        raise BuildError(f"unknown copy instruction {command!r}")
    source_root: SourceRoot = ContextRoot(root) if isinstance(root, Context) else StageRoot(root)
    cache = hashes if hashes is not None else HashCache(None)
    items: list[Item] = []
    known: dict[str, str] = {}
    download_dir: str | None = None
    try:
        for source in sources:
            if isinstance(source, tuple):
                name, data = source
                items.append(Item("data", name, name, data=data, mode=0o644))
            elif fetch.is_url(source):
                if command != "ADD":
                    raise BuildError(f"{command} failed: source can't be a URL for {command}")
                if download_dir is None:
                    download_dir = tempfile.mkdtemp(prefix=owned_prefix("add"), dir=tempdir)
                # One directory per download (Docker's too): two URLs may name the same file.
                own_dir = tempfile.mkdtemp(dir=download_dir)
                item, digest = _url_item(source, dest, own_dir, timeout)
                items.append(item)
                known[item.host] = digest
            else:
                items.extend(_local_items(source_root, source, command, command == "ADD"))
        if not items:
            raise BuildError(f"{command} failed: no source files were specified")
        if len(items) > 1 and not dest.endswith("/"):
            raise BuildError(
                f"When using {command} with more than one source file, "
                "the destination must be a directory and end with a /"
            )
        files: list[tuple[str, os.stat_result]] = []
        for item in items:
            if item.kind == "file" and item.st is not None and item.host not in known:
                files.append((item.host, item.st))
            for m in item.members:
                if stat.S_ISREG(m.st.st_mode):
                    files.append((m.host, m.st))
        known.update(cache.hash_many(files))
        groups = [_group(item, known, owner, chmod) for item in items]
    except BaseException:
        if download_dir is not None:
            shutil.rmtree(download_dir, ignore_errors=True)
        raise
    final = normalize_dest(workdir, dest)
    return CopyPlan(command, final, tuple(items), source_set(groups), owner, chmod, download_dir)


def _apply_item(writer: RootWriter, plan: CopyPlan, item: Item) -> None:
    parts = writer.resolve(plan.dest)
    if item.kind == "dir":
        # Docker: parents made root-owned, the destination itself (if new) given the owner.
        created: list[bool] = []
        fd = writer.open_dir(parts, create=ROOT, created=created)
        assert fd is not None
        try:
            if created and created[-1]:
                mode = plan.chmod if plan.chmod is not None else 0o755
                writer.finish_dir(fd, mode, plan.owner or ROOT, None)
            copy_tree(writer, fd, parts, item.members, plan.owner, plan.chmod)
        finally:
            os.close(fd)
        return
    if item.extract and is_archive(item.host):
        fd = writer.open_dir(parts, create=ROOT)
        assert fd is not None
        os.close(fd)
        extract_archive(writer, parts, item.host, item.key)
        return
    st = writer.lstat(parts)
    if plan.dest.endswith("/") or not parts or (st is not None and stat.S_ISDIR(st.st_mode)):
        parent, name = parts, item.name
    else:
        parent, name = parts[:-1], parts[-1]
    # Docker's MkdirAllAndChownNew: missing parents of a file get the step's owner.
    fd = writer.open_dir(parent, create=plan.owner or ROOT)
    assert fd is not None
    owner = _own(plan.owner, item.st)
    try:
        mode = plan.chmod if plan.chmod is not None else stat.S_IMODE(item.mode)
        if plan.owner is not None:
            mode = chowned_mode(mode)
        if item.data is not None:
            writer.put_bytes(fd, name, item.data, mode, owner, item.mtime_ns)
        else:
            writer.put_file(fd, name, item.host, mode, owner, item.mtime_ns)
    finally:
        os.close(fd)


def apply_copy(plan: CopyPlan, rootfs: Path) -> CopyStats:
    """Write ``plan`` into the root filesystem mounted at ``rootfs``."""
    with RootWriter(rootfs, plan.command) as writer:
        for item in plan.items:
            try:
                _apply_item(writer, plan, item)
            except OSError as e:
                where = e.filename if isinstance(e.filename, str) else item.key
                raise BuildError(f"{plan.command} failed: {where}: {e.strerror or e}") from None
        return CopyStats(writer.files, writer.bytes)


def copy_sources(
    sources: Sequence[Source],
    dest: str,
    rootfs: Path,
    *,
    root: Context | Path,
    command: str = "COPY",
    workdir: str = "/",
    owner: Owner | None = ROOT,
    chmod: int | None = None,
    hashes: HashCache | None = None,
    tempdir: Path | None = None,
    timeout: float = fetch.DEFAULT_TIMEOUT,
) -> tuple[CopyPlan, CopyStats]:
    """`plan_copy` then `apply_copy` (the plan is closed: downloads are gone)."""
    with plan_copy(
        sources,
        dest,
        root=root,
        command=command,
        workdir=workdir,
        owner=owner,
        chmod=chmod,
        hashes=hashes,
        tempdir=tempdir,
        timeout=timeout,
    ) as plan:
        return plan, apply_copy(plan, rootfs)
