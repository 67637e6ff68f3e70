"""The overlayfs snapshotter, after containerd's ``snapshots/overlay`` and Docker's overlay2.

Each snapshot owns ``snapshots/<id>/fs`` (its overlay upper dir, or the layer's files once
committed) and, when active, ``snapshots/<id>/work``. Lower layers are named through short links
``l/<8 characters> -> ../snapshots/<id>/fs`` (the name is kept in ``snapshots/<id>/link``) so that
`mount.mount_all`, working from the root, fits 128 and more layers in the one page of options that
mount(2) takes. Mount shapes: no parent -> a bind of the snapshot's own ``fs``; a view of one
parent -> a read-only bind of that parent's ``fs``; otherwise an overlay (with no upper for views).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import stat
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from strata.errors import InvalidArgument, StoreError
from strata.snapshot.base import DirSnapshotter
from strata.snapshot.metadata import Row
from strata.snapshot.model import Kind, Mount
from strata.snapshot.mount import PAGE_SIZE
from strata.store.db import Database

__all__ = [
    "FIXED_OPTIONS",
    "LINK_DIR",
    "LINK_LENGTH",
    "MAX_LOWERS",
    "OverlaySnapshotter",
    "max_depth",
    "options_size",
    "overlay_mount",
]

LINK_DIR: Final = "l"
LINK_LENGTH: Final = 8
_LINK_CHARS: Final = string.ascii_uppercase + string.digits
_LINK_NAME: Final = re.compile(f"[A-Z0-9]{{{LINK_LENGTH}}}")
MAX_LOWERS: Final = 500  # OVL_MAX_STACK in fs/overlayfs
# Pinned rather than left to the kernel's build defaults, so that upper() always holds what a
# layer tar can say: no redirect xattrs for renamed directories (rename(2) of a lower directory
# then fails with EXDEV and mv/cp copy instead), no metadata-only copy-ups (whose data would stay
# in the lower layer), and no index (which ties an upper dir to one exact set of lowers).
FIXED_OPTIONS: Final = ("index=off", "redirect_dir=off", "metacopy=off")


def overlay_mount(
    lowers: Sequence[str | Path], upper: Path | None = None, work: Path | None = None
) -> Mount:
    """An overlay `Mount` of ``lowers`` (topmost first), writable when ``upper`` and ``work``."""
    options = [*FIXED_OPTIONS, "lowerdir=" + ":".join(str(p) for p in lowers)]
    if upper is not None and work is not None:
        options += [f"upperdir={upper}", f"workdir={work}"]
    return Mount("overlay", "overlay", tuple(options))


def options_size(layers: int) -> int:
    """Bytes of mount(2) options for an active snapshot on ``layers`` lowers, at worst.

    That is with the paths `mount.mount_all` passes, relative to the root, and an id of 19 digits.
    """
    worst = Path("snapshots") / str(2**63 - 1)
    lowers = [f"{LINK_DIR}/{'X' * LINK_LENGTH}"] * layers
    return len(",".join(overlay_mount(lowers, worst / "fs", worst / "work").options))


@functools.cache
def max_depth() -> int:
    """The most lower layers an active snapshot may have: what fits a page, within the kernel's."""
    per_layer = len(LINK_DIR) + 1 + LINK_LENGTH + 1  # "l/XXXXXXXX:"
    fixed = options_size(1) - per_layer + 1
    # fixed - 1 + per_layer * n must stay below a page (mount(2) needs the terminating NUL).
    return min(MAX_LOWERS, (PAGE_SIZE - fixed) // per_layer)


class OverlaySnapshotter(DirSnapshotter):
    """Snapshots as overlayfs layers under ``root`` (see the module docstring)."""

    name = "overlay"
    _diff = "overlay"

    def __init__(self, root: Path, db: Database) -> None:
        if any(c in str(root) for c in ",:"):
            # Both separate overlay options; an escape exists for ':' only, and not everywhere.
            raise InvalidArgument(f"store root {root}: overlay needs a path without ',' or ':'")
        super().__init__(root, db)
        self._links = self.root / LINK_DIR
        self._links_s = str(self._links)
        self._dir_s = str(self._dir)
        try:
            self._links.mkdir(mode=0o700, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create {self._links}: {err.strerror or err}") from None

    def _check_stack(self, key: str, kind: Kind, parents: list[Row]) -> None:
        if len(parents) > max_depth():
            raise InvalidArgument(
                f"cannot create snapshot {key}: {len(parents)} layers below it, more than an"
                f" overlay mount takes here ({max_depth()}: {options_size(len(parents))} bytes of"
                f" options for a {PAGE_SIZE}-byte page)"
            )

    def _populate(self, new: Path, kind: Kind, parents: list[Row]) -> None:
        fs = new / "fs"
        fs.mkdir()
        if kind is not Kind.ACTIVE:
            os.chmod(fs, 0o755)
            return
        (new / "work").mkdir()
        os.chmod(new / "work", 0o711)
        if parents:
            # The root of a merged overlay takes the upper dir's owner and mode.
            st = os.stat(self.path(parents[0].id) / "fs")
            os.chown(fs, st.st_uid, st.st_gid)
            os.chmod(fs, stat.S_IMODE(st.st_mode))
        else:
            os.chmod(fs, 0o755)

    def _attach(self, final: Path, snapshot_id: int) -> None:
        for _ in range(32):
            name = "".join(secrets.choice(_LINK_CHARS) for _ in range(LINK_LENGTH))
            try:
                os.symlink(f"../snapshots/{snapshot_id}/fs", self._links / name)
            except FileExistsError:
                continue
            try:
                (final / "link").write_text(name)
            except BaseException:
                os.unlink(self._links / name)
                raise
            return
        raise StoreError(f"cannot pick a free short link name in {self._links}")

    def _detach(self, path: Path) -> None:
        name = self._read_link(path)
        if name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._links / name)

    @staticmethod
    def _read_link(path: Path | str) -> str | None:
        # Plain os calls: a mount of a 128-layer stack reads 128 of these.
        try:
            fd = os.open(os.path.join(path, "link"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            name = os.read(fd, LINK_LENGTH + 1).decode("ascii", "replace")
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(name) != LINK_LENGTH or not _LINK_NAME.fullmatch(name):
            return None
        return name

    def _lower(self, row: Row) -> str:
        name = self._read_link(os.path.join(self._dir_s, str(row.id)))
        if name is None:
            raise StoreError(f"snapshot {row.key}: its short link is missing from {self._links}")
        return os.path.join(self._links_s, name)

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        own = self.path(row.id)
        if not parents:
            flag = "rw" if row.kind is Kind.ACTIVE else "ro"
            return [Mount("bind", str(own / "fs"), ("rbind", flag))]
        if row.kind is Kind.VIEW and len(parents) == 1:
            return [Mount("bind", str(self.path(parents[0].id) / "fs"), ("rbind", "ro"))]
        lowers = [self._lower(p) for p in parents]
        if row.kind is Kind.VIEW:
            return [overlay_mount(lowers)]
        return [overlay_mount(lowers, own / "fs", own / "work")]

    def _cleanup_extra(self, ids: set[int]) -> int:
        removed = 0
        for name in sorted(os.listdir(self._links)):
            link = self._links / name
            try:
                target = os.readlink(link)
            except OSError:
                continue  # not a link: not ours to judge
            parts = target.split("/")
            owner = parts[2] if len(parts) == 4 else ""
            if (
                parts[:2] == ["..", "snapshots"]
                and parts[3:] == ["fs"]
                and owner.isdigit()
                and int(owner) in ids
                and self._read_link(self._dir / owner) == name
            ):
                continue
            os.unlink(link)
            removed += 1
        return removed
