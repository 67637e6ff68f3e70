"""``docker update``: new limits or restart policy for a container, live if it runs.

The record's config is changed (the next start's bundle has the new limits) and, for a running
container, the runtime applies the new cgroup limits at once (``runc update``). The policy is
read by the container's monitor when the container next exits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from strata.errors import InvalidArgument
from strata.runtime.containers import State
from strata.runtime.resources import check

if TYPE_CHECKING:
    from strata.runtime.containers import Container
    from strata.runtime.records import ContainerRecords


def update_container(
    service: ContainerRecords,
    container: Container,
    changes: dict[str, Any],
    restart: tuple[str, int] | None = None,
) -> None:
    """Apply ``changes`` (`Resources` fields) and ``restart`` (name, maximum) to ``container``."""
    cfg = container.config
    if restart is not None and restart[0] != "no" and cfg.autoremove:
        raise InvalidArgument(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        )
    changes = dict(changes)
    # Docker's update: --pids-limit 0 changes nothing; a negative one lifts the limit, which
    # its daemon then records as 0 (not null, as at create).
    if changes.get("pids_limit") == 0:
        del changes["pids_limit"]
    elif changes.get("pids_limit", 0) < 0:
        changes["pids_limit"] = 0
    old = cfg.resources
    if (
        "memory" in changes
        and "memory_swap" not in changes
        and old.memory_swap > 0
        and changes["memory"] > old.memory_swap
    ):
        raise InvalidArgument(
            "Memory limit should be smaller than already set memoryswap limit, update the"
            " memoryswap at the same time"
        )
    resources = check(old.updated(changes), update=True)
    if changes and resources.cgroup_limited and container.runtime == "chroot":
        raise InvalidArgument(
            "the chroot runtime cannot limit memory, CPU or pids (it runs without cgroups)"
        )
    new = replace(cfg, resources=resources)
    if restart is not None:
        new = replace(new, restart=restart[0], restart_max=restart[1])
    if changes and container.state is State.RUNNING and not container.restarting:
        from strata.runtime.cgroups import swap_accounting

        live = resources.linux_resources(swap_accounting=swap_accounting())
        if "pids_limit" in changes:  # none now: -1 lifts the limit (pids.max "max")
            live["pids"] = {"limit": resources.pids_limit or -1}
        backend = service.backend(container.runtime)
        update = getattr(backend, "update", None)
        if update is None:
            raise InvalidArgument(f"the {backend.name} runtime cannot update a running container")
        update(container.id, live)
    service.records.set_config(container.id, new)
