"""Disk used by what no image or container accounts for: snapshots nobody stacks, and ingests.

``system df``'s Docker rows count images, containers and build cache; these two rows count the
rest of the root, so that the figures add up to what ``du`` says: extracted layers of images
that are gone (and active snapshots of commands that died), and unfinished writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from strata.content.ingest import DATA, acquire
from strata.diff.chain import INIT_PREFIX, chain_ids, layer_key
from strata.errors import Locked, StrataError
from strata.snapshot import Kind
from strata.system.context import CheckContext

__all__ = ["Usage", "ingest_usage", "unused_snapshots"]


@dataclass(frozen=True, slots=True)
class Usage:
    """One ``system df`` row: how many, how many in use, bytes, bytes a cleanup would free."""

    total: int
    active: int
    size: int
    reclaimable: int


def unused_snapshots(ctx: CheckContext) -> Usage:
    """Snapshots that no image's layers and no container stack on.

    Committed ones are extracted layers of images that are gone (``image prune`` frees them);
    active and views are a running command's (``ACTIVE``) or a dead one's.
    """
    used = {f"{INIT_PREFIX}scratch"}
    for image in ctx.images.all():
        try:
            diff_ids = ctx.images.config(image).rootfs.diff_ids
        except StrataError:
            continue
        keys = [layer_key(chain_id) for chain_id in chain_ids(diff_ids)]
        used.update(keys)
        if keys:
            used.add(f"{INIT_PREFIX}{keys[-1]}")
    infos = list(ctx.snapshotter.walk())
    parents = {info.key: info.parent for info in infos}
    for container in ctx.containers.records.all():
        key: str | None = container.snapshot
        while key is not None and key not in used:
            used.add(key)
            key = parents.get(key)
    total = active = size = reclaimable = 0
    for info in infos:
        if info.key in used:
            continue
        try:
            bytes_ = ctx.snapshotter.usage(info.key).size
        except StrataError:
            continue  # removed meanwhile
        total += 1
        size += bytes_
        if info.kind is Kind.COMMITTED:
            reclaimable += bytes_
        else:
            active += 1
    return Usage(total, active, size, reclaimable)


def ingest_usage(ctx: CheckContext) -> Usage:
    """Unfinished writes: those with a live writer are active; the rest ``system check
    --repair`` frees."""
    base = ctx.root.path / "ingest"
    total = active = size = reclaimable = 0
    try:
        entries = sorted(os.listdir(base))
    except FileNotFoundError:
        return Usage(0, 0, 0, 0)
    for entry in entries:
        dirpath = base / entry
        try:
            bytes_ = os.stat(dirpath / DATA).st_blocks * 512
        except OSError:
            bytes_ = 0
        try:
            lock = acquire(dirpath, entry, create=False)
        except Locked:
            lock, live = None, True
        except OSError:
            continue
        else:
            live = False
            if lock is None:
                continue
            lock.close()
        total += 1
        size += bytes_
        if live:
            active += 1
        else:
            reclaimable += bytes_
    return Usage(total, active, size, reclaimable)
