"""Containers from images, and their life: create, start, run, stop, kill, wait, exec, remove.

`Containers` is the one service commands and builds use. It is two ideas put together: the
containers as records, with their snapshots and directories, reconciled with their owners and
repaired after crashes (:mod:`.records`), and the running of their processes (:mod:`.tasks`).
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from strata.errors import Conflict
from strata.runtime.backend import INHERIT, ProcessIO
from strata.runtime.containers import Container
from strata.runtime.options import Attach, RunOptions, parse_signal, process_args, process_env
from strata.runtime.owner import owner_alive
from strata.runtime.pausing import is_paused, thaw_for_signal
from strata.runtime.records import LOST_EXIT_CODE, ContainerRecords
from strata.runtime.tasks import Tasks

__all__ = [
    "LOST_EXIT_CODE",
    "Attach",
    "Containers",
    "RunOptions",
    "owned",
    "parse_signal",
    "process_args",
    "process_env",
]

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.runtime.execution import ExecOptions
    from strata.runtime.monitor import MonitorLink


class Containers(ContainerRecords):
    """The container service over one store root: its records, and the running of them."""

    def __init__(self, root: StoreRoot) -> None:
        super().__init__(root)
        self.tasks = Tasks(self)

    def run(
        self,
        container: Container,
        *,
        stdio: ProcessIO = INHERIT,
        console_size: tuple[int, int] | None = None,
    ) -> int:
        """Run in the foreground in this process; the exit code (see `Tasks.run`)."""
        return self.tasks.run(container, stdio=stdio, console_size=console_size)

    def start(self, container: Container, *, attach: Attach | None = None) -> MonitorLink | None:
        """Start under a monitor; return once it runs (see `Tasks.start`)."""
        return self.tasks.start(container, attach=attach)

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        """``docker kill`` (see `Tasks.kill`); a paused container is thawed for SIGKILL."""
        if sig == signal.SIGKILL:
            thaw_for_signal(self, container)
        self.tasks.kill(container, sig)

    def stop(
        self, container: Container, *, timeout: float | None = None, sig: int | None = None
    ) -> None:
        """``docker stop`` (see `Tasks.stop`); a paused container is thawed first."""
        thaw_for_signal(self, container)
        self.tasks.stop(container, timeout=timeout, sig=sig)

    def remove(self, container: Container, *, force: bool = False, volumes: bool = False) -> None:
        """``docker rm`` (see `ContainerRecords.remove`); ``-f`` thaws a paused one first."""
        if force:
            thaw_for_signal(self, container)
        super().remove(container, force=force, volumes=volumes)

    def wait(self, container: Container) -> int:
        """``docker wait`` (see `Tasks.wait`)."""
        return self.tasks.wait(container)

    def exec(
        self, container: Container, options: ExecOptions, *, stdio: ProcessIO = INHERIT
    ) -> int:
        """``docker exec`` (see `Tasks.exec`); not in a paused container, as Docker."""
        if is_paused(self, container):
            raise Conflict(
                f"Container {container.name} is paused, unpause the container before exec"
            )
        return self.tasks.exec(container, options, stdio=stdio)


def owned(service: ContainerRecords, container: Container) -> bool:
    """Whether some process owns (waits for) the container right now."""
    return owner_alive(service.directory(container))
