"""The values and the seam of the snapshot package: kinds, mounts, infos, usage, `Snapshotter`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["DiffKind", "Kind", "Mount", "SnapshotInfo", "Snapshotter", "Usage"]

DiffKind = Literal["overlay", "full"]


class Kind(StrEnum):
    """What a snapshot is for: written to, immutable and stackable, or looked at."""

    ACTIVE = "active"
    COMMITTED = "committed"
    VIEW = "view"


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount(2) to perform, in the shape of containerd's ``mount.Mount``.

    ``options`` mixes flag words (``ro``, ``rbind``, ``nosuid``...) and filesystem data
    (``lowerdir=...``); `strata.snapshot.mount.mount_all` tells them apart.
    """

    type: str
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What the metadata says about one snapshot. ``created`` is UTC ISO 8601 with a ``Z``."""

    key: str
    parent: str | None
    kind: Kind
    created: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk used by a snapshot's own directory: bytes allocated and distinct inodes."""

    size: int
    inodes: int


class Snapshotter(Protocol):
    """Directories stacked into filesystem views, after containerd's snapshotter.

    Keys are free-form strings. ``prepare`` makes an ACTIVE snapshot whose changes go to its own
    directory; ``commit`` turns it into a COMMITTED one (immutable, a possible parent); ``view``
    makes a read-only VIEW of a committed parent. Parents must be committed. Errors:
    `InvalidArgument` (bad key, wrong kind), `NotFound`, `Conflict` (key in use, has children).
    """

    @property
    def name(self) -> str:
        """The implementation's name: ``"overlay"`` or ``"copy"``."""
        ...

    @property
    def diff_kind(self) -> DiffKind:
        """What `upper` holds: an overlay upper dir, or a full tree to compare with the parent."""
        ...

    def prepare(
        self, key: str, parent: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create the ACTIVE snapshot ``key`` on top of ``parent``; return how to mount it."""
        ...

    def view(
        self, key: str, parent: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create the read-only VIEW ``key`` of ``parent``; return how to mount it."""
        ...

    def mounts(self, key: str) -> list[Mount]:
        """How to mount the ACTIVE or VIEW snapshot ``key`` again."""
        ...

    def commit(self, name: str, key: str, *, labels: Mapping[str, str] | None = None) -> None:
        """Turn the ACTIVE ``key`` into the COMMITTED ``name``; ``key`` is gone afterwards."""
        ...

    def remove(
        self, key: str, *, unless: Callable[[sqlite3.Connection], bool] | None = None
    ) -> None:
        """Delete ``key`` and its directory; `Conflict` while other snapshots stack on it, or
        if ``unless`` (asked inside the removing transaction) says so."""
        ...

    def stat(self, key: str) -> SnapshotInfo:
        """The metadata of ``key``."""
        ...

    def walk(self) -> Iterator[SnapshotInfo]:
        """Every snapshot, ordered by key."""
        ...

    def usage(self, key: str) -> Usage:
        """Disk used by the snapshot's own directory (not its parents')."""
        ...

    def upper(self, key: str) -> Path:
        """The directory holding what ``key`` changed (see `diff_kind`)."""
        ...

    def cleanup(self) -> int:
        """Remove what crashed commands left behind; return how many entries went."""
        ...

    def has_leftovers(self) -> bool:
        """Whether a creation or removal left a directory that `cleanup` would look at (one
        listing, no lock: the directory may belong to a live command)."""
        ...
