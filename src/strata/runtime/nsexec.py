"""``exec`` for the chroot backend: join a running container's namespaces with setns(2).

The container's init (pid 1 inside) has its mount, pid, uts, ipc (and for ``--network none``
network) namespaces; we open them from ``/proc/<pid>/ns/`` and its root from
``/proc/<pid>/root`` before anything else, so they are the ones of that process. An intermediate
child joins them; joining a pid namespace only places later children in it, so the intermediate
forks the process itself, which changes into the container's root, takes a pty of the
container's own devpts if asked, drops to the container's capabilities, user and rlimits, and
execs. The intermediate relays signals to it and exits with its status, as ``run`` does.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import resource
import signal
import socket
import struct
import termios
from pathlib import Path
from typing import Any, NoReturn

from strata.errors import CommandNotExecutable, CommandNotFound, ContainerError
from strata.runtime import syscalls as sc
from strata.runtime.backend import ProcessIO
from strata.runtime.nsinit import InitPlan, parse_plan, report
from strata.runtime.process import (
    FORWARDED_SIGNALS,
    SignalRelay,
    exit_status,
    forward_signals,
    wait_exit,
)
from strata.runtime.rootfs import find_executable
from strata.runtime.tty import attach_until_exit, receive_fd, send_fd, set_terminal_size

# Joined in this order; the mount namespace last, as it changes what paths mean.
_NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")
_TIOCGPTN, _TIOCSPTLCK = 0x80045430, 0x40045431

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def setns(fd: int) -> None:
    """setns(2) into the namespace open on ``fd`` (Python 3.11 has no os.setns)."""
    if _libc.setns(fd, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open_namespaces(pid: int) -> tuple[list[int], int]:
    fds: list[int] = []
    try:
        for name in _NAMESPACES:
            fds.append(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise ContainerError(f"container process {pid}: cannot join: {exc.strerror}") from None
    return fds, root


def _open_pty(size: tuple[int, int] | None) -> tuple[int, int]:
    """A pty of the container's devpts (we are in its root): master, slave."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if size is not None:
        set_terminal_size(slave, *size)
    return master, slave


def _become(plan: InitPlan) -> None:
    for number in plan.drop_caps:
        with contextlib.suppress(OSError):
            sc.prctl(sc.PR_CAPBSET_DROP, number)
    for number, soft, hard in plan.rlimits:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(number, (soft, hard))
    os.setgroups(list(plan.additional_gids))
    os.setgid(plan.gid)
    os.setuid(plan.uid)
    for signum in range(1, signal.NSIG):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _process(
    plan: InitPlan, root: int, report_fd: int, console: socket.socket | None
) -> NoReturn:  # pragma: no cover - runs in the forked process
    try:
        os.fchdir(root)
        os.chroot(".")
        os.chdir(plan.cwd)
        if console is not None:
            os.setsid()
            master, slave = _open_pty(plan.console_size)
            send_fd(console, master)
            os.close(master)
            console.close()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.close(slave)
        path = find_executable(Path("/"), plan.args[0], path_env=plan.path_env, cwd=plan.cwd)
        _become(plan)
        report(report_fd, "R")
        os.closerange(3, 1 << 20)
        os.execve(path or plan.args[0], list(plan.args), plan.env)
    except (CommandNotFound, CommandNotExecutable) as exc:
        report(report_fd, f"E126 exec failed: {exc}")
    except BaseException as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        report(report_fd, f"E126 exec failed: {detail}")
    os._exit(126)


def _intermediate(
    plan: InitPlan,
    namespaces: list[int],
    root: int,
    stdio: ProcessIO,
    report_fd: int,
    console: socket.socket | None,
) -> NoReturn:  # pragma: no cover - runs in the forked process
    code = 126
    try:
        os.setpgid(0, 0)
        if console is None:
            copies = [os.dup(fd) for fd in (stdio.stdin, stdio.stdout, stdio.stderr)]
            for target, fd in enumerate(copies):
                os.dup2(fd, target)
                os.close(fd)
        for fd in namespaces:
            setns(fd)
        child = os.fork()
        if child == 0:
            _process(plan, root, report_fd, console)
        if console is not None:
            console.close()
        os.close(report_fd)
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, lambda signum, _frame: os.kill(child, signum))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        code = wait_exit(child)
    except BaseException as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        report(report_fd, f"E126 exec failed: {detail}")
    finally:
        os._exit(code)


def chroot_exec(pid: int, process: dict[str, Any], stdio: ProcessIO) -> int:
    """Run the OCI ``process`` in the namespaces of the container whose init is ``pid``."""
    relay = SignalRelay()  # from before the fork: a signal meanwhile is kept, not lost
    with forward_signals(relay):
        return _exec(pid, process, stdio, relay)


def _exec(pid: int, process: dict[str, Any], stdio: ProcessIO, relay: SignalRelay) -> int:
    plan = parse_plan({"process": process, "root": {"path": "/"}})
    namespaces, root = _open_namespaces(pid)
    ours, theirs = socket.socketpair() if plan.terminal else (None, None)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the forked intermediate
            if ours is not None:
                ours.close()
            _intermediate(plan, namespaces, root, stdio, write_fd, theirs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        for fd in (*namespaces, root):
            os.close(fd)
        if theirs is not None:
            theirs.close()
    try:
        master = receive_fd(ours) if ours is not None else None
    except (ContainerError, OSError):
        master = None
    finally:
        if ours is not None:
            ours.close()
    with os.fdopen(read_fd, "rb") as stream:
        lines = stream.read().decode(errors="replace").splitlines()
    failure = next((line for line in lines if line.startswith("E")), None)
    if failure is not None or "R" not in lines:
        if master is not None:
            os.close(master)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        message = failure[1:].partition(" ")[2] if failure else "exec failed"
        raise CommandNotExecutable(message)
    try:
        relay.target(lambda sig: os.kill(child, sig))
        if master is not None:
            attach_until_exit(master, child, stdio)
        _, status = os.waitpid(child, 0)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        raise
    return exit_status(status)
