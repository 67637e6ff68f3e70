"""What every directory-backed snapshotter shares: keys, metadata, and the life of its directories.

A new snapshot is built in a locked ``snapshots/new-*`` directory outside any transaction (a copy
can take a while, and the database is shared by the whole store), then, in one write transaction,
checked again, given the next id, renamed to ``snapshots/<id>`` and recorded. Anything failing on
the way removes what was made. Removal renames ``<id>`` to a locked ``rm-<id>-*`` and deletes the
row in one transaction, then deletes the tree, so an id freed by the commit is free on disk too.
A crash can only leave unlocked ``new-*`` / ``rm-*`` dirs or an ``<id>`` dir without a row, which
`DirSnapshotter.cleanup` recognises and removes (or, for ``rm-*`` whose row survived, restores).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from strata.errors import Conflict, InvalidArgument, NotFound, StoreError
from strata.snapshot import metadata
from strata.snapshot.dirs import disk_usage, lock_dir, make_locked_dir, remove_tree, unlock
from strata.snapshot.metadata import Row, check_key, check_labels
from strata.snapshot.model import DiffKind, Kind, Mount, SnapshotInfo, Usage
from strata.store.db import Database

__all__ = ["DirSnapshotter"]

_NEW = "new-"
_TRASH = "rm-"


def _os_error(action: str, err: OSError) -> StoreError:
    where = f" {err.filename}" if err.filename else ""
    return StoreError(f"{action}:{where}: {err.strerror or err}")


class DirSnapshotter:
    """The shared part of `OverlaySnapshotter` and `CopySnapshotter` (see the module docstring).

    Subclasses fill the new directory (`_populate`), say how to mount a snapshot (`_mounts`) and
    may hook the moments a directory gets its id (`_attach`) and is thrown away (`_detach`).
    """

    name: ClassVar[str] = ""
    _diff: ClassVar[DiffKind] = "full"

    def __init__(self, root: Path, db: Database) -> None:
        self.root = Path(root)
        self._db = db
        self._dir = self.root / "snapshots"
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise _os_error("cannot create the snapshot directory", err) from None

    @property
    def diff_kind(self) -> DiffKind:
        """What `upper` holds: ``"overlay"`` (an upper dir) or ``"full"`` (a whole tree)."""
        return self._diff

    def path(self, snapshot_id: int) -> Path:
        """The directory of the snapshot with directory id ``snapshot_id``."""
        return self._dir / str(snapshot_id)

    # -- hooks ------------------------------------------------------------------------------

    def _check_stack(self, key: str, kind: Kind, parents: list[Row]) -> None:
        """Refuse a stack the implementation cannot mount (before anything is made)."""

    def _populate(self, new: Path, kind: Kind, parents: list[Row]) -> None:
        raise NotImplementedError

    def _attach(self, final: Path, snapshot_id: int) -> None:
        """Called inside the creating transaction once the directory has its final name."""

    def _detach(self, path: Path) -> None:
        """Called before a snapshot directory (at any name) is deleted."""

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        raise NotImplementedError

    def _view_upper(self, row: Row, parents: list[Row]) -> Path:
        return self.path(row.id) / "fs"

    def _cleanup_extra(self, ids: set[int]) -> int:
        return 0

    # -- creating ---------------------------------------------------------------------------

    def prepare(
        self, key: str, parent: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create the ACTIVE snapshot ``key`` on top of the committed ``parent``."""
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(
        self, key: str, parent: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create the read-only VIEW ``key`` of the committed ``parent``."""
        return self._create(Kind.VIEW, key, parent, labels)

    def _parents(self, conn: sqlite3.Connection, key: str, parent: str | None) -> list[Row]:
        if metadata.get(conn, key) is not None:
            raise Conflict(f"snapshot {key} already exists")
        if parent is None:
            return []
        chain = metadata.lineage(conn, parent)
        if not chain:
            raise NotFound(f"cannot create snapshot {key}: parent snapshot {parent} not found")
        if chain[0].kind is not Kind.COMMITTED:
            raise InvalidArgument(
                f"cannot create snapshot {key}: parent {parent} is {chain[0].kind}, not committed"
            )
        return chain

    def _create(
        self, kind: Kind, key: str, parent: str | None, labels: Mapping[str, str] | None
    ) -> list[Mount]:
        check_key(key)
        if parent is not None:
            check_key(parent, "parent snapshot key")
        clean_labels = check_labels(labels)
        with self._db.read() as conn:
            parents = self._parents(conn, key, parent)
        self._check_stack(key, kind, parents)
        try:
            staged, lock = make_locked_dir(self._dir, _NEW)
        except OSError as err:
            raise _os_error(f"cannot create snapshot {key}", err) from None
        current = staged
        try:
            self._populate(staged, kind, parents)
            with self._db.transaction() as conn:
                if [r.id for r in self._parents(conn, key, parent)] != [r.id for r in parents]:
                    raise Conflict(f"cannot create snapshot {key}: {parent} changed meanwhile")
                new_id = metadata.next_id(conn)
                final = self.path(new_id)
                if os.path.lexists(final):
                    # No row has this id, so this is what a crash left behind: ours to reuse.
                    self._discard(final)
                os.rename(staged, final)
                current = final
                self._attach(final, new_id)
                row = Row(key, new_id, parent, kind, metadata.now(), clean_labels)
                metadata.insert(conn, row)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                self._discard(current)
            if isinstance(exc, OSError):
                raise _os_error(f"cannot create snapshot {key}", exc) from None
            raise
        finally:
            unlock(lock)
        return self._mounts(row, parents)

    # -- changing ---------------------------------------------------------------------------

    def commit(self, name: str, key: str, *, labels: Mapping[str, str] | None = None) -> None:
        """Turn the ACTIVE ``key`` into the COMMITTED ``name`` (labels merged over key's)."""
        check_key(name, "snapshot name")
        check_key(key)
        extra = check_labels(labels)
        with self._db.transaction() as conn:
            row = metadata.get(conn, key)
            if row is None:
                raise NotFound(f"cannot commit snapshot {key}: not found")
            if row.kind is not Kind.ACTIVE:
                raise InvalidArgument(f"cannot commit snapshot {key}: it is {row.kind}, not active")
            if metadata.get(conn, name) is not None:
                raise Conflict(f"cannot commit snapshot {key} as {name}: {name} already exists")
            metadata.rename_committed(conn, key, name, metadata.now(), {**row.labels, **extra})

    def remove(
        self, key: str, *, unless: Callable[[sqlite3.Connection], bool] | None = None
    ) -> None:
        """Delete ``key``'s row and directory; `Conflict` while snapshots stack on it.

        ``unless`` is asked inside the removing transaction (gc's "is it leased?"): if it says
        yes, `Conflict` and nothing is removed. Asked there, no lease taken after it can miss.
        """
        check_key(key)
        trash: Path | None = None
        final: Path | None = None
        lock: int | None = None
        try:
            with self._db.transaction(reclaim=True, what=f"removing snapshot {key}") as conn:
                row = metadata.get(conn, key)
                if row is None:
                    raise NotFound(f"cannot remove snapshot {key}: not found")
                if unless is not None and unless(conn):
                    raise Conflict(f"cannot remove snapshot {key}: it is in use")
                kids = metadata.children(conn, key, limit=1)
                if kids:
                    count = metadata.count_children(conn, key)
                    more = f" and {count - 1} more" if count > 1 else ""
                    raise Conflict(
                        f"cannot remove snapshot {key}: snapshot {kids[0]}{more} stack on it"
                    )
                final = self.path(row.id)
                lock = lock_dir(final)
                if lock is not None:
                    trash = self._dir / f"{_TRASH}{row.id}-{secrets.token_hex(4)}"
                    os.rename(final, trash)
                metadata.delete(conn, key)
        except BaseException as exc:
            if trash is not None and final is not None:
                with contextlib.suppress(OSError):
                    os.rename(trash, final)
            unlock(lock)
            if isinstance(exc, OSError):
                raise _os_error(f"cannot remove snapshot {key}", exc) from None
            raise
        try:
            if trash is not None:
                # The row is gone: a failure here only leaves garbage for `cleanup`.
                with contextlib.suppress(OSError):
                    self._discard(trash)
        finally:
            unlock(lock)

    def _discard(self, path: Path) -> None:
        self._detach(path)
        remove_tree(path)

    def has_leftovers(self) -> bool:
        try:
            return any(name.startswith((_NEW, _TRASH)) for name in os.listdir(self._dir))
        except FileNotFoundError:
            return False

    def cleanup(self) -> int:
        """Remove what crashed commands left: dirs without rows, unlocked new-/rm- dirs, links.

        An ``rm-<id>-*`` dir whose row survived (a crash inside `remove`) is put back instead.
        Returns how many entries were removed.
        """
        removed = 0
        try:
            with self._db.transaction() as conn:
                ids = metadata.ids(conn)
                for entry in sorted(os.listdir(self._dir)):
                    path = self._dir / entry
                    if entry.isdigit():
                        if int(entry) not in ids:
                            self._discard(path)
                            removed += 1
                        continue
                    if not entry.startswith((_NEW, _TRASH)):
                        continue
                    lock = lock_dir(path, wait=False)
                    if lock is None:
                        continue  # in use by a live process
                    try:
                        if entry.startswith(_TRASH):
                            owner = entry[len(_TRASH) :].split("-", 1)[0]
                            home = self._dir / owner
                            if owner.isdigit() and int(owner) in ids and not home.exists():
                                os.rename(path, home)
                                continue
                        self._discard(path)
                        removed += 1
                    finally:
                        unlock(lock)
                removed += self._cleanup_extra(ids)
        except OSError as err:
            raise _os_error("cannot clean up snapshots", err) from None
        return removed

    # -- reading ----------------------------------------------------------------------------

    def _lineage(self, key: str, action: str) -> list[Row]:
        check_key(key)
        with self._db.read() as conn:
            chain = metadata.lineage(conn, key)
        if not chain:
            raise NotFound(f"{action} {key}: not found")
        return chain

    def mounts(self, key: str) -> list[Mount]:
        """How to mount the ACTIVE or VIEW snapshot ``key``."""
        chain = self._lineage(key, "cannot mount snapshot")
        if chain[0].kind is Kind.COMMITTED:
            raise InvalidArgument(
                f"cannot mount snapshot {key}: it is committed; view or prepare a child of it"
            )
        return self._mounts(chain[0], chain[1:])

    def stat(self, key: str) -> SnapshotInfo:
        """The metadata of ``key``; `NotFound` if there is no such snapshot."""
        check_key(key)
        with self._db.read() as conn:
            row = metadata.get(conn, key)
        if row is None:
            raise NotFound(f"snapshot {key}: not found")
        return row.info()

    def walk(self) -> Iterator[SnapshotInfo]:
        """Every snapshot, ordered by key (read at the call, not while iterating)."""
        with self._db.read() as conn:
            found = metadata.rows(conn)
        return iter([row.info() for row in found])

    def usage(self, key: str) -> Usage:
        """Disk used by ``key``'s own directory (not its parents')."""
        check_key(key)
        with self._db.read() as conn:
            row = metadata.get(conn, key)
        if row is None:
            raise NotFound(f"cannot measure snapshot {key}: not found")
        try:
            return disk_usage(self.path(row.id))
        except OSError as err:
            raise _os_error(f"cannot measure snapshot {key}", err) from None

    def upper(self, key: str) -> Path:
        """The directory holding what ``key`` changed (see `diff_kind`)."""
        chain = self._lineage(key, "snapshot")
        row = chain[0]
        if row.kind is Kind.VIEW:
            return self._view_upper(row, chain[1:])
        return self.path(row.id) / "fs"
