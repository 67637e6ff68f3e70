"""Snapshots: directories stacked into filesystem views (overlayfs, or copies where it is missing).

Modelled on containerd's snapshotter: ``prepare`` / ``view`` / ``commit`` / ``remove`` over string
keys, metadata in the shared SQLite database, one directory per snapshot under
``<root>/snapshots/<id>``. Knows nothing of images or tar. Implementations: `overlay`, `copy`;
`select.default_snapshotter` picks one; `mount` performs the returned mounts.
"""

from __future__ import annotations

from strata.snapshot.model import DiffKind, Kind, Mount, SnapshotInfo, Snapshotter, Usage

__all__ = ["DiffKind", "Kind", "Mount", "SnapshotInfo", "Snapshotter", "Usage"]
