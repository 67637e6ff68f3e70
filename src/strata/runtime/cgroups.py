"""Where a running container's cgroups are, and what they say (OOM kills, swap accounting).

The OCI runtime makes the cgroups (``linux.cgroupsPath``); this module only finds them, from the
container's ``/proc/<pid>/cgroup`` under ``/sys/fs/cgroup``, on cgroup v1, v2 or a hybrid of both
(v1 controllers with a v2 tree for systemd, as on the host this was built on): each controller
maps to the directory of the hierarchy that has it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

UNIFIED = ""  # the v2 hierarchy's key in `cgroup_dirs`


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _hierarchy(controller: str) -> Path | None:
    """Where ``controller``'s hierarchy (UNIFIED: the v2 tree) is mounted, at the places every
    distribution mounts them. Not read from /proc/self/mountinfo: with many mounts (a host
    with many network namespaces) reading it takes seconds to minutes."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure v2
        return CGROUP_ROOT if controller == UNIFIED else None
    if controller == UNIFIED:
        unified = CGROUP_ROOT / "unified"
        return unified if (unified / "cgroup.controllers").exists() else None
    point = CGROUP_ROOT / controller
    return point if point.is_dir() else None


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """Controller -> the directory of process ``pid``'s cgroup in that controller's hierarchy
    (UNIFIED for the v2 tree); empty if the process or /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    dirs: dict[str, Path] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [UNIFIED]:
            point = _hierarchy(controller.removeprefix("name="))
            if point is not None:
                dirs[controller] = point / path.lstrip("/")
    return dirs


def memory_dir(dirs: dict[str, Path]) -> Path | None:
    """The directory with the memory controller's files (v1 ``memory``, else the v2 tree)."""
    if "memory" in dirs:
        return dirs["memory"]
    unified = dirs.get(UNIFIED)
    if unified is not None and (unified / "memory.max").exists():
        return unified
    return None


def oom_kills(memory: Path | None) -> int:
    """How many processes the kernel's OOM killer killed in this memory cgroup."""
    if memory is None:
        return 0
    for name in ("memory.events", "memory.oom_control"):  # v2, v1 (kernel 4.13+)
        with contextlib.suppress(OSError, ValueError):
            for line in (memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0


def swap_accounting() -> bool:
    """Whether a combined memory+swap limit can be set: v2, or v1 with ``memory.memsw.*``."""
    v1 = _hierarchy("memory")
    if v1 is not None:
        return (v1 / "memory.memsw.limit_in_bytes").exists()
    return True
