"""Member names resolved as a chroot would resolve them: symlinks followed, never out of the root.

containerd applies ``a/b/c`` by cleaning the name (``..`` stops at the root, as ``/..`` is
``/``), then resolving its parent ``a/b`` with continuity's ``fs.RootPath``: a symlink met on
the way is followed, an absolute target starts again at the target root and a relative one
from the link's directory, and ``..`` never climbs above the root. A layer that relies on a
symlinked directory (``lib -> usr/lib``, ``/etc/alternatives/...``) therefore lands where a
container will see it, and a symlink aimed outside (``/etc``, ``../../..``) is read as if the
target were ``/``. Docker's applier agrees: it runs chrooted into the target.

Only the parent is resolved; the last component is the member itself and is never followed
(a file written over a symlink replaces the symlink). Resolution reads the tree through
directory fds without following anything, so the symlinks it follows are only read, never
traversed by the kernel: what it returns are plain names below the root.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Final

from strata.layer.fsops import PATH_FLAGS, lookup_dir

MAX_LINKS: Final = 255
"""Symlinks followed for one name before it is a loop (continuity's bound)."""


def clean(name: bytes) -> list[bytes]:
    """``name`` as components, cleaned lexically as Go's ``filepath.Clean`` of ``/`` + name.

    Empty and ``.`` components go; ``..`` removes the component before it and stops at the
    root. ``[]`` names the root itself.
    """
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part == b"..":
            if parts:
                parts.pop()
        elif part and part != b".":
            parts.append(part)
    return parts


def resolve(root_fd: int, parts: list[bytes]) -> list[bytes]:
    """The directory ``parts`` (below ``root_fd``), every symlink on it followed inside the root.

    The result has no symlinks and no ``..``: each component exists as a directory, or is
    missing, or is a non-directory the caller must replace (as everything after it is
    missing). More than `MAX_LINKS` symlinks raise ``OSError(ELOOP)``.
    """
    resolved: list[bytes] = []
    pending = parts[::-1]  # a stack: the next component is last
    links = 0
    # ``cur`` is an fd of ``resolved`` while every component of it is a directory (``found``
    # says how many are); past a missing one there is nothing more to look at.
    cur = os.open(b".", PATH_FLAGS, dir_fd=root_fd)
    found = 0
    try:
        while pending:
            name = pending.pop()
            if name == b"..":
                if resolved:
                    resolved.pop()
                    if found > len(resolved):
                        os.close(cur)
                        cur = _reopen(root_fd, resolved)
                        found = len(resolved)
                continue
            if not name or name == b".":
                continue
            if found < len(resolved):
                resolved.append(name)  # below a missing component: missing too
                continue
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                resolved.append(name)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                target = os.readlink(name, dir_fd=cur)
                if target.startswith(b"/"):
                    resolved.clear()
                    os.close(cur)
                    cur = _reopen(root_fd, resolved)
                    found = 0
                pending.extend(reversed(target.split(b"/")))
                continue
            resolved.append(name)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, PATH_FLAGS, dir_fd=cur)
                os.close(cur)
                cur = fd
                found += 1
    finally:
        os.close(cur)
    return resolved


def _reopen(root_fd: int, parts: list[bytes]) -> int:
    # ``parts`` were all directories when resolved: they hold no symlink to trip over.
    fd = lookup_dir(root_fd, parts)
    if fd is None:
        raise OSError(errno.ENOENT, "a directory vanished while resolving")
    return fd
