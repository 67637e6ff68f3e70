"""Volumes: ``volume create``, ``ls``, ``inspect``, ``rm`` and ``prune`` as calls.

Each returns `strata.volume.Volume` values (name, mountpoint, driver, labels, options,
created) and closes the store's database on return, as the other calls do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from strata.api.values import Root, store_root
from strata.volume import Volume, VolumeStore, prune_volumes

__all__ = ["create_volume", "prune_unused_volumes", "remove_volume", "volume", "volumes"]


def create_volume(
    name: str | None = None,
    *,
    driver: str = "local",
    labels: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
    root: Root = None,
) -> Volume:
    """``docker volume create``: a new volume (an anonymous name if none), or the existing one."""
    with store_root(root) as where:
        return VolumeStore(where.path, where.db).create(
            name, driver=driver, labels=labels, options=options
        )


def volumes(*, root: Root = None) -> list[tuple[Volume, int]]:
    """Every volume by name, with how many containers use it (``dangling``: none)."""
    with store_root(root) as where:
        store = VolumeStore(where.path, where.db)
        return [(v, len(store.users(v.name))) for v in store.all()]


def volume(name: str, *, root: Root = None) -> Volume:
    """One volume (`strata.errors.VolumeNotFound` if there is none of that name)."""
    with store_root(root) as where:
        return VolumeStore(where.path, where.db).get(name)


def remove_volume(name: str, *, force: bool = False, root: Root = None) -> bool:
    """``docker volume rm``: Conflict while a container uses it; whether it was removed."""
    with store_root(root) as where:
        return VolumeStore(where.path, where.db).remove(name, force=force)


def prune_unused_volumes(
    *, keep: Callable[[Volume], bool] = lambda v: False, root: Root = None
) -> tuple[list[str], int]:
    """``docker volume prune`` (20.10: named and anonymous volumes no container uses);
    the names removed and the bytes they held. ``keep`` spares what the filters exclude."""
    with store_root(root) as where:
        return prune_volumes(VolumeStore(where.path, where.db), keep)
