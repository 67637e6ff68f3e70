"""Ingests, leases and scratch against live owners.

An ingest's writer holds ``flock`` on it for its whole life (`strata.content.ingest`), so an
ingest whose lock is free has no writer: its bytes wait for a resume that only a re-run of the
same pull would do, and a repair discards them. A lease protects blobs until it expires or its
owner process ends (`strata.store.leases`); one past that protects nothing and is dropped. A
directory under ``tmp/`` is named by the command that made it (`strata.image.scratch`): once that
has ended, it is removed (after unmounting what is mounted below it, never through a mount).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from strata.content.ingest import DATA, REF, acquire, read_text, remove_ingest
from strata.errors import Locked
from strata.image.scratch import SCRATCH, dead_tmp, owner_of, remove_tree
from strata.snapshot.mount import mount_points
from strata.store.leases import expire, owner_alive
from strata.system.context import CheckContext, twice
from strata.system.format import size_text
from strata.system.problem import Problem

__all__ = ["check_ingests", "check_leases", "check_scratch"]

STALE_AFTER = 86400.0  # as a command's lease (strata.image.root.StoreRoot.lease)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def check_ingests(ctx: CheckContext) -> Iterator[Problem]:
    """Ingests nobody is writing."""
    base = ctx.root.path / "ingest"
    try:
        entries = sorted(e for e in os.listdir(base) if (base / e).is_dir())
    except FileNotFoundError:
        return
    for entry in entries:
        dirpath = base / entry
        # Two looks: a writer makes the directory, then locks it, so a fresh one may be free
        # for an instant.
        if not twice(lambda: _unlocked(dirpath)):  # noqa: B023 (called at once)
            continue
        ref = read_text(dirpath / REF) or "(no ref)"
        why = f"{size_text(_size(dirpath / DATA))} of {ref}, and no live writer"
        yield Problem("ingest", ctx.relative(dirpath), why, _drop_ingest(ctx, dirpath))


def _unlocked(dirpath: Path) -> bool:
    """Whether the ingest is there and nobody holds its lock."""
    try:
        lock = acquire(dirpath, dirpath.name, create=False)
    except (Locked, OSError):
        return False  # a live writer (or gone meanwhile)
    if lock is None:
        return False
    lock.close()
    return True


def _drop_ingest(ctx: CheckContext, dirpath: Path) -> Callable[[], str]:
    def repair() -> str:
        # Under the ingest's own lock: a writer that resumed it meanwhile keeps it.
        lock = acquire(dirpath, dirpath.name, create=False)
        if lock is None:
            return f"{ctx.relative(dirpath)} already gone"
        remove_ingest(dirpath, lock)
        return f"removed {ctx.relative(dirpath)}"

    return repair


def check_leases(ctx: CheckContext) -> Iterator[Problem]:
    """Leases past their time, or whose owner has ended."""
    now = time.time()
    with ctx.root.db.read() as conn:
        rows = conn.execute(
            "SELECT l.id, l.expires, count(r.key) FROM leases AS l"
            " LEFT JOIN lease_resources AS r ON r.lease_id = l.id GROUP BY l.id ORDER BY l.id"
        ).fetchall()
    for lease_id, expires, count in rows:
        if expires <= now:
            state = "expired"
        elif not owner_alive(str(lease_id)):
            state = f"its owner (process {str(lease_id).split('.')[0]}) has ended"
        else:
            continue
        why = f"{state}, still listing {count} resource{'s' if count != 1 else ''}"
        yield Problem("lease", str(lease_id), why, _expire(ctx))


def _expire(ctx: CheckContext) -> Callable[[], str]:
    def repair() -> str:
        with ctx.root.db.transaction(reclaim=True) as conn:
            count = expire(conn)
        return f"dropped {count} dead lease{'s' if count != 1 else ''}"

    return repair


def check_scratch(ctx: CheckContext) -> Iterator[Problem]:
    """Directories under ``tmp/`` whose command has ended; ones that name no owner (made by
    an older strata) once they are a day old and nothing is mounted on them."""
    for path in dead_tmp(ctx.root.path):
        why = f"scratch of a command (process {owner_of(path.name)}) that has ended"
        yield Problem("scratch", ctx.relative(path), why, _remove_scratch(ctx, path))
    base = ctx.root.path / SCRATCH
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    now = time.time()
    mounted: set[str] | None = None  # names of tmp/ entries with a mount at or below them
    for name in names:
        path = base / name
        if owner_of(name) is not None:
            continue
        try:
            age = now - os.lstat(path).st_mtime
        except FileNotFoundError:
            continue
        if age < STALE_AFTER:
            continue
        if mounted is None:
            real = Path(os.path.realpath(base))
            mounted = {p.relative_to(real).parts[0] for p in mount_points(real) if p != real}
        if name in mounted:
            continue  # a mount: check_mounts judges it
        why = f"scratch that names no owner, {age / 3600:.0f} hours old"
        yield Problem("scratch", ctx.relative(path), why, _remove_scratch(ctx, path))


def _remove_scratch(ctx: CheckContext, path: Path) -> Callable[[], str]:
    def repair() -> str:
        if not os.path.lexists(path):
            return f"{ctx.relative(path)} already gone"
        remove_tree(path)
        return f"removed {ctx.relative(path)}"

    return repair
