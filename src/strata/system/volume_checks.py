"""Volumes against their directories and their users.

A volume's directory is made in the transaction that writes its row (`strata.volume.store`), so a
create killed before its commit leaves a directory without a row, and a removal killed after its
commit leaves a ``.removing-`` trash directory: both are debris, removed under the same write
lock a create takes. A row whose directory is gone is damage (its data is lost): the repair makes
the directory again, empty, so containers using it still start. A use recorded for a container
that no longer exists (only a hand-edited database could leave one: a container's record and its
uses are deleted in one transaction) would keep the volume from ``volume rm`` and ``prune``: it
is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from strata.system.context import CheckContext
from strata.system.problem import Problem
from strata.volume.store import TRASH_PREFIX, VolumeStore, data_dir

__all__ = ["check_volumes"]


def check_volumes(ctx: CheckContext) -> Iterator[Problem]:
    """Volume directories without rows, rows without directories, uses by no container."""
    store = VolumeStore(ctx.root.path, ctx.root.db)
    for entry in store.orphans():
        why = (
            "a removed volume's directory left by a killed removal"
            if entry.startswith(TRASH_PREFIX)
            else "a directory without its volume record (a create that did not finish)"
        )
        yield Problem("volume", f"volumes/{entry}", why, _remove_orphan(store, entry))
    for name in store.missing():
        yield Problem("volume", name, "its directory is gone", _remake(ctx, name))
    containers = {c.id for c in ctx.containers.records.all()}
    for volume, container in store.all_uses():
        if container not in containers:
            why = f"recorded as used by container {container}, which does not exist"
            yield Problem("volume", volume, why, _drop_use(store, volume, container))


def _remove_orphan(store: VolumeStore, entry: str) -> Callable[[], str]:
    def repair() -> str:
        if store.remove_orphan(entry):
            return f"removed volumes/{entry}"
        return f"kept volumes/{entry}: a volume of that name was created meanwhile"

    return repair


def _remake(ctx: CheckContext, name: str) -> Callable[[], str]:
    def repair() -> str:
        data_dir(ctx.root.path, name).mkdir(mode=0o755, parents=True, exist_ok=True)
        return f"made an empty directory for volume {name} (its content was lost)"

    return repair


def _drop_use(store: VolumeStore, volume: str, container: str) -> Callable[[], str]:
    def repair() -> str:
        store.drop_use(volume, container)
        return f"dropped the use of volume {volume} by container {container}"

    return repair
