"""What the guard of a dead build runs (``python -m strata.runtime.orphans``): its containers go,
then what else dead writers left in the store (`StoreRoot.release_dead_writers`).

A module of its own, so that :mod:`.guard`, which :mod:`.lifecycle` imports for its label, does
not import the lifecycle back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from strata.errors import StrataError
from strata.image.root import StoreRoot
from strata.runtime.lifecycle import Containers
from strata.runtime.owner import OwnerLock

OWNER_WAIT = 10.0  # the build's forked helpers let go of its owner lock once the container dies


def remove_orphans(entries: list[str]) -> None:
    """Remove each container (``<store root as hex> <id>``) that is still recorded."""
    for entry in entries:
        root_hex, _, container_id = entry.partition(" ")
        # One container's trouble must not keep the others: there is nobody to tell.
        with (
            contextlib.suppress(Exception),
            StoreRoot(Path(os.fsdecode(bytes.fromhex(root_hex)))) as store,
        ):
            service = Containers(store)
            container = service.records.lookup(container_id)
            if container is None or container.id != container_id:
                continue  # removed by the build itself before it died
            # Killed first, without the owner lock: a process the build forked (the chroot
            # backend's intermediate) shares the lock and holds it until the container ends.
            with contextlib.suppress(StrataError):
                service.backend(container.runtime).kill(container.id, signal.SIGKILL)
            lock = OwnerLock.acquire(service.directory(container), OWNER_WAIT)
            if lock is None:
                continue  # owned again: not ours to judge
            with lock:
                service.discard(container)
    # And the rest of what the dead build left (its lease, its ingests, its steps' snapshots
    # and scratch mounts), so that its store checks clean with no command run after it.
    for root_hex in dict.fromkeys(entry.partition(" ")[0] for entry in entries):
        with (
            contextlib.suppress(Exception),
            StoreRoot(Path(os.fsdecode(bytes.fromhex(root_hex)))) as store,
        ):
            store.release_dead_writers()


if __name__ == "__main__":  # pragma: no cover - the guard, after the build died
    remove_orphans(sys.argv[1:])
