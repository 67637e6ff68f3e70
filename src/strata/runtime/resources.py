"""A container's resource limits: memory, CPU, pids (cgroups) and rlimits, as Docker takes them.

`Resources` is what ``run``/``create``/``update`` were given, after Docker's client parsing
(``32m``, ``1.5``, ``nofile=1024:2048``) and its daemon's checks and defaults (a memory limit
below 6 MB is refused; ``--memory`` alone gives a swap limit of twice the memory); `apply`
writes it into an OCI runtime spec's ``linux.resources`` and ``process.rlimits``, and
`host_config` gives the fields of ``inspect``'s HostConfig with Docker's values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from strata.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory
CPU_PERIOD = 100_000  # microseconds: the CFS period Docker uses for --cpus
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
# Docker's (go-units') ulimit names and the rlimit each sets.
RLIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}


@dataclass(frozen=True, slots=True)
class Ulimit:
    """One ``--ulimit name=soft[:hard]``."""

    name: str
    soft: int
    hard: int

    def to_json(self) -> dict[str, Any]:
        """Docker's form (inspect's ``HostConfig.Ulimits``)."""
        return {"Name": self.name, "Hard": self.hard, "Soft": self.soft}


@dataclass(frozen=True, slots=True)
class Resources:
    """Limits as Docker records them (bytes, nano-CPUs); 0 or None: no limit."""

    memory: int = 0
    memory_swap: int = 0  # memory + swap; -1: unlimited swap
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    pids_limit: int | None = None
    ulimits: tuple[Ulimit, ...] = ()

    @property
    def cgroup_limited(self) -> bool:
        """Whether any limit needs the cgroups (the chroot backend has none)."""
        return bool(
            self.memory
            or self.memory_swap > 0
            or self.memory_reservation
            or self.nano_cpus
            or self.cpu_shares
            or self.cpuset_cpus
            or self.pids_limit
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form: only what is set (an unlimited container stores nothing)."""
        out: dict[str, Any] = {}
        for key in ("memory", "memory_swap", "memory_reservation", "nano_cpus", "cpu_shares"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.cpuset_cpus:
            out["cpuset_cpus"] = self.cpuset_cpus
        if self.pids_limit is not None:
            out["pids_limit"] = self.pids_limit
        if self.ulimits:
            out["ulimits"] = [[u.name, u.soft, u.hard] for u in self.ulimits]
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Resources:
        """A stored record's limits (absent: none)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise InvalidArgument("container config: resources: expected an object")
        ints = {}
        for key in ("memory", "memory_swap", "memory_reservation", "nano_cpus", "cpu_shares"):
            value = raw.get(key, 0)
            if not isinstance(value, int):
                raise InvalidArgument(f"container config: resources: {key}: expected an integer")
            ints[key] = value
        pids = raw.get("pids_limit")
        cpuset = raw.get("cpuset_cpus", "")
        ulimits = raw.get("ulimits") or []
        try:
            parsed = tuple(Ulimit(str(n), int(s), int(h)) for n, s, h in ulimits)
        except (TypeError, ValueError):
            raise InvalidArgument("container config: resources: ulimits: malformed") from None
        if not isinstance(cpuset, str) or not (pids is None or isinstance(pids, int)):
            raise InvalidArgument("container config: resources: malformed")
        return cls(**ints, cpuset_cpus=cpuset, pids_limit=pids, ulimits=parsed)

    def host_config(self) -> dict[str, Any]:
        """``inspect``'s HostConfig resource fields, Docker's names and values."""
        return {
            "CpuShares": self.cpu_shares,
            "Memory": self.memory,
            "NanoCpus": self.nano_cpus,
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpusetCpus": self.cpuset_cpus,
            "MemoryReservation": self.memory_reservation,
            "MemorySwap": self.memory_swap,
            "PidsLimit": self.pids_limit,
            "Ulimits": [u.to_json() for u in self.ulimits],
        }

    def linux_resources(self, *, swap_accounting: bool = True) -> dict[str, Any]:
        """The OCI ``linux.resources`` entries (besides ``devices``) for these limits."""
        out: dict[str, Any] = {}
        memory: dict[str, int] = {}
        if self.memory:
            memory["limit"] = self.memory
            # Without swap accounting (cgroup v1 booted without it) runc cannot set the
            # combined limit; Docker then drops it too (with a warning).
            if self.memory_swap and swap_accounting:
                memory["swap"] = self.memory_swap
        if self.memory_reservation:
            memory["reservation"] = self.memory_reservation
        if memory:
            out["memory"] = memory
        cpu: dict[str, Any] = {}
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if self.nano_cpus:
            cpu["period"] = CPU_PERIOD
            cpu["quota"] = self.nano_cpus * CPU_PERIOD // 1_000_000_000
        if self.cpuset_cpus:
            cpu["cpus"] = self.cpuset_cpus
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None:
            out["pids"] = {"limit": self.pids_limit}
        return out

    def rlimits(self, default_nofile: tuple[int, int]) -> list[dict[str, Any]]:
        """The OCI ``process.rlimits``: the default RLIMIT_NOFILE unless ``--ulimit`` sets it."""
        limits: dict[str, tuple[int, int]] = {"RLIMIT_NOFILE": default_nofile}
        for ulimit in self.ulimits:
            limits[RLIMITS[ulimit.name]] = (ulimit.soft, ulimit.hard)
        return [{"type": k, "hard": hard, "soft": soft} for k, (soft, hard) in limits.items()]

    def updated(self, changes: Mapping[str, Any]) -> Resources:
        """These limits with ``docker update``'s changes. A new memory limit alone keeps the
        swap limit set before; where there was none, it gets twice the memory, as ``run -m``
        does (Docker's update fails there on cgroup v1: README, known differences)."""
        new = replace(self, **changes)
        if "memory" in changes and "memory_swap" not in changes and self.memory_swap == 0:
            new = replace(new, memory_swap=2 * new.memory if new.memory else 0)
        return new


def parse_bytes(text: str, flag: str) -> int:
    """Docker's RAMInBytes: ``512``, ``32m``, ``1.5g``, ``64MiB`` (binary units)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise InvalidArgument(
            f'invalid argument "{text}" for "{flag}" flag: invalid size: {text!r}'
        )
    number = float(match.group(1))
    return int(number * 1024 ** _UNITS[(match.group(2) or "").lower()])


def parse_swap(text: str, flag: str = "--memory-swap") -> int:
    """``--memory-swap``: a size, or ``-1`` for unlimited swap."""
    return -1 if text.strip() == "-1" else parse_bytes(text, flag)


def parse_cpus(text: str) -> int:
    """``--cpus 1.5`` as nano-CPUs (Docker's NanoCPUs: a rational number, at most 9 decimals)."""
    from fractions import Fraction  # only here: it loads decimal, which run need not

    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        message = f"failed to parse {text} as a rational number"
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: {message}') from None
    nano = value * 1_000_000_000
    if nano.denominator != 1:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: value is too precise')
    return int(nano)


def parse_ulimit(text: str) -> Ulimit:
    """``name=soft[:hard]`` (go-units' ParseUlimit)."""

    def bad(reason: str) -> InvalidArgument:
        return InvalidArgument(f'invalid argument "{text}" for "--ulimit" flag: {reason}')

    name, eq, values = text.partition("=")
    if not eq:
        raise bad(f"invalid ulimit argument: {text}")
    if name not in RLIMITS:
        raise bad(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise bad(
            f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`"
        )
    try:
        soft = int(parts[0])
        hard = int(parts[1]) if len(parts) == 2 else soft
    except ValueError:
        raise bad(f"invalid ulimit argument: {text}") from None
    if soft > hard:
        raise bad(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return Ulimit(name, soft, hard)


def _cpu_list(text: str) -> set[int] | None:
    """The CPUs a cpuset list (``0-2,4``) names; None if it is malformed."""
    found: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            return None
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            return None
        found.update(range(first, last + 1))
    return found


def _online_cpus() -> str:
    try:
        with open("/sys/devices/system/cpu/online", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return f"0-{(os.cpu_count() or 1) - 1}"


def check(resources: Resources, *, update: bool = False) -> Resources:
    """Docker's daemon: refuse what it refuses, with its words; fill its defaults.

    Everything is checked before a container is made, so a refused limit leaves nothing.
    """
    r = resources
    if r.memory and r.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if r.memory > 0 and r.memory_swap > 0 and r.memory_swap < r.memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if not r.memory and r.memory_swap > 0 and not update:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    if r.memory_reservation and r.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if r.memory > 0 and r.memory_reservation > 0 and r.memory < r.memory_reservation:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    cpus = os.cpu_count() or 1
    if r.nano_cpus < 0 or r.nano_cpus > cpus * 1_000_000_000:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )
    if r.cpu_shares < 0 or r.cpu_shares == 1:
        # runc's (the kernel's cpu.shares) minimum; Docker passes the value on and fails there.
        raise InvalidArgument(f"invalid --cpu-shares {r.cpu_shares}: the minimum allowed is 2")
    if r.cpuset_cpus:
        wanted = _cpu_list(r.cpuset_cpus)
        if wanted is None:
            raise InvalidArgument(f"Invalid value {r.cpuset_cpus} for cpuset cpus")
        online = _online_cpus()
        if not wanted <= (_cpu_list(online) or set()):
            raise InvalidArgument(
                f"Requested CPUs are not available - requested {r.cpuset_cpus}, available: {online}"
            )
    for ulimit in r.ulimits:
        if ulimit.name == "nofile" and ulimit.hard > _nr_open():
            raise InvalidArgument(
                f"--ulimit nofile={ulimit.soft}:{ulimit.hard}: the hard limit is above the"
                f" kernel's maximum ({_nr_open()}, fs.nr_open)"
            )
    if not update and r.memory > 0 and r.memory_swap == 0:
        r = replace(r, memory_swap=2 * r.memory)  # Docker's default: as much swap as memory
    if r.pids_limit is not None and r.pids_limit <= 0 and not update:
        r = replace(r, pids_limit=None)  # 0 and -1 mean unlimited, recorded as null
    return r


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20
