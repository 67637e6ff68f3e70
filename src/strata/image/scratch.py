"""Scratch that names its owner: what one command makes for itself alone, and its removal once
that command has died.

A command's private working state — a directory under ``<root>/tmp/`` where it mounts a view or
writes a temporary file, an active snapshot it extracts a layer into or mounts a step on — is
named ``<kind>-<pid>.<start>.<pidns>-<random>`` (`owned_name`, `owned_prefix`, made by
`strata.store.owned`, where `strata.diff` names its snapshots too), the owner written as a lease
names it (`strata.store.leases`: the start time tells a recycled PID apart).
Nothing else ever uses it, so once its owner has ended it is debris, at once and for certain:
``system check`` reports it, and the next command that makes scratch of its own removes it
first (`remove_dead_scratch`), which costs a listing of ``tmp/`` and one query of the
non-committed snapshots (both hold one entry per command at work).

A directory is removed only once nothing is mounted at or below it, so that removing it can
never reach into a mounted snapshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import NotFound, StrataError
from strata.snapshot import Kind, metadata
from strata.snapshot.mount import mount_points, unmount
from strata.store.owned import owned_name, owned_prefix, owner_gone, owner_of

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.snapshot import Snapshotter

__all__ = [
    "SCRATCH",
    "dead_snapshots",
    "dead_tmp",
    "owned_name",
    "owned_prefix",
    "owner_gone",
    "owner_of",
    "remove_dead_scratch",
    "remove_tree",
    "scratch_root",
]

SCRATCH = "tmp"


def scratch_root(root: Path) -> Path:
    """``<root>/tmp``, made if needed (mode 0700)."""
    path = root / SCRATCH
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def dead_tmp(root: Path) -> list[Path]:
    """The entries of ``<root>/tmp`` whose owner has ended."""
    try:
        names = sorted(os.listdir(root / SCRATCH))
    except FileNotFoundError:
        return []
    return [root / SCRATCH / name for name in names if owner_gone(name)]


def remove_tree(path: Path) -> None:
    """Unmount everything at or below ``path`` (deepest first), then remove it.

    `StrataError` if something stays mounted there: nothing below a mount is ever removed.
    """
    real = Path(os.path.realpath(path))
    for point in sorted(mount_points(real), key=lambda p: len(p.parts), reverse=True):
        unmount(point, detach=True)
    if mount_points(real):
        raise StrataError(f"{path}: still mounted, left in place")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def dead_snapshots(root: StoreRoot) -> list[str]:
    """The keys of active snapshots and views whose owner has ended."""
    with root.db.read() as conn:
        rows = metadata.rows(conn)
    return [r.key for r in rows if r.kind is not Kind.COMMITTED and owner_gone(r.key)]


def remove_dead_scratch(
    root: StoreRoot, snapshotter: Callable[[], Snapshotter] | None = None
) -> int:
    """Remove what commands that died left for themselves: ``tmp/`` entries, then their
    snapshots (best effort: what stays is the next ``system check``'s to report). Returns how
    many things went. ``snapshotter`` gives the caller's snapshotter, asked only if needed."""
    removed = 0
    for path in dead_tmp(root.path):
        with contextlib.suppress(StrataError, OSError):
            remove_tree(path)
            removed += 1
    try:
        keys = dead_snapshots(root)
    except StrataError:
        return removed
    if not keys:
        return removed
    if snapshotter is None:
        from strata.snapshot.select import default_snapshotter

        snapshots = default_snapshotter(root.path, root.db)
    else:
        snapshots = snapshotter()
    for key in keys:
        with contextlib.suppress(NotFound, StrataError, OSError):
            snapshots.remove(key)
            removed += 1
    return removed
