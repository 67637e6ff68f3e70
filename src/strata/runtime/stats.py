"""``docker stats``: a container's CPU, memory, block I/O and PIDs from its cgroups, its network
I/O from its init's ``/proc/<pid>/net/dev``.

runc puts a container in ``strata/<id>`` under each hierarchy; the init's ``/proc/<pid>/cgroup``
says where, for cgroup v1 (one line per controller, mounted at ``/sys/fs/cgroup/<name>``) and
v2 (``0::/path`` under the unified mount), so a hybrid host is read as it is. What a host does
not have reads as zero. The figures are computed as Docker's client computes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a container's counters."""

    cpu_ns: int  # CPU time the container used
    system_ns: int  # CPU time the whole host counted (/proc/stat), as Docker's system usage
    online_cpus: int
    memory: int  # usage without the inactive page cache, as Docker's client shows it
    limit: int
    read: int
    written: int
    received: int
    sent: int
    pids: int


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """Controller (``memory``, ``cpuacct``, ..., ``""`` for v2) -> the container's directory."""
    dirs: dict[str, Path] = {}
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return dirs
    unified = CGROUP_ROOT / "unified" if (CGROUP_ROOT / "unified").is_dir() else CGROUP_ROOT
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if not controllers:
            dirs[""] = unified / relative
            continue
        for name in controllers.split(","):
            base = CGROUP_ROOT / controllers if (CGROUP_ROOT / controllers).is_dir() else None
            dirs[name] = (base or CGROUP_ROOT / name) / relative
    return dirs


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _keyed(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def _host_memory() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _system_ns() -> tuple[int, int]:
    """(host CPU time in ns, online CPUs) from /proc/stat, as Docker's daemon reads them."""
    total, cpus = 0, 0
    for line in _read(Path("/proc/stat")).splitlines():
        if line.startswith("cpu "):
            total = sum(int(v) for v in line.split()[1:8]) * 1_000_000_000 // _TICKS
        elif line.startswith("cpu"):
            cpus += 1
    return total, cpus or 1


def _network(pid: int) -> tuple[int, int]:
    """Bytes received and sent on the container's interfaces but ``lo`` (0 on the host's
    network, as Docker shows a ``--network host`` container)."""
    try:
        if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            return 0, 0
    except OSError:
        return 0, 0
    received = sent = 0
    for line in _read(Path(f"/proc/{pid}/net/dev")).splitlines()[2:]:
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = counters.split()
        if len(fields) >= 9:
            received += int(fields[0])
            sent += int(fields[8])
    return received, sent


def sample(pid: int) -> Sample:
    """Read the counters of the container whose init is ``pid``."""
    dirs = cgroup_dirs(pid)
    v2 = dirs.get("")
    system, cpus = _system_ns()
    if "memory" in dirs:
        memory_dir = dirs["memory"]
        usage = _int(memory_dir / "memory.usage_in_bytes")
        stat = _keyed(_read(memory_dir / "memory.stat"))
        usage -= min(usage, stat.get("total_inactive_file", 0))
        limit = _int(memory_dir / "memory.limit_in_bytes")
    elif v2 is not None:
        usage = _int(v2 / "memory.current")
        usage -= min(usage, _keyed(_read(v2 / "memory.stat")).get("inactive_file", 0))
        limit = _int(v2 / "memory.max")  # "max" reads as 0: unlimited
    else:
        usage = limit = 0
    host = _host_memory()
    if not limit or limit > host:
        limit = host
    if "cpuacct" in dirs:
        cpu = _int(dirs["cpuacct"] / "cpuacct.usage")
    elif v2 is not None:
        cpu = _keyed(_read(v2 / "cpu.stat")).get("usage_usec", 0) * 1000
    else:
        cpu = 0
    read = written = 0
    if "blkio" in dirs:
        text = _read(dirs["blkio"] / "blkio.throttle.io_service_bytes_recursive") or _read(
            dirs["blkio"] / "blkio.throttle.io_service_bytes"
        )
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                if parts[1] == "Read":
                    read += int(parts[2])
                elif parts[1] == "Write":
                    written += int(parts[2])
    elif v2 is not None:
        for line in _read(v2 / "io.stat").splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    written += int(value)
    pids_dir = dirs.get("pids") or v2
    pids = _int(pids_dir / "pids.current") if pids_dir is not None else 0
    received, sent = _network(pid)
    return Sample(cpu, system, cpus, usage, limit, read, written, received, sent, pids)


def cpu_percent(before: Sample, after: Sample) -> float:
    """Docker's CPU %: the container's share of the host's CPU time between two samples,
    times the online CPUs."""
    cpu = after.cpu_ns - before.cpu_ns
    system = after.system_ns - before.system_ns
    if cpu <= 0 or system <= 0:
        return 0.0
    return cpu / system * after.online_cpus * 100.0
