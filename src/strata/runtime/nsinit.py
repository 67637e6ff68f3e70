"""The chroot backend's container init: what the forked child does between fork and exec.

:func:`parse_plan` reads the (strata-generated) config.json in the parent, so malformed input is
an error there; :func:`container_init` runs in pid 1 of the new namespaces and never returns. In
order: private mount propagation, the rootfs bound onto itself, the config's mounts (cgroup
mounts skipped: this backend has no cgroups), the basic devices bound from the host's ``/dev``,
the pty for a terminal, ``pivot_root`` into the rootfs (plain ``chroot`` if the kernel refuses),
masked and read-only paths, hostname, loopback up, rlimits, working directory, the executable
looked up on the container's PATH, then (``create``) a wait on the exec FIFO until ``start``,
and finally the capability bounding set cut to the config's, the user switched, exec.

Without a device cgroup, a node made with CAP_MKNOD or shipped in an image would reach the host's
devices, so every mount but devpts is ``nodev`` (the rootfs and ``/dev`` too; the six basic
devices are bind mounts of the host's nodes, which keep working).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import socket
import struct
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from strata.errors import CommandNotExecutable, CommandNotFound, FormatError
from strata.runtime import syscalls as sc
from strata.runtime.backend import container_command, container_path_env
from strata.runtime.rootfs import find_executable, resolve_components
from strata.runtime.tty import send_fd, set_terminal_size

# By number, as in <linux/capability.h>.
CAPABILITIES = (
    *("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID"),
    *("SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN"),
    *("NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE"),
    *("SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME"),
    *("SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP"),
    *("MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ"),
    *("PERFMON", "BPF", "CHECKPOINT_RESTORE"),
)
_NAMESPACES = {
    "mount": sc.CLONE_NEWNS,
    "pid": sc.CLONE_NEWPID,
    "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC,
    "network": sc.CLONE_NEWNET,
}
_FLAGS = {
    "ro": sc.MS_RDONLY,
    "nosuid": sc.MS_NOSUID,
    "nodev": sc.MS_NODEV,
    "noexec": sc.MS_NOEXEC,
    "sync": sc.MS_SYNCHRONOUS,
    "dirsync": sc.MS_DIRSYNC,
    "mand": sc.MS_MANDLOCK,
    "noatime": sc.MS_NOATIME,
    "nodiratime": sc.MS_NODIRATIME,
    "relatime": sc.MS_RELATIME,
    "strictatime": sc.MS_STRICTATIME,
}
_CLEARS = {"rw", "suid", "dev", "exec", "async", "nomand", "atime", "diratime", "norelatime"}
_PROPAGATION = {
    prefix + name: flag | (sc.MS_REC if prefix else 0)
    for name, flag in (
        ("private", sc.MS_PRIVATE),
        ("shared", sc.MS_SHARED),
        ("slave", sc.MS_SLAVE),
        ("unbindable", sc.MS_UNBINDABLE),
    )
    for prefix in ("", "r")
}
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
    "core": "/proc/kcore",
}
_TIOCGPTN, _TIOCSPTLCK = 0x80045430, 0x40045431
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


@dataclass(frozen=True, slots=True)
class MountStep:
    """One mount of the config, in mount(2) terms."""

    destination: str
    fstype: str
    source: str
    flags: int
    data: str
    bind: bool
    recursive: bool
    propagation: int


@dataclass(frozen=True, slots=True)
class InitPlan:
    """Everything pid 1 needs, decided before fork."""

    rootfs: str
    readonly_rootfs: bool
    clone_flags: int
    hostname: str | None
    mounts: tuple[MountStep, ...]
    masked: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    terminal: bool
    console_size: tuple[int, int] | None
    rlimits: tuple[tuple[int, int, int], ...]
    drop_caps: tuple[int, ...]
    command: str
    path_env: str
    join_net: str | None = None  # a network namespace to join (by path) before the others


def _mount_step(raw: Any) -> MountStep:
    if not isinstance(raw, dict) or not isinstance(raw.get("destination"), str):
        raise FormatError(f"config.json: mounts: bad entry {raw!r}")
    options = [str(o) for o in raw.get("options") or []]
    flags, data, bind, recursive, propagation = 0, [], raw.get("type") == "bind", False, 0
    for option in options:
        if option in ("bind", "rbind"):
            bind, recursive = True, recursive or option == "rbind"
        elif option in _FLAGS:
            flags |= _FLAGS[option]
        elif option in _PROPAGATION:
            propagation = _PROPAGATION[option]
        elif option not in _CLEARS:
            data.append(option)
    return MountStep(
        destination=raw["destination"],
        fstype=str(raw.get("type") or "none"),
        source=str(raw.get("source") or "none"),
        flags=flags,
        data=",".join(data),
        bind=bind,
        recursive=recursive,
        propagation=propagation,
    )


def parse_plan(config: dict[str, Any]) -> InitPlan:
    """The init plan for an OCI config (the subset strata generates; FormatError otherwise)."""
    try:
        process, linux = config["process"], config.get("linux") or {}
        flags = 0
        join_net = None
        for ns in linux.get("namespaces") or []:
            if ns.get("path") and ns["type"] == "network":
                join_net = str(ns["path"])  # a bridge network's (strata.network)
                continue
            if ns.get("path"):
                raise FormatError("config.json: joining namespaces by path is not supported")
            flags |= _NAMESPACES[ns["type"]]
        user = process.get("user") or {}
        env: dict[str, str] = {}
        for entry in process.get("env") or []:
            key, _, value = str(entry).partition("=")
            env[key] = value
        limits = []
        for rl in process.get("rlimits") or []:
            number = getattr(resource, str(rl["type"]))
            limits.append((int(number), int(rl["soft"]), int(rl["hard"])))
        keep = set((process.get("capabilities") or {}).get("bounding") or [])
        size = process.get("consoleSize")
        return InitPlan(
            rootfs=str(config["root"]["path"]),
            readonly_rootfs=bool(config["root"].get("readonly")),
            clone_flags=flags,
            hostname=config.get("hostname") or None,
            mounts=tuple(_mount_step(m) for m in config.get("mounts") or []),
            masked=tuple(str(p) for p in linux.get("maskedPaths") or []),
            readonly_paths=tuple(str(p) for p in linux.get("readonlyPaths") or []),
            args=tuple(str(a) for a in process["args"]),
            env=env,
            cwd=str(process.get("cwd") or "/"),
            uid=int(user.get("uid", 0)),
            gid=int(user.get("gid", 0)),
            additional_gids=tuple(int(g) for g in user.get("additionalGids") or []),
            terminal=bool(process.get("terminal")),
            console_size=(int(size["height"]), int(size["width"])) if size else None,
            rlimits=tuple(limits),
            drop_caps=tuple(
                n
                for n, name in enumerate(CAPABILITIES[: _last_cap() + 1])
                if f"CAP_{name}" not in keep
            ),
            command=container_command(config),
            path_env=container_path_env(config),
            join_net=join_net,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"config.json: unsupported or malformed: {exc!r}") from None


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def report(fd: int, message: str) -> None:
    """One line on the report pipe to the parent: ``P<pid>``, ``R`` (ready) or ``E<code> <msg>``."""
    line = message.replace("\n", " ") + "\n"
    with contextlib.suppress(OSError):
        os.write(fd, line.encode(errors="replace")[:4000])


def _target(rootfs: str, destination: str) -> str:
    parts = resolve_components(Path(rootfs), destination)
    if not parts:
        raise FormatError(f"mount destination {destination} resolves to the container's root")
    return os.path.join(rootfs, *parts)


def _mountpoint(path: str, *, is_file: bool) -> None:
    if is_file:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(path, exist_ok=True)


def _bind(source: str, target: str, flags: int, *, recursive: bool = False) -> None:
    sc.mount(source, target, None, sc.MS_BIND | (sc.MS_REC if recursive else 0))
    if flags:  # the kernel ignores flags on the first bind: they take a remount
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | flags)


def _do_mounts(plan: InitPlan) -> None:
    for step in plan.mounts:
        if step.fstype == "cgroup":
            continue
        target = _target(plan.rootfs, step.destination)
        if step.bind:
            source_is_dir = os.path.isdir(step.source)
            _mountpoint(target, is_file=not source_is_dir)
            _bind(step.source, target, step.flags | sc.MS_NODEV, recursive=step.recursive)
        else:
            _mountpoint(target, is_file=False)
            extra = 0 if step.fstype == "devpts" else sc.MS_NODEV
            sc.mount(step.source, target, step.fstype, step.flags | extra, step.data)
        if step.propagation:
            sc.mount(None, target, None, step.propagation)


def _do_devices(plan: InitPlan) -> None:
    if not any(step.destination == "/dev" for step in plan.mounts):
        return
    dev = _target(plan.rootfs, "/dev")
    for name in _DEVICES:
        target = os.path.join(dev, name)
        _mountpoint(target, is_file=True)
        _bind(f"/dev/{name}", target, sc.MS_NOSUID | sc.MS_NOEXEC)
    for name, link in _DEV_LINKS.items():
        with contextlib.suppress(FileExistsError):
            os.symlink(link, os.path.join(dev, name))


def _open_console(plan: InitPlan, console: socket.socket) -> int:
    """A pty of the container's own devpts: master sent to the parent, slave returned."""
    pts = _target(plan.rootfs, "/dev/pts")
    master = os.open(os.path.join(pts, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))
    slave_path = os.path.join(pts, str(number))
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if plan.console_size is not None:
        set_terminal_size(slave, *plan.console_size)
    console_path = os.path.join(_target(plan.rootfs, "/dev"), "console")
    _mountpoint(console_path, is_file=True)
    sc.mount(slave_path, console_path, None, sc.MS_BIND)
    send_fd(console, master)
    os.close(master)
    console.close()
    return slave


def _enter_root(plan: InitPlan) -> None:
    os.chdir(plan.rootfs)
    try:
        sc.pivot_root(".", ".")
        sc.umount2(".", sc.MNT_DETACH)  # the old root, stacked under the new one
    except OSError:
        os.chroot(".")  # e.g. a rootfs on the initramfs, where pivot_root is refused
    os.chdir("/")
    root_flags = sc.MS_NODEV | (sc.MS_RDONLY if plan.readonly_rootfs else 0)
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | root_flags)


def _protect_paths(plan: InitPlan) -> None:
    for path in plan.masked:
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
    for path in plan.readonly_paths:
        if not os.path.lexists(path):
            continue
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_REC | flags)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        (_, flags) = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _wait_for_start(fifo_fd: int) -> None:
    # Opening the FIFO for writing blocks until `start` opens it for reading.
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def _become_process(plan: InitPlan) -> None:
    for number in plan.drop_caps:
        with contextlib.suppress(OSError):  # caps the kernel does not know are no loss
            sc.prctl(sc.PR_CAPBSET_DROP, number)
    os.setgroups(list(plan.additional_gids))
    os.setgid(plan.gid)
    os.setuid(plan.uid)
    os.umask(0o022)
    for signum in range(1, signal.NSIG):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def container_init(
    plan: InitPlan, report_fd: int, console: socket.socket | None, fifo: str | None
) -> NoReturn:
    """Pid 1 of the container: set everything up, report, (wait for start,) exec."""
    step = "setup"
    try:
        os.setsid()
        os.umask(0)
        step = "mounts"
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        sc.mount(plan.rootfs, plan.rootfs, None, sc.MS_BIND | sc.MS_REC)
        _do_mounts(plan)
        _do_devices(plan)
        slave = _open_console(plan, console) if plan.terminal and console is not None else None
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC) if fifo else None
        step = "root"
        _enter_root(plan)
        _protect_paths(plan)
        step = "namespaces"
        if plan.hostname and plan.clone_flags & sc.CLONE_NEWUTS:
            sc.sethostname(plan.hostname)
        if plan.clone_flags & sc.CLONE_NEWNET:
            _loopback_up()
        for number, soft, hard in plan.rlimits:
            resource.setrlimit(number, (soft, hard))
        step = "cwd"
        os.makedirs(plan.cwd, exist_ok=True)
        os.chdir(plan.cwd)
        if slave is not None:
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.close(slave)
        path = find_executable(Path("/"), plan.args[0], path_env=plan.path_env, cwd=plan.cwd)
        if plan.command != plan.args[0]:  # behind --init: check the user's command too
            find_executable(Path("/"), plan.command, path_env=plan.path_env, cwd=plan.cwd)
        report(report_fd, "R")
        os.close(report_fd)
    except CommandNotFound as exc:
        report(report_fd, f"E127 {exc}")
        os._exit(127)
    except CommandNotExecutable as exc:
        report(report_fd, f"E126 {exc}")
        os._exit(126)
    except BaseException as exc:
        detail = f"{exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        report(report_fd, f"E125 {step}: {detail}")
        os._exit(125)
    try:
        if fifo_fd is not None:
            _wait_for_start(fifo_fd)
        _become_process(plan)
        os.closerange(3, 1 << 20)
        os.execve(path or plan.args[0], list(plan.args), plan.env)
    except BaseException as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        with contextlib.suppress(OSError):
            os.write(2, f"exec: {plan.args[0]!r}: {exc}\n".encode(errors="replace"))
        os._exit(code)
    os._exit(125)  # not reached: execve does not return
