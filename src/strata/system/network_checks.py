"""The store's containers' network state (host-wide, :mod:`strata.network.attachments`): an
endpoint this root made for a container that is gone or no longer running holds an address,
a veth and iptables rules until a teardown; the repair is that teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from strata.errors import StrataError
from strata.network.attachments import Attachments
from strata.runtime.containers import State
from strata.runtime.owner import OwnerLock
from strata.system.context import CheckContext
from strata.system.problem import Problem


def check_networks(ctx: CheckContext) -> Iterator[Problem]:
    """Endpoints of this root's containers that nobody tore down."""
    attachments = Attachments()
    records = {c.id: c for c in ctx.containers.records.all()}
    for cid in attachments.owned_by(ctx.root.path):
        container = records.get(cid)
        if container is not None and container.state is State.RUNNING:
            continue  # its owner tears down (or check_containers reconciles it first)
        why = "its container is gone" if container is None else "its container is not running"
        yield Problem("network endpoint", cid[:12], why, _teardown(ctx, attachments, cid))


def _teardown(ctx: CheckContext, attachments: Attachments, cid: str) -> Callable[[], str]:
    def repair() -> str:
        directory = ctx.root.path / "containers" / cid
        lock = OwnerLock.try_acquire(directory) if directory.is_dir() else None
        if directory.is_dir() and lock is None:
            raise StrataError(f"container {cid[:12]}: a process owns it now, left alone")
        try:
            current = ctx.containers.records.lookup(cid)
            if current is not None and current.state is State.RUNNING:
                raise StrataError(f"container {cid[:12]} runs again, left alone")
            attachments.teardown(cid)
        finally:
            if lock is not None:
                lock.release()
        return f"tore down the network of container {cid[:12]}"

    return repair
