"""Snapshots against their directories and parents.

Every row needs its ``snapshots/<id>`` directory and its parent's row; every directory there needs
a row, except the ``new-*`` and ``rm-*`` dirs a live command holds locked (see
`strata.snapshot.base`). A row that lost its directory or parent can only be dropped, with the
snapshots stacked on it: extracted layers come back from their blobs on the next ``run``.

An active snapshot or a view that no container uses belongs to a command at work (an extraction,
a build step) or to one that died. One whose key names its owner (`strata.image.scratch`) is
judged by that owner at once; one that names none is taken for a dead command's once it is older
than a command's lease (`STALE_AFTER`, a day), as its lease would be.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from strata.errors import Conflict, NotFound, StrataError
from strata.image.scratch import owner_gone, owner_of
from strata.snapshot import Kind, metadata
from strata.snapshot.base import DirSnapshotter
from strata.snapshot.dirs import lock_dir, remove_tree, unlock
from strata.snapshot.metadata import Row
from strata.snapshot.mount import unmount
from strata.snapshot.select import CHOICE_FILE
from strata.system.context import CheckContext, twice
from strata.system.problem import Problem

__all__ = ["check_snapshots"]

_BUSY_PREFIXES = ("new-", "rm-")
STALE_AFTER = 86400.0  # as a command's lease (strata.image.root.StoreRoot.lease)


def check_snapshots(ctx: CheckContext) -> Iterator[Problem]:
    """Rows without directories or parents, directories without rows."""
    snapshotter = ctx.snapshotter
    if not isinstance(snapshotter, DirSnapshotter):
        return
    # A snapshot's directory is renamed inside the write transaction that records (or deletes)
    # its row, so a directory and a row that disagree are looked at again inside a write
    # transaction of ours, which waits for any such transaction to end.
    base = snapshotter.root / "snapshots"
    try:
        entries = sorted(os.listdir(base))
    except FileNotFoundError:
        entries = []
    with ctx.root.db.read() as conn:
        rows = metadata.rows(conn)
    keys = {row.key for row in rows}
    ids = {row.id for row in rows}
    for row in rows:
        directory = snapshotter.path(row.id)
        if not directory.is_dir():
            if _removed_meanwhile(ctx, row):
                continue
            why = f"its directory {ctx.relative(directory)} is gone"
        elif row.parent is not None and row.parent not in keys:
            why = f"its parent {row.parent} is gone"
        else:
            continue
        yield Problem(f"{row.kind} snapshot", row.key, why, _drop_rows(ctx, snapshotter, row))
    yield from _unowned(ctx, snapshotter, rows)
    for entry in entries:
        path = base / entry
        if (entry.isdigit() and int(entry) in ids) or entry == CHOICE_FILE:
            continue  # a snapshot, or the snapshotter's own note (which one it is)
        if entry.isdigit() and _recorded_meanwhile(ctx, path, int(entry)):
            continue
        if entry.startswith(_BUSY_PREFIXES):
            # Made, then locked: two looks, as for ingests.
            if not twice(lambda: _free(path)):  # noqa: B023 (called at once)
                continue  # a live command is making or removing it
            why = "left by a command that died"
        elif entry.isdigit():
            why = "no snapshot row names it"
        else:
            why = "not a snapshot directory"
        yield Problem("directory", ctx.relative(path), why, _remove_dir(ctx, snapshotter, entry))


def _free(path: Path) -> bool:
    lock = lock_dir(path, wait=False)
    unlock(lock)
    return lock is not None


def _drop_rows(ctx: CheckContext, snapshotter: DirSnapshotter, row: Row) -> Callable[[], str]:
    def repair() -> str:
        users = {c.snapshot: c for c in ctx.containers.records.all()}
        with ctx.root.db.transaction(reclaim=True) as conn:
            current = metadata.get(conn, row.key)
            if current is None or current.id != row.id:
                return f"snapshot {row.key} already gone"
            doomed = _descendants(conn, row.key)
            for key in doomed:
                user = users.get(key)
                if user is not None and ctx.containers.refresh(user) is not None:
                    raise Conflict(f"snapshot {key} is container {user.name}'s: remove it first")
            for key in reversed(doomed):
                metadata.delete(conn, key)
        # Their directories, now without rows, go the way of every orphan directory.
        snapshotter.cleanup()
        more = f" and {len(doomed) - 1} stacked on it" if len(doomed) > 1 else ""
        return f"dropped snapshot {row.key}{more}"

    return repair


def _removed_meanwhile(ctx: CheckContext, row: Row) -> bool:
    """Whether ``row`` went after it was read (its directory goes in the same transaction)."""
    with ctx.root.db.transaction() as conn:
        current = metadata.get(conn, row.key)
    return current is None or current.id != row.id


def _recorded_meanwhile(ctx: CheckContext, path: Path, snapshot_id: int) -> bool:
    """Whether the directory ``snapshot_id`` has a row now, or is gone."""
    with ctx.root.db.transaction() as conn:
        return snapshot_id in metadata.ids(conn) or not os.path.lexists(path)


def _age(created: str) -> float:
    try:
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0  # unreadable: never judged stale on its age
    return time.time() - when.timestamp()


def _unowned(ctx: CheckContext, snapshotter: DirSnapshotter, rows: list[Row]) -> Iterator[Problem]:
    users = {c.snapshot for c in ctx.containers.records.all()}
    for row in rows:
        if row.kind is Kind.COMMITTED or row.key in users:
            continue
        age = _age(row.created)
        if owner_gone(row.key):
            # Scratch named by its owner (strata.image.scratch): debris once that has ended.
            why = f"its command (process {owner_of(row.key)}) has ended"
        elif age < STALE_AFTER:
            continue
        else:
            why = f"no container uses it and it is {age / 3600:.0f} hours old: its command died"
        yield Problem(f"{row.kind} snapshot", row.key, why, _remove_unowned(ctx, snapshotter, row))


def _remove_unowned(ctx: CheckContext, snapshotter: DirSnapshotter, row: Row) -> Callable[[], str]:
    def repair() -> str:
        # A build mounts its step's snapshot on tmp/<key>: that mount went with its build.
        point = ctx.root.path / "tmp" / row.key
        if point.is_mount():
            unmount(point, detach=True)
        with contextlib.suppress(OSError):
            point.rmdir()
        try:
            snapshotter.remove(row.key)
        except NotFound:
            return f"snapshot {row.key} already gone"
        return f"removed {row.kind} snapshot {row.key}"

    return repair


def _descendants(conn: sqlite3.Connection, key: str) -> list[str]:
    """``key`` and every snapshot stacked on it, parents before children."""
    order = [key]
    for current in order:
        order.extend(metadata.children(conn, current, limit=1_000_000))
    return order


def _remove_dir(ctx: CheckContext, snapshotter: DirSnapshotter, entry: str) -> Callable[[], str]:
    def repair() -> str:
        path = snapshotter.root / "snapshots" / entry
        if entry.isdigit() or entry.startswith(_BUSY_PREFIXES):
            # The snapshotter's own cleanup decides under its transaction and the dir locks.
            snapshotter.cleanup()
            if path.exists():
                raise StrataError(f"{ctx.relative(path)}: in use again, left alone")
        else:
            remove_tree(path)
        return f"removed {ctx.relative(path)}"

    return repair
