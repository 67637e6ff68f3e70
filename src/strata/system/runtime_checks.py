"""Containers against their owners and runtime, and mounts under the root.

A record says ``running`` only while an owner holds its lock or the runtime still runs it
(`strata.runtime.records`); anything else is a crash's leftover, which the container service's
own reconciliation repairs (recorded as exited 255, unmounted, ``--rm`` honoured). A mount under
the root belongs to a live container, or to a command mounting a snapshot that still exists;
one on a container that is not running, or on a snapshot that is gone, is stale.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from strata.errors import NotFound, StrataError
from strata.image.scratch import SCRATCH, owner_gone, owner_of
from strata.runtime.backend import Status
from strata.runtime.containers import Container, State
from strata.runtime.owner import OwnerLock, owner_alive
from strata.snapshot.mount import mount_points, unmount
from strata.system.context import CheckContext
from strata.system.problem import Problem

__all__ = ["check_containers", "check_mounts"]

_BUILD_PREFIX = "build-"
SETTLE = 1.0  # seconds between two looks at what a removal may be in the middle of
STEP_GRACE = 600.0  # seconds a build may take from committing a step to discarding its container
_LIVE = (Status.RUNNING, Status.PAUSED, Status.CREATED)


def _alive(ctx: CheckContext, container: Container) -> bool:
    """Whether something looks after the container (an owner: running it, or starting it)
    or its runtime still runs it."""
    if owner_alive(ctx.containers.directory(container)):
        return True
    return _runtime_runs(ctx, container)


def _runtime_runs(ctx: CheckContext, container: Container) -> bool:
    if container.state is not State.RUNNING:
        return False
    try:
        status = ctx.containers.backend(container.runtime).state(container.id).status
    except StrataError:
        return False
    return status in _LIVE


def _dead(ctx: CheckContext, container: Container) -> bool:
    """Whether a record that says running has nothing running it, judged as the container
    service judges it: under the owner lock, with the record read again (its owner may have
    recorded the exit and let go since the first read)."""
    if _alive(ctx, container):
        return False
    lock = OwnerLock.try_acquire(ctx.containers.directory(container))
    if lock is None:
        return False  # owned again
    with lock:
        current = ctx.containers.records.lookup(container.id)
        return (
            current is not None
            and current.id == container.id
            and current.state is State.RUNNING
            and not _runtime_runs(ctx, current)
        )


def _tied(container: Container) -> bool:
    return container.config.tied


def _age(stamp: str) -> float:
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return time.time() - when.timestamp()


def _lost_snapshot(ctx: CheckContext, container: Container) -> bool:
    """Whether the container's snapshot is gone while its record stays. A removal deletes the
    snapshot, then the record, holding the owner lock: so judged under that lock."""
    if _tied(container) and _age(container.finished or container.created) < STEP_GRACE:
        # A build commits its step's snapshot as the next layer, then discards the container,
        # without an owner lock in between: its build is the owner, and may be at work.
        return False
    lock = OwnerLock.try_acquire(ctx.containers.directory(container))
    if lock is None:
        return False  # being removed (or run) right now
    with lock:
        if not _still_lost(ctx, container):
            return False
    # A removal deletes the directory, owner.lock with it, before the record: our lock may be
    # on a new file while the remover still works. A removal takes milliseconds; debris stays.
    time.sleep(SETTLE)
    return _still_lost(ctx, container)


def _still_lost(ctx: CheckContext, container: Container) -> bool:
    current = ctx.containers.records.lookup(container.id)
    if current is None or current.id != container.id:
        return False
    return not _has_snapshot(ctx, current.snapshot)


def _has_snapshot(ctx: CheckContext, key: str) -> bool:
    try:
        ctx.snapshotter.stat(key)
    except NotFound:
        return False
    return True


def check_containers(ctx: CheckContext) -> Iterator[Problem]:
    """Records whose snapshot is gone; ``running`` records with nothing running; directories
    under ``containers/`` without a record."""
    base = ctx.root.path / "containers"
    # Listed before the records are read: a container's record is made before its directory.
    try:
        entries = sorted(os.listdir(base))
    except FileNotFoundError:
        entries = []
    records = ctx.containers.records.all()
    ids = {c.id for c in records}
    for entry in entries:
        if entry not in ids:
            path = base / entry
            why = "no container record names it"
            yield Problem("directory", ctx.relative(path), why, _remove_container_dir(ctx, path))
    for container in records:
        where = container.name
        if not _has_snapshot(ctx, container.snapshot) and _lost_snapshot(ctx, container):
            yield Problem(
                "container",
                where,
                f"its filesystem (snapshot {container.snapshot}) is gone",
                advice=f"remove it (strata rm -f {where})",
            )
        if container.state is State.RUNNING and _dead(ctx, container):
            yield Problem(
                "container",
                where,
                "recorded as running, but no process runs it",
                _reconcile(ctx, container),
            )


def _remove_container_dir(ctx: CheckContext, path: Path) -> Callable[[], str]:
    def repair() -> str:
        # Its ID was random and its record is gone: no command will use this name again. The
        # owner lock is still taken, in case a process of the removed container holds it.
        if not path.is_dir():
            path.unlink(missing_ok=True)
            return f"removed {ctx.relative(path)}"
        lock = OwnerLock.try_acquire(path)
        if lock is None:
            raise StrataError(f"{ctx.relative(path)}: a process still owns it, left alone")
        with lock:
            unmount(path / "rootfs", detach=True)
            shutil.rmtree(path)
        return f"removed {ctx.relative(path)}"

    return repair


def _reconcile(ctx: CheckContext, container: Container) -> Callable[[], str]:
    def repair() -> str:
        current = ctx.containers.refresh(container)
        if current is None:
            # --rm, or a build's RUN step, which means nothing without its build.
            return f"removed container {container.name}, as its owner would have"
        if current.state is State.RUNNING:
            raise StrataError(f"container {container.name} runs again, left alone")
        return f"container {container.name} recorded as exited ({current.exit_code})"

    return repair


def check_mounts(ctx: CheckContext) -> Iterator[Problem]:
    """Mounts anywhere under the root that nothing live uses."""
    root = Path(os.path.realpath(ctx.root.path))
    seen: set[Path] = set()  # containers' rootfs already judged
    for point in mount_points(root):
        if point == root:
            continue  # the root itself on its own filesystem is no one's leftover
        parts = point.relative_to(root).parts
        if len(parts) >= 3 and parts[0] == "containers" and parts[2] == "rootfs":
            top = root.joinpath(*parts[:3])
            if top in seen:
                continue  # mounted below a container's rootfs: goes with it
            seen.add(top)
            container = ctx.containers.records.lookup(parts[1])
            if container is not None and container.id == parts[1] and _alive(ctx, container):
                continue
            why = "its container is gone" if container is None else "its container is not running"
            stale = _container_gone_or_stopped(ctx, parts[1])
            yield Problem("mount", ctx.relative(top), why, _unmount_rootfs(ctx, top, stale))
        elif parts[0] == SCRATCH and len(parts) >= 2:
            # Scratch is named by its owner (strata.image.scratch): stale once it has ended.
            # A build mounts its snapshot <key> on tmp/<key>: stale too once that is gone.
            if owner_gone(parts[1]):
                why = f"its command (process {owner_of(parts[1])}) has ended"
            elif len(parts) == 2 and parts[1].startswith(_BUILD_PREFIX):
                if _has_snapshot(ctx, parts[1]):
                    continue
                why = f"its snapshot {parts[1]} is gone"
            else:
                continue  # a live command's, or one with no owner to judge it by
            yield Problem("mount", ctx.relative(point), why, _unmount(ctx, point, lambda: True))
        elif parts[0] != "containers":
            # strata mounts only containers' rootfs and its commands' scratch.
            yield Problem(
                "mount",
                ctx.relative(point),
                "not a place strata mounts anything",
                advice=f"unmount it (umount {point}) if nothing uses it",
            )


def _container_gone_or_stopped(ctx: CheckContext, container_id: str) -> Callable[[], bool]:
    """Asked while holding the container's owner lock (so not of its owner)."""

    def still_stale() -> bool:
        current = ctx.containers.records.lookup(container_id)
        return current is None or current.id != container_id or not _runtime_runs(ctx, current)

    return still_stale


def _unmount_rootfs(ctx: CheckContext, point: Path, stale: Callable[[], bool]) -> Callable[[], str]:
    def repair() -> str:
        # Under the container's owner lock, which a start takes before it mounts: no start can
        # mount it again between our look and the unmount.
        lock = OwnerLock.try_acquire(point.parent)
        if lock is None:
            raise StrataError(f"{ctx.relative(point)}: its container is starting, left mounted")
        with lock:
            return _unmount(ctx, point, stale)()

    return repair


def _unmount(ctx: CheckContext, point: Path, stale: Callable[[], bool]) -> Callable[[], str]:
    def repair() -> str:
        if not point.is_mount():
            return f"{ctx.relative(point)} already unmounted"
        if not stale():
            raise StrataError(f"{ctx.relative(point)}: in use again, left mounted")
        unmount(point, detach=True)
        return f"unmounted {ctx.relative(point)}"

    return repair
