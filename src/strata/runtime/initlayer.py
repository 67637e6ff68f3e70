"""The init layer: a shared snapshot between an image and its containers, as Docker has.

The runtime bind-mounts files over /etc/hosts, /etc/resolv.conf and /etc/hostname, and runc
creates each mount point when the image has none. Made in the container's own layer, those
empty files would show up in ``diff`` and be carried into every ``commit``. They are made
once per image top instead, in a snapshot the container's layer stacks on, so a container's
layer holds only what its processes changed.
"""

from __future__ import annotations

from strata.errors import Conflict, NotFound
from strata.image.scratch import owned_name
from strata.snapshot import Snapshotter

MOUNT_POINTS = ("etc/hosts", "etc/resolv.conf", "etc/hostname")


def init_key(top: str | None) -> str:
    return f"init-{top or 'scratch'}"


def ensure_init_layer(snapshotter: Snapshotter, top: str | None) -> str:
    """The key of the committed init snapshot on ``top`` (made on first use)."""
    key = init_key(top)
    try:
        snapshotter.stat(key)
        return key
    except NotFound:
        pass
    active = owned_name("init-new")  # a killed command's is debris at once
    snapshotter.prepare(active, top)
    try:
        upper = snapshotter.upper(active)
        for relative in MOUNT_POINTS:
            path = upper / relative
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if not path.exists() and not path.is_symlink():
                path.touch(mode=0o644)
        try:
            snapshotter.commit(key, active)
        except Conflict:
            # Another container of the same image made it first.
            snapshotter.remove(active)
    except BaseException:
        try:
            snapshotter.stat(active)
        except NotFound:
            raise
        snapshotter.remove(active)
        raise
    return key
