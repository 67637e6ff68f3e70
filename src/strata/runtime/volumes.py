"""A container's volumes over its life: planned at ``create``, recorded with it, mounted (and
filled from the image) at each start, released and (``rm -v``, ``--rm``) removed with it.

The volume rows and the container's use of them are written in the transaction that records
the container (`record_hook`), so ``volume rm`` never removes a volume a container was just
given; the directories a failed create made are taken back (`discard`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from strata.errors import InvalidArgument, StrataError
from strata.runtime.mounts import (
    BIND,
    TMPFS,
    VOLUME,
    MountPoint,
    inherited,
    parse_mount_flag,
    parse_tmpfs_flag,
    parse_volume_flag,
    parse_volumes_from,
    resolve,
    tmpfs_mount,
)
from strata.runtime.options import RunOptions
from strata.runtime.spec import BindMount, TmpfsMount
from strata.store.db import Database
from strata.volume.store import VolumeStore, data_dir, ensure_in, new_name, use_in


@dataclass(frozen=True, slots=True)
class Planned:
    """What a create records of its mounts (see `strata.runtime.config.ContainerConfig`)."""

    mounts: tuple[MountPoint, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    binds: tuple[str, ...] = ()  # the -v arguments that are not anonymous (HostConfig.Binds)
    config_volumes: tuple[str, ...] = ()  # Config.Volumes: the image's and -v's anonymous paths

    @property
    def volume_names(self) -> list[str]:
        return [m.source for m in self.mounts if m.kind == VOLUME]


def check_options(options: RunOptions) -> None:
    """Refuse a bad ``-v``, ``--mount``, ``--tmpfs`` or ``--volumes-from`` before any work."""
    plan_flags(options)
    for text in options.volumes_from:
        parse_volumes_from(text)


def plan_flags(
    options: RunOptions,
) -> tuple[list[MountPoint], list[MountPoint], dict[str, str]]:
    volume_flags = [parse_volume_flag(v) for v in options.volumes]
    mount_flags = [parse_mount_flag(m) for m in options.mounts]
    tmpfs: dict[str, str] = {}
    for text in options.tmpfs:
        destination, opts = parse_tmpfs_flag(text)
        tmpfs[destination] = opts
    return volume_flags, mount_flags, tmpfs


def plan(
    options: RunOptions,
    image_volumes: Sequence[str],
    volumes_of: Callable[[str], Sequence[MountPoint]],
) -> Planned:
    """The container's mounts: the flags parsed, ``--volumes-from`` containers' mounts taken
    (``volumes_of`` gives a container's, or raises ContainerNotFound), anonymous volumes named.
    A -v bind's missing source is made (Docker's -v); a --mount bind's must exist."""
    volume_flags, mount_flags, tmpfs = plan_flags(options)
    taken: list[MountPoint] = []
    for text in options.volumes_from:
        name, readonly = parse_volumes_from(text)
        taken += inherited(volumes_of(name), readonly)
    # Config.Volumes: the image's VOLUMEs and -v's anonymous paths, each an anonymous volume
    # where nothing else is mounted (Docker makes them after everything else).
    anonymous = [m for m in volume_flags if m.anonymous]
    given = {m.destination for m in anonymous}
    image = [p if p.startswith("/") else "/" + p for p in image_volumes]
    anonymous += [MountPoint(VOLUME, p, anonymous=True, copy=True) for p in image if p not in given]
    resolved = resolve(
        inherited_mounts=taken,
        volume_flags=[m for m in volume_flags if not m.anonymous],
        mount_flags=mount_flags,
        tmpfs=tmpfs,
        anonymous=anonymous,
    )
    named: list[MountPoint] = []
    for mount in resolved:
        if mount.kind == BIND and not Path(mount.source).exists():
            if mount.spec is not None:  # --mount
                raise InvalidArgument(
                    'invalid mount config for type "bind": bind source path does not exist:'
                    f" {mount.source}"
                )
            Path(mount.source).mkdir(parents=True, exist_ok=True)
        unnamed = mount.kind == VOLUME and not mount.source
        named.append(replace(mount, source=new_name()) if unnamed else mount)
    binds = tuple(v for v, m in zip(options.volumes, volume_flags, strict=True) if not m.anonymous)
    return Planned(
        mounts=tuple(named),
        tmpfs=tmpfs,
        binds=binds,
        config_volumes=tuple(sorted({*image, *given})),
    )


def record_hook(
    root: Path, container_id: str, planned: Planned, inherited_names: Iterable[str]
) -> Callable[[sqlite3.Connection], None]:
    """For the container's recording transaction: its volumes made (a name used for the first
    time) and its use of each recorded; a ``--volumes-from`` volume removed meanwhile fails
    the create (VolumeNotFound)."""
    borrowed = set(inherited_names)

    def hook(conn: sqlite3.Connection) -> None:
        for mount in planned.mounts:
            if mount.kind != VOLUME:
                continue
            if mount.source not in borrowed:
                ensure_in(conn, root, mount.source, anonymous=mount.anonymous)
            use_in(conn, mount.source, container_id)

    return hook


def discard(root: Path, db: Database, planned: Planned) -> None:
    """After a failed create: the volume directories it made go (those without a row)."""
    names = planned.volume_names
    if names:
        with contextlib.suppress(StrataError, OSError):
            VolumeStore(root, db).discard_unrecorded(names)


def remove_anonymous(root: Path, db: Database, mounts: Iterable[MountPoint]) -> None:
    """``rm -v`` and ``--rm``: the container's anonymous volumes go, unless another container
    still uses one (Docker says nothing of those)."""
    names = [m.source for m in mounts if m.kind == VOLUME and m.anonymous]
    if names:
        with contextlib.suppress(StrataError, OSError):
            VolumeStore(root, db).remove_unused(names)


def start_mounts(
    root: Path,
    rootfs: Path,
    mounts: Sequence[MountPoint],
    tmpfs: dict[str, str],
) -> tuple[tuple[BindMount, ...], tuple[TmpfsMount, ...]]:
    """The bundle's binds and tmpfs mounts, each empty volume first filled from the image."""
    binds: list[BindMount] = []
    tmpfs_mounts: list[TmpfsMount] = []
    for mount in mounts:
        if mount.kind == TMPFS:
            tmpfs_mounts.append(TmpfsMount(mount.destination, mount.options))
        elif mount.kind == BIND:
            binds.append(BindMount(Path(mount.source), mount.destination, readonly=not mount.rw))
        else:
            data = data_dir(root, mount.source)
            if not data.is_dir():
                from strata.errors import VolumeNotFound

                raise VolumeNotFound(f"get {mount.source}: no such volume")
            if mount.copy:
                _copy_up(rootfs, mount.destination, data)
            binds.append(BindMount(data, mount.destination, readonly=not mount.rw))
    for destination, options in tmpfs.items():
        made = tmpfs_mount(destination, options)
        tmpfs_mounts.append(TmpfsMount(destination, made.options))
    return tuple(binds), tuple(tmpfs_mounts)


def _copy_up(rootfs: Path, destination: str, data: Path) -> None:
    """Docker's copy-up: an empty volume takes the image's content at its mount point."""
    from strata.runtime.rootfs import resolve_components
    from strata.volume.copyup import copy_into_empty

    source = rootfs.joinpath(*resolve_components(rootfs, destination))
    if os.path.isdir(source) and not os.path.islink(source):
        copy_into_empty(source, data)
