"""``docker pause`` / ``unpause``: a running container frozen (runc's cgroup freezer) and thawed.

The record keeps ``running`` (as Docker's ``State.Running`` stays true); that the container is
paused is a marker in its directory naming the start it paused, so that ``ps`` knows it
without asking the runtime, and a marker left by an earlier run (a paused container that was
killed, its owner gone) means nothing once the container started again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from strata.errors import Conflict, ContainerNotFound, InvalidArgument, StrataError
from strata.runtime.backend import Status
from strata.runtime.containers import Container, State

if TYPE_CHECKING:
    from pathlib import Path

    from strata.runtime.records import ContainerRecords
    from strata.runtime.runc import RuncBackend

MARKER = "paused"


def _marker(service: ContainerRecords, container: Container) -> Path:
    return service.directory(container) / MARKER


def is_paused(service: ContainerRecords, container: Container) -> bool:
    """Whether the running ``container`` is paused (one stat: cheap enough for ``ps``)."""
    if container.state is not State.RUNNING:
        return False
    try:
        return _marker(service, container).read_text() == (container.started or "")
    except OSError:
        return False


def _freezer(service: ContainerRecords, container: Container) -> RuncBackend:
    """The backend, if it has a freezer (runc and crun do; the chroot one has no cgroup)."""
    from strata.runtime.runc import RuncBackend

    backend = service.backend(container.runtime)
    if not isinstance(backend, RuncBackend):
        raise InvalidArgument(
            f"container {container.name}: the {backend.name} runtime cannot pause a container"
        )
    return backend


def _running(service: ContainerRecords, container: Container) -> Container:
    current = service.refresh(container)
    if current is None:
        raise ContainerNotFound(f"No such container: {container.id}")
    if current.state is not State.RUNNING:
        raise Conflict(f"Container {container.id} is not running")
    return current


def pause(service: ContainerRecords, container: Container) -> None:
    """Freeze every process of the running container."""
    current = _running(service, container)
    if is_paused(service, current):
        raise Conflict(f"Container {container.id} is already paused")
    _freezer(service, current).pause(current.id)
    _marker(service, current).write_text(current.started or "")


def unpause(service: ContainerRecords, container: Container) -> None:
    """Thaw what `pause` froze."""
    current = _running(service, container)
    if not is_paused(service, current):
        raise Conflict(f"Container {container.id} is not paused")
    _freezer(service, current).resume(current.id)
    _marker(service, current).unlink(missing_ok=True)


def thaw_for_signal(service: ContainerRecords, container: Container) -> None:
    """Before a stop or kill: a frozen process takes no signal (cgroup v1's freezer holds even
    SIGKILL), so the container is thawed first, as Docker's kill unpauses it."""
    if not is_paused(service, container):
        return
    with contextlib.suppress(StrataError):
        if service.runtime_status(container) is Status.PAUSED:
            _freezer(service, container).resume(container.id)
    _marker(service, container).unlink(missing_ok=True)
