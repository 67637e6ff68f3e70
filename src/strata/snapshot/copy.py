"""The copying snapshotter: the fallback where overlayfs is unavailable (containerd's "native").

Every snapshot's ``snapshots/<id>/fs`` is a whole tree: ``prepare`` copies the parent's tree
(which already holds the whole chain) with ``cp -a --reflink=auto``, keeping owners, modes,
times, xattrs, hardlinks, device nodes and fifos, and sharing blocks where the filesystem can
(btrfs, XFS). ``commit`` keeps the directory. Mounts are bind mounts; a view binds its parent's
tree read-only, so it costs nothing. `upper` is a full tree to compare with the parent's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from strata.errors import ToolError
from strata.snapshot.base import DirSnapshotter
from strata.snapshot.metadata import Row
from strata.snapshot.model import Kind, Mount

__all__ = ["CopySnapshotter", "copy_tree"]


def copy_tree(source: Path, target: Path) -> None:
    """Copy the contents and the attributes of the directory ``source`` onto ``target``."""
    try:
        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", f"{source}/.", str(target)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except OSError as err:
        raise ToolError(f"cannot run cp to copy {source}: {err.strerror or err}") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[0] if lines else f"exit status {proc.returncode}"
        raise ToolError(f"cannot copy {source} to {target}: {reason}")


class CopySnapshotter(DirSnapshotter):
    """Snapshots as full copies under ``root`` (see the module docstring)."""

    name = "copy"
    _diff = "full"

    def _populate(self, new: Path, kind: Kind, parents: list[Row]) -> None:
        fs = new / "fs"
        fs.mkdir()
        os.chmod(fs, 0o755)
        if kind is Kind.ACTIVE and parents:
            copy_tree(self.path(parents[0].id) / "fs", fs)

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        if row.kind is Kind.ACTIVE:
            return [Mount("bind", str(self.path(row.id) / "fs"), ("rbind", "rw"))]
        return [Mount("bind", str(self._view_upper(row, parents)), ("rbind", "ro"))]

    def _view_upper(self, row: Row, parents: list[Row]) -> Path:
        # A view changes nothing, so its full tree is its parent's.
        return self.path((parents[0] if parents else row).id) / "fs"
