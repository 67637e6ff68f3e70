"""What to run and how, and its OCI runtime-spec ``config.json`` (version 1.0.2).

The generated config is Docker's default container: pid/ipc/uts/mount namespaces (plus a network
namespace with only loopback for ``--network none``; ``host`` shares the host's), Docker's
default capabilities, masked and read-only paths and mounts, ``/etc/hosts``, ``/etc/resolv.conf``
and ``/etc/hostname`` bound from a per-container directory, RLIMIT_NOFILE within the host's hard
limit. No seccomp profile and no AppArmor/SELinux label are applied yet.

Cgroups: ``linux.cgroupsPath`` is ``strata/<id>``, relative, for runc's cgroupfs driver; runc
places it under its own cgroup in every hierarchy (a v1/v2 hybrid host like the one this was built
on, or a v2 host), so containers stay within the limits of whoever started them. There is no
systemd cgroup driver: strata runs without a daemon and often where systemd is not pid 1.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from strata.errors import InvalidArgument
from strata.runtime.resources import Resources

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFIG_NAME = "config.json"
CGROUP_PARENT = "strata"
INIT_PATH = "/dev/init"
INIT_ANNOTATION = "org.strata.init"
NOFILE_SOFT, NOFILE_HARD = 1024, 524288  # Docker 25+ (containerd's) defaults, capped below

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]
DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": _NOSUID_NOEXEC_NODEV},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": _NOSUID_NOEXEC_NODEV,
    },
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=67108864"],
    },
)
# Docker's device cgroup: deny all, then the basic character devices; fuse stays denied.
_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    *(
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
    ),
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]
DOCKER_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


class Network(StrEnum):
    """Where the container's network comes from."""

    HOST = "host"  # the host's interfaces (no network namespace)
    NONE = "none"  # a private namespace with loopback only
    BRIDGE = "bridge"  # a namespace strata.network made and wired (`RunSpec.netns`)


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path bound into the container (``-v HOST:CTR[:ro]``)."""

    source: Path
    destination: str
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """A tmpfs in the container (``--tmpfs``, ``--mount type=tmpfs``), with its mount options."""

    destination: str
    options: tuple[str, ...] = ("nosuid", "nodev", "noexec")


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """The container's process. ``user`` is ``user[:group]``, names or numbers, empty for root."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (rows, columns) of the terminal at start


@dataclass(frozen=True, slots=True)
class EtcFiles:
    """The generated files bound over the image's ``/etc/hosts``, ``resolv.conf``, ``hostname``."""

    hosts: Path
    resolv_conf: Path
    hostname: Path


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything the backends need to run one container, before it becomes a config.json.

    ``init`` is a static init binary on the host (Docker's ``--init``: docker-init/tini) bound at
    ``/dev/init`` and run as pid 1 so that signals and zombies are handled for the command.
    """

    rootfs: Path
    process: ProcessSpec
    hostname: str
    network: Network = Network.HOST
    mounts: tuple[BindMount, ...] = ()
    readonly_rootfs: bool = False
    etc: EtcFiles | None = None
    init: Path | None = None
    tmpfs: tuple[TmpfsMount, ...] = ()  # vol: mounted with the binds, parents first
    netns: Path | None = None  # net (issue 12): the network namespace to join (bridge networks)
    # res: cgroup limits and rlimits (``--memory``, ``--cpus``, ``--ulimit``...); None: none.
    resources: Resources | None = None


def parse_volume(text: str) -> BindMount:
    """Parse ``-v HOST:CTR[:ro|rw]``; both paths must be absolute."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: {text!r}")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid volume specification: {text!r}: invalid mode {mode!r}")
    if not parts[0].startswith("/"):
        raise InvalidArgument(f"invalid volume specification: {text!r}: host path must be absolute")
    return BindMount(Path(parts[0]), parts[1], readonly=mode == "ro")


def nofile_limit() -> tuple[int, int]:
    """RLIMIT_NOFILE for containers: Docker's 1024/524288, lowered to the host's hard limit."""
    _, host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = NOFILE_HARD if host_hard == resource.RLIM_INFINITY else min(NOFILE_HARD, host_hard)
    return min(NOFILE_SOFT, hard), hard


def find_init() -> Path | None:
    """The host's static init for ``--init``: Docker's ``docker-init`` or ``tini-static``."""
    for name in ("docker-init", "tini-static"):
        found = shutil.which(name)
        if found:
            return Path(found).resolve()
    return None


def default_hostname(container_id: str, network: Network) -> str:
    """Docker's default: the host's name on the host network, else the short container ID."""
    import socket

    return socket.gethostname() if network is Network.HOST else container_id[:12]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def write_etc_files(directory: Path, *, hostname: str, network: Network) -> EtcFiles:
    """Write the container's hosts, resolv.conf and hostname files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = EtcFiles(directory / "hosts", directory / "resolv.conf", directory / "hostname")
    if network is Network.HOST:
        try:
            hosts = Path("/etc/hosts").read_bytes()
        except OSError:
            hosts = DOCKER_HOSTS.encode()
    else:
        hosts = DOCKER_HOSTS.encode()
    try:
        resolv = Path("/etc/resolv.conf").read_bytes()
    except OSError:
        resolv = b""
    _write(files.hosts, hosts)
    _write(files.resolv_conf, resolv)
    _write(files.hostname, f"{hostname}\n".encode())
    return files


def _merge_env(entries: tuple[str, ...]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid environment variable {entry!r}: expected KEY=VALUE")
        merged[key] = value  # a later definition wins, keeping the first one's position
    return merged


def _check_destination(destination: str) -> None:
    if not destination.startswith("/") or destination.rstrip("/") == "":
        raise InvalidArgument(
            f"invalid mount destination {destination!r}: must be an absolute path, not /"
        )


def _bind(source: Path, destination: str, *, readonly: bool) -> dict[str, Any]:
    options = ["rbind", "rprivate", *(["ro"] if readonly else [])]
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def _tmpfs(mount: TmpfsMount) -> dict[str, Any]:
    return {
        "destination": mount.destination,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": list(mount.options),
    }


def generate_config(spec: RunSpec, *, container_id: str) -> dict[str, Any]:
    """The OCI runtime-spec config.json for ``spec`` (users resolved inside ``spec.rootfs``)."""
    proc = spec.process
    if not proc.args:
        raise InvalidArgument("no command specified")
    if not proc.cwd.startswith("/"):
        raise InvalidArgument(
            f"the working directory {proc.cwd!r} is invalid, it needs to be an absolute path"
        )
    if not spec.hostname or len(spec.hostname) > 64 or "/" in spec.hostname:
        raise InvalidArgument(f"invalid hostname {spec.hostname!r}: 1 to 64 characters, no '/'")
    rootfs = spec.rootfs.resolve()
    if not rootfs.is_dir():
        raise InvalidArgument(f"rootfs {spec.rootfs}: not a directory")
    from strata.runtime.users import resolve_user  # its models load only when needed

    user = resolve_user(rootfs, proc.user)

    env = _merge_env(proc.env)
    head = {"PATH": env.pop("PATH", DEFAULT_PATH), "HOSTNAME": env.pop("HOSTNAME", spec.hostname)}
    env = {**head, **env}
    if proc.terminal:
        env.setdefault("TERM", "xterm")
    env.setdefault("HOME", user.home)

    args = list(proc.args)
    annotations: dict[str, str] = {}
    mounts = [dict(m, options=list(m["options"])) for m in DEFAULT_MOUNTS]
    if spec.etc is not None:
        for source, destination in (
            (spec.etc.resolv_conf, "/etc/resolv.conf"),
            (spec.etc.hostname, "/etc/hostname"),
            (spec.etc.hosts, "/etc/hosts"),
        ):
            mounts.append(_bind(source, destination, readonly=spec.readonly_rootfs))
    # Parents before children, as Docker sorts them: a bind inside another lands on top of it.
    user_mounts: list[BindMount | TmpfsMount] = [*spec.mounts, *spec.tmpfs]
    for bind in sorted(user_mounts, key=lambda b: len(Path(b.destination).parts)):
        _check_destination(bind.destination)
        if isinstance(bind, TmpfsMount):
            mounts.append(_tmpfs(bind))
            continue
        if not bind.source.is_absolute() or not bind.source.exists():
            raise InvalidArgument(f"bind source path does not exist: {bind.source}")
        mounts.append(_bind(bind.source, bind.destination, readonly=bind.readonly))
    if spec.init is not None:
        if not spec.init.is_file():
            raise InvalidArgument(f"init binary {spec.init}: not a file")
        mounts.append(_bind(spec.init, INIT_PATH, readonly=True))
        args = [INIT_PATH, "--", *args]
        annotations[INIT_ANNOTATION] = "true"

    soft, hard = nofile_limit()
    process: dict[str, Any] = {
        "terminal": proc.terminal,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": args,
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": proc.cwd,
        "capabilities": {
            "bounding": list(DEFAULT_CAPABILITIES),
            "effective": list(DEFAULT_CAPABILITIES),
            "permitted": list(DEFAULT_CAPABILITIES),
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}]
        if spec.resources is None
        else spec.resources.rlimits((soft, hard)),
        "noNewPrivileges": False,
    }
    if proc.terminal and proc.console_size is not None:
        rows, columns = proc.console_size
        process["consoleSize"] = {"height": rows, "width": columns}
    namespaces = [{"type": kind} for kind in ("pid", "ipc", "uts", "mount")]
    if spec.netns is not None:
        namespaces.append({"type": "network", "path": str(spec.netns)})
    elif spec.network is not Network.HOST:
        namespaces.append({"type": "network"})
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "cgroupsPath": f"{CGROUP_PARENT}/{container_id}",
            "resources": {"devices": [dict(rule) for rule in _DEVICE_RULES]},
        },
    }
    if spec.resources is not None:
        from strata.runtime.cgroups import swap_accounting

        limits = spec.resources.linux_resources(swap_accounting=swap_accounting())
        config["linux"]["resources"].update(limits)
    if annotations:
        config["annotations"] = annotations
    return config


def write_bundle(bundle: Path, spec: RunSpec, *, container_id: str) -> Path:
    """Write ``bundle/config.json`` for ``spec`` (atomically); return the bundle directory."""
    config = generate_config(spec, container_id=container_id)
    bundle.mkdir(parents=True, exist_ok=True)
    _write(bundle / CONFIG_NAME, json.dumps(config, indent=1).encode())
    return bundle
