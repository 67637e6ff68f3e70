"""What a snapshot changed, in bytes, as Docker's overlay2 counts a container's SizeRw."""

from __future__ import annotations

import os

from strata.snapshot import Snapshotter


def changed_bytes(snapshotter: Snapshotter, key: str) -> int:
    """The sizes of what is not a directory among ``key``'s changes (a hardlinked file once):
    a container that wrote nothing has 0. Where the snapshot is a whole tree (the copying
    snapshotter), what its directory holds on disk stands in for it."""
    if snapshotter.diff_kind != "overlay":
        return snapshotter.usage(key).size
    total = 0
    seen: set[tuple[int, int]] = set()
    for where, dirs, files in os.walk(snapshotter.upper(key)):
        links = [d for d in dirs if os.path.islink(os.path.join(where, d))]
        for name in (*files, *links):
            st = os.lstat(os.path.join(where, name))
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
