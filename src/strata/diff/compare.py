"""The one differ: what an active snapshot changed against its parent, as a canonical layer tar.

Used by ``commit`` (a container's writable snapshot) and by a build (a step's snapshot). For the
overlay snapshotter the snapshot's upper dir *is* its change set: it is written as a layer tar
directly (overlayfs's whiteouts and opaque dirs become their OCI forms). For the copying
snapshotter the snapshot's full tree is compared with its parent's. Either way the tar is
canonical, so the same changes give the same diff ID.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

from strata.layer.diff import write_tar_from_dirs, write_tar_from_upper
from strata.layer.stats import LayerStats
from strata.snapshot import Snapshotter
from strata.store.owned import owned_prefix

__all__ = ["compare_snapshot", "lower_tree"]


def _changes_only(snapshotter: Snapshotter) -> bool:
    return snapshotter.diff_kind == "overlay"


def compare_snapshot(
    snapshotter: Snapshotter,
    key: str,
    out: BinaryIO,
    scratch: Path,
    *,
    clamp_mtime: int | None = None,
) -> LayerStats:
    """Write what active snapshot ``key`` changed to ``out`` as a canonical layer tar.

    ``scratch`` is a directory for a moment's empty lower tree (a copied snapshot with no
    parent), named as its owner's. ``clamp_mtime`` caps the times written (reproducible builds).
    """
    upper = snapshotter.upper(key)
    if _changes_only(snapshotter):
        return write_tar_from_upper(upper, out, clamp_mtime=clamp_mtime)
    parent = snapshotter.stat(key).parent
    with tempfile.TemporaryDirectory(dir=scratch, prefix=owned_prefix("empty")) as empty:
        lower = snapshotter.upper(parent) if parent else Path(empty)
        return write_tar_from_dirs(lower, upper, out, clamp_mtime=clamp_mtime)


def lower_tree(snapshotter: Snapshotter, parent: str | None) -> Path | None:
    """The tree a snapshot on ``parent`` must be compared with to tell what it changed: the
    parent's full tree for a copying snapshotter; None where a snapshot's own directory holds
    only its changes (overlay), or there is no parent."""
    if _changes_only(snapshotter) or parent is None:
        return None
    return snapshotter.upper(parent)
