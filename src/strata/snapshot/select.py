"""Choosing a store's snapshotter: overlayfs when it works here, copies otherwise.

The choice is probed once per store root (mount a tiny overlay under the root, delete a lower
file through it, look for the whiteout) and written to ``snapshots/.snapshotter``: snapshots made
by one implementation are unreadable to the other, so a store keeps its first choice even if the
host changes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

from strata.errors import InvalidArgument, StoreError, StrataError
from strata.snapshot.copy import CopySnapshotter
from strata.snapshot.dirs import make_locked_dir, remove_tree, unlock
from strata.snapshot.model import Snapshotter
from strata.snapshot.mount import mount_all, unmount
from strata.snapshot.overlay import OverlaySnapshotter, overlay_mount
from strata.store.db import Database
from strata.store.space import is_no_space

__all__ = ["CHOICE_FILE", "NAMES", "default_snapshotter", "open_snapshotter", "overlay_works"]

CHOICE_FILE: Final = ".snapshotter"
NAMES: Final = ("overlay", "copy")


def open_snapshotter(name: str, root: Path, db: Database) -> Snapshotter:
    """The snapshotter called ``name`` (``"overlay"`` or ``"copy"``) for the store at ``root``."""
    if name == "overlay":
        return OverlaySnapshotter(root, db)
    if name == "copy":
        return CopySnapshotter(root, db)
    raise InvalidArgument(f"unknown snapshotter {name!r}: expected one of {', '.join(NAMES)}")


def overlay_works(where: Path) -> bool:
    """Whether an overlay with two lowers, an upper and whiteouts can be mounted in ``where``."""
    if any(c in str(where) for c in ",:"):
        return False
    try:
        probe, lock = make_locked_dir(where, "new-probe-")
    except OSError:
        return False
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            (probe / name).mkdir()
        (probe / "lower1" / "a").write_bytes(b"a")
        (probe / "lower2" / "b").write_bytes(b"b")
        mount = overlay_mount([probe / "lower2", probe / "lower1"], probe / "upper", probe / "work")
        mount_all([mount], probe / "merged")
        try:
            seen = sorted(os.listdir(probe / "merged"))
            os.unlink(probe / "merged" / "a")
            whiteout = os.lstat(probe / "upper" / "a")
        finally:
            unmount(probe / "merged", detach=True)
        return seen == ["a", "b"] and stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    except (OSError, StrataError):
        return False
    finally:
        with contextlib.suppress(OSError, StrataError):
            unmount(probe / "merged", detach=True)
            remove_tree(probe)
        unlock(lock)


def _remembered(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: cannot read the snapshotter choice: {err}") from None
    if text not in NAMES:
        raise StoreError(f"{path}: unknown snapshotter {text!r}")
    return text


def _remember(path: Path, name: str) -> None:
    temp = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        temp.write_text(name + "\n")
        os.replace(temp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            temp.unlink()
        if is_no_space(err):
            # A full disk must not stop `system df` or `prune`: no snapshot exists yet (or the
            # choice would be recorded), so the choice is simply probed again next time.
            return
        raise StoreError(f"{path}: cannot record the snapshotter choice: {err.strerror}") from None


def default_snapshotter(root: Path, db: Database) -> Snapshotter:
    """The store's snapshotter: the one recorded for ``root``, else probed and recorded."""
    snapshots = Path(root) / "snapshots"
    try:
        snapshots.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create {snapshots}: {err.strerror or err}") from None
    choice = snapshots / CHOICE_FILE
    name = _remembered(choice)
    if name is None:
        name = "overlay" if overlay_works(snapshots) else "copy"
        _remember(choice, name)
    return open_snapshotter(name, Path(root), db)
