"""Finding what a ``COPY``/``ADD`` reads: sources resolved in their root, globs, directories.

A source root is either the build context (only what ``.dockerignore`` lets through; symlinks
followed as if the context were ``/``) or another stage's root filesystem (``--from``; paths
resolve inside it, ``..`` stops at its root). Rules follow Docker's legacy builder
(``builder/dockerfile/copy.go``): a leading ``/`` and ``./`` are dropped; a path that climbs
out of the context is refused; a source with ``*``, ``?`` or ``[`` matches every path of the
same depth whose segments match (Go's ``filepath.Match``), each match being a source of its own;
a symlink named as a source is followed, one found inside a directory is copied as a link; a
directory source stands for its contents.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NamedTuple, Protocol

from strata.builder.context import globs
from strata.builder.context.scan import Context
from strata.errors import BuildError, UnsafePath
from strata.runtime.rootfs import resolve_components

MAX_SYMLINKS: Final = 40

ItemKind = Literal["file", "dir", "data"]


class Member(NamedTuple):
    """One entry below a directory source, in walk order (parents first).

    ``rel`` is its path below the directory, ``host`` where to read it, ``link`` a symlink's
    target; ``implicit`` marks a context directory kept only for what is re-included below it.
    (A NamedTuple: a context copy makes thousands, and tuples are much cheaper to build.)
    """

    rel: str
    host: str
    st: os.stat_result
    link: str = ""
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One source after globbing: a file, a directory's contents, or bytes (heredoc, URL).

    ``key`` names it for people; ``name`` is the file name it gets in a destination
    directory; ``mode``/``mtime_ns`` are the source's (a heredoc's 0644, a download's 0600).
    ``extract`` says ``ADD`` may unpack it if it is an archive.
    """

    kind: ItemKind
    key: str
    name: str
    host: str = ""
    st: os.stat_result | None = None
    data: bytes | None = None
    mode: int = 0o644
    mtime_ns: int = 0
    members: tuple[Member, ...] = ()
    extract: bool = False


def trim_source(orig: str) -> str:
    """The source path as Docker uses it: one leading ``/`` and one ``./`` dropped."""
    path = orig[1:] if orig.startswith("/") else orig
    return path[2:] if path.startswith("./") else path


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


class SourceRoot(Protocol):
    """Where ``COPY`` sources are read: the context, or a stage's rootfs."""

    def describe_missing(self, command: str, path: str) -> BuildError:
        """The error for a source that does not exist (Docker's words)."""
        ...

    def check_inside(self, command: str, path: str) -> None:
        """Raise `BuildError` if ``path`` leaves the root where that is forbidden."""
        ...

    def resolve(self, path: str) -> tuple[str, os.stat_result, bool] | None:
        """(resolved relative path, lstat, implicit) with symlinks followed inside the root."""
        ...

    def host_path(self, rel: str) -> str:
        """The host path of a resolved relative path (``.`` is the root)."""
        ...

    def members(self, rel: str) -> list[Member]:
        """The entries below directory ``rel``, in walk order."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching ``pattern`` segment by segment, in walk order."""
        ...


class ContextRoot:
    """Sources read from the build context (what ``.dockerignore`` excludes is absent)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def describe_missing(self, command: str, path: str) -> BuildError:
        """Docker's message for a source missing from (or excluded out of) the context."""
        return BuildError(
            f"{command} failed: file not found in build context or excluded by .dockerignore: "
            f"stat {path}: file does not exist"
        )

    def check_inside(self, command: str, path: str) -> None:
        """A path that climbs out of the context is refused before anything is looked up."""
        cleaned = globs.clean(path)
        if cleaned == ".." or cleaned.startswith("../"):
            raise BuildError(f"{command} failed: forbidden path outside the build context: {path}")

    def resolve(self, path: str) -> tuple[str, os.stat_result, bool] | None:
        """(relative path, lstat, implicit) of ``path`` with symlinks followed in the context."""
        context = self.context
        pending = deque(_components(path))
        resolved: list[str] = []
        hops = 0
        entry = None
        while pending:
            name = pending.popleft()
            if name == "..":
                if resolved:
                    resolved.pop()
                entry = None
                continue
            candidate = "/".join([*resolved, name])
            entry = context.get(candidate)
            if entry is None:
                return None
            if stat.S_ISLNK(entry.stat.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise BuildError(f"{path}: too many levels of symbolic links")
                try:
                    target = os.readlink(context.host_path(candidate))
                except OSError:
                    return None
                if target.startswith("/"):
                    resolved = []
                pending.extendleft(reversed(_components(target)))
                entry = None
                continue
            resolved.append(name)
        rel = "/".join(resolved)
        if not rel:
            try:
                return ".", os.stat(context.root), False
            except OSError:
                return None
        entry = entry if entry is not None and entry.path == rel else context.get(rel)
        if entry is None:
            return None
        return rel, entry.stat, entry.implicit

    def host_path(self, rel: str) -> str:
        """The host path of context path ``rel``."""
        return os.fspath(self.context.root) if rel == "." else self.context.host_path(rel)

    def members(self, rel: str) -> list[Member]:
        """The entries below directory ``rel``, relative to it."""
        cut = 0 if rel == "." else len(rel) + 1
        base = self.context.host_path("")
        is_link = stat.S_ISLNK
        out = []
        for path, st, implicit in self.context.below(rel):
            host = base + path
            link = _readlink(host) if is_link(st.st_mode) else ""
            out.append(Member(path[cut:], host, st, link, implicit))
        return out

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching ``pattern``, in walk order."""
        segments = pattern.split("/")
        depth = len(segments) - 1
        out = []
        for entry in self.context.entries:
            path = entry.path
            if path.count("/") != depth:
                continue
            parts = path.split("/")
            if all(globs.match(seg, part) for seg, part in zip(segments, parts, strict=True)):
                out.append(path)
        return out


class StageRoot:
    """Sources read from another stage's root filesystem (``COPY --from``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe_missing(self, command: str, path: str) -> BuildError:
        """Docker's message for a source missing from the stage."""
        return BuildError(f"{command} failed: stat {path}: file does not exist")

    def check_inside(self, command: str, path: str) -> None:
        """Nothing to check: ``..`` stops at the stage's root."""

    def resolve(self, path: str) -> tuple[str, os.stat_result, bool] | None:
        """``path`` with symlinks followed as if the stage's rootfs were ``/``."""
        try:
            parts = resolve_components(self.root, "/" + path)
        except UnsafePath as e:
            raise BuildError(str(e)) from None
        try:
            st = os.lstat(self.root.joinpath(*parts))
        except OSError:
            return None
        return "/".join(parts) or ".", st, False

    def host_path(self, rel: str) -> str:
        """The host path of stage path ``rel``."""
        return os.fspath(self.root) if rel == "." else os.path.join(self.root, rel)

    def members(self, rel: str) -> list[Member]:
        """The entries below directory ``rel``: depth first, names sorted (``filepath.Walk``)."""
        out: list[Member] = []
        stack = [(iter(_scandir(self.host_path(rel))), "")]
        while stack:
            entries, prefix = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                raise BuildError(f"cannot stat {entry.path}: {e.strerror}") from None
            if stat.S_ISSOCK(st.st_mode):
                continue
            link = _readlink(entry.path) if stat.S_ISLNK(st.st_mode) else ""
            member = Member(prefix + entry.name, entry.path, st, link)
            out.append(member)
            if stat.S_ISDIR(st.st_mode):
                stack.append((iter(_scandir(entry.path)), member.rel + "/"))
        return out

    def glob(self, pattern: str) -> list[str]:
        """Stage paths matching ``pattern``; only directories that can match are entered."""
        segments = pattern.split("/")
        out: list[str] = []

        def walk(host_dir: str, prefix: str, depth: int) -> None:
            for entry in _scandir(host_dir):
                if not globs.match(segments[depth], entry.name):
                    continue
                rel = prefix + entry.name
                if depth == len(segments) - 1:
                    out.append(rel)
                elif entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rel + "/", depth + 1)

        walk(os.fspath(self.root), "", 0)
        return out


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError as e:
        raise BuildError(f"cannot read symlink {path}: {e.strerror}") from None
