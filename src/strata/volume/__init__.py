"""Volumes: directories under ``volumes/<name>/_data`` that outlive the containers using them.

`strata.volume.store` owns the ``volumes`` and ``volume_users`` tables: a volume's row (driver,
labels, options, whether a container made it anonymously) and which containers use it. A
container's users are recorded in the transaction that records the container (the runtime passes
its connection to `use_in`), so a volume in use is never removed and ``volume rm`` of one says
which containers hold it, as Docker does. `strata.volume.copyup` fills an empty volume with the
image's content at its mount point on first use. This package knows nothing of images or
containers beyond their IDs.
"""

from __future__ import annotations

from strata.volume.store import Volume, VolumeStore, check_name, prune_volumes

__all__ = ["Volume", "VolumeStore", "check_name", "prune_volumes"]
