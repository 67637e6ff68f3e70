"""The two spellings of a deletion: OCI whiteout files in a tar, overlayfs's in an upper dir.

In a layer tar, ``DIR/.wh.NAME`` deletes ``DIR/NAME`` of the layers below and
``DIR/.wh..wh..opq`` hides everything below in ``DIR`` (both only affect lower layers, whatever
their order in the tar). In an overlay upper dir the same facts are a 0/0 character device
``NAME`` and the xattr ``trusted.overlay.opaque="y"`` (``user.overlay.opaque`` when mounted
with ``userxattr``). `Deletions` applies a layer's whiteouts in either spelling; the member
builders here write them.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from strata.errors import UnsafePath
from strata.layer.entry import REGTYPE, TarEntry, display_name
from strata.layer.fsops import CREATE, LOOKUP, DirCache, fd_path, list_names, remove

PREFIX: Final = b".wh."
OPAQUE: Final = b".wh..wh..opq"
META_PREFIX: Final = b".wh..wh."
"""AUFS bookkeeping (``.wh..wh.plnk`` and friends) shares the prefix: as a last component
(other than the opaque marker) it is skipped; what a layer puts below such a directory is
ordinary content, which containerd and Docker's overlay2 driver keep."""

OVERLAY_OPAQUE: Final = b"trusted.overlay.opaque"
USER_OVERLAY_OPAQUE: Final = b"user.overlay.opaque"
OVERLAY_XATTR_PREFIX: Final = b"trusted.overlay."
# Upper-dir attributes whose meaning lives in a lower layer: a layer cannot carry them.
OVERLAY_REDIRECT: Final = (b"trusted.overlay.redirect", b"user.overlay.redirect")
OVERLAY_METACOPY: Final = (b"trusted.overlay.metacopy", b"user.overlay.metacopy")

# Whiteout members carry no metadata worth keeping (appliers ignore it), so it is fixed: the
# diff ID then depends on which names were deleted, not on when.
_MODE: Final = 0o600


def whiteout_entry(directory: bytes, name: bytes) -> TarEntry:
    """The member deleting ``name`` in ``directory`` (``b""`` for the root)."""
    path = b"%s/%s%s" % (directory, PREFIX, name) if directory else PREFIX + name
    return TarEntry(path, REGTYPE, _MODE, 0, 0, 0)


def opaque_entry(directory: bytes) -> TarEntry:
    """The member making ``directory`` opaque (hiding everything below it)."""
    return TarEntry(
        b"%s/%s" % (directory, OPAQUE) if directory else OPAQUE, REGTYPE, _MODE, 0, 0, 0
    )


class Deletions:
    """Applies one layer's whiteouts and opaque markers to its target.

    "delete" mode removes what lower layers put there, sparing ``added`` (every path this
    layer put in place, implicit parents included), so the order of the tar does not matter.
    "overlay" mode writes overlayfs's spelling: a 0/0 device, or the opaque xattr on a
    directory this layer already made (which must hide the lower one all the same).
    """

    def __init__(self, dirs: DirCache, *, overlay: bool, source: str) -> None:
        self.dirs = dirs
        self.overlay = overlay
        self.source = source
        self.added: set[bytes] = set()
        self.count = 0
        self.skipped = 0
        self.opaque_root = False

    def apply(self, name: bytes, parts: list[bytes]) -> None:
        """Apply the whiteout member ``name`` (its clean path ``parts``)."""
        self.count += 1
        base, parent = parts[-1], parts[:-1]
        if base == OPAQUE:
            self.opaque(parent)
            return
        if base.startswith(META_PREFIX):
            self.count -= 1
            self.skipped += 1
            return
        victim = base[len(PREFIX) :]
        if not victim or victim in (b".", b".."):
            raise UnsafePath(
                f"{self.source}: member {display_name(name)}: whiteout of "
                f"{display_name(victim) or 'nothing'} is not a name in its directory"
            )
        if self.overlay:
            dir_fd = self.dirs.get(parent, CREATE)
            if dir_fd is None:
                return  # a non-directory of this layer is in the way: it hides the lower one
            try:
                os.mknod(victim, stat.S_IFCHR, 0, dir_fd=dir_fd)
            except FileExistsError:
                # This layer put something there, which stays; a directory must still hide
                # the lower one's content.
                st = os.stat(victim, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.setxattr(
                        fd_path(dir_fd, victim), OVERLAY_OPAQUE, b"y", follow_symlinks=False
                    )
            return
        dir_fd = self.dirs.get(parent, LOOKUP)
        if dir_fd is None:
            return  # nothing below by that name (a symlink in the way is not a directory)
        victim_parts = [*parent, victim]
        if b"/".join(victim_parts) not in self.added:
            self.dirs.forget(victim_parts)
            remove(dir_fd, victim)
            return
        try:
            st = os.stat(victim, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self.purge(victim_parts)

    def opaque(self, parts: list[bytes]) -> None:
        if self.overlay:
            dir_fd = self.dirs.get(parts, CREATE)
            if dir_fd is not None:
                self.opaque_root = self.opaque_root or not parts
                os.setxattr(fd_path(dir_fd), OVERLAY_OPAQUE, b"y")
            return
        if self.dirs.get(parts, LOOKUP) is not None:
            self.opaque_root = self.opaque_root or not parts
            self.purge(parts)

    def purge(self, parts: list[bytes]) -> None:
        """Remove from directory ``parts`` everything this layer did not add ("delete" mode)."""
        pending = [parts]
        while pending:
            current = pending.pop()
            dir_fd = self.dirs.get(current, LOOKUP)
            if dir_fd is None:
                continue
            prefix = b"/".join(current) + b"/" if current else b""
            for name in list_names(dir_fd):
                child = [*current, name]
                if prefix + name in self.added:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(child)
                else:
                    self.dirs.forget(child)
                    remove(dir_fd, name)
