"""The namespaces+chroot backend, for hosts without an OCI runtime: fork, unshare, pivot, exec.

``fork`` gives an intermediate child that ``unshare``s the mount, pid, uts, ipc (and, for
``--network none``, network) namespaces; its next child is pid 1 of the new pid namespace and runs
:func:`strata.runtime.nsinit.container_init`. In ``run`` the intermediate stays, relays forwarded
signals to pid 1 and exits with its status; in ``create`` it leaves at once, so pid 1 is orphaned
to the caller's subreaper like runc's init. Children report through a pipe: pid 1's host pid,
"ready", or an error with Docker's exit status (127, 126, 125).

State lives in ``<state_root>/<id>/``: ``state.json`` (pid 1's host pid and start time, to
survive pid reuse) and, until ``start``, ``exec.fifo``, whose opening releases the created init.

Isolated as with runc: mounts (``pivot_root``, old root detached, Docker's masked and read-only
paths), pids, hostname, IPC, network for ``none``; capability bounding set cut to Docker's; every
mount but devpts ``nodev``. Not isolated: no cgroups (no memory/CPU/pids limits, no device
cgroup, so ``nodev`` stands in for it, and ``-v`` binds are ``nodev`` too), no seccomp, no
AppArmor, no user namespace (root inside is root outside, as with Docker's defaults).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import NoReturn

from strata.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    ContainerError,
    ContainerNotFound,
    FormatError,
)
from strata.runtime import syscalls as sc
from strata.runtime.backend import (
    INHERIT,
    ContainerState,
    Created,
    ProcessIO,
    Status,
    check_container_id,
    load_config,
)
from strata.runtime.nsinit import InitPlan, container_init, parse_plan, report
from strata.runtime.process import (
    FORWARDED_SIGNALS,
    SignalRelay,
    exit_status,
    forward_signals,
    is_alive,
    proc_stat,
    wait_exit,
)
from strata.runtime.tty import attach_until_exit, receive_fd

STATE_NAME = "state.json"
FIFO_NAME = "exec.fifo"
START_TIMEOUT = 10.0
_ALL_NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC


def _wire_stdio(stdio: ProcessIO) -> None:
    # Through fresh copies first: the given descriptors may themselves be 0, 1 or 2.
    copies = [os.dup(fd) for fd in (stdio.stdin, stdio.stdout, stdio.stderr)]
    for target, fd in enumerate(copies):
        os.dup2(fd, target)
        os.close(fd)


def _intermediate(
    plan: InitPlan,
    stdio: ProcessIO,
    report_fd: int,
    console: socket.socket | None,
    fifo: str | None,
    detach: bool,
) -> NoReturn:
    code = 125
    try:
        os.setpgid(0, 0)  # terminal signals reach the caller only; it forwards them once
        if not plan.terminal:
            _wire_stdio(stdio)
        if plan.join_net is not None:
            sc.setns(plan.join_net, sc.CLONE_NEWNET)
        sc.unshare(plan.clone_flags)
        pid1 = os.fork()
        if pid1 == 0:
            container_init(plan, report_fd, console, fifo)
        report(report_fd, f"P{pid1}")
        os.close(report_fd)
        if console is not None:
            console.close()
        if detach:
            code = 0
        else:
            for sig in FORWARDED_SIGNALS:
                signal.signal(sig, lambda signum, _frame: os.kill(pid1, signum))
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
            code = wait_exit(pid1)
    except BaseException as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        report(report_fd, f"E125 namespaces: {detail}")
    finally:
        os._exit(code)


def _read_report(fd: int) -> tuple[int, bool, tuple[int, str] | None]:
    """Read the children's report to EOF: pid 1's pid, whether it got ready, its error."""
    chunks = []
    with os.fdopen(fd, "rb") as stream:
        chunks.append(stream.read())
    pid1, ready, error = 0, False, None
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        if line.startswith("P") and line[1:].isdigit():
            pid1 = int(line[1:])
        elif line == "R":
            ready = True
        elif line.startswith("E") and error is None:
            code, _, message = line[1:].partition(" ")
            error = (int(code) if code.isdigit() else 125, message)
    return pid1, ready, error


def _raise_start_error(container_id: str, error: tuple[int, str] | None) -> NoReturn:
    code, message = error if error is not None else (125, "the container's init died")
    if code == 127:
        raise CommandNotFound(message)
    if code == 126:
        raise CommandNotExecutable(message)
    raise ContainerError(f"container {container_id}: {message}")


class ChrootBackend:
    """Containers as namespaced, pivot_rooted children of the calling process (root only)."""

    def __init__(self, state_root: Path) -> None:
        self.state_root = state_root
        self._available: bool | None = None

    @property
    def name(self) -> str:
        """``chroot``."""
        return "chroot"

    def available(self) -> bool:
        """Whether a forked child can unshare the namespaces (root with CAP_SYS_ADMIN)."""
        if self._available is None:
            self._available = os.geteuid() == 0 and _probe_unshare()
        return self._available

    # -- state ------------------------------------------------------------------------------

    def _dir(self, container_id: str) -> Path:
        check_container_id(container_id)
        return self.state_root / container_id

    def _claim(self, container_id: str) -> Path:
        directory = self._dir(container_id)
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise Conflict(f"container ID {container_id} already exists") from None
        return directory

    def _write_state(self, directory: Path, pid: int, bundle: Path) -> None:
        info = proc_stat(pid)
        state = {
            "pid": pid,
            "start_time": info.start_time if info else 0,
            "bundle": str(bundle.resolve()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = directory / f".{STATE_NAME}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, directory / STATE_NAME)

    def _load(self, container_id: str) -> tuple[Path, int, int, Path]:
        directory = self._dir(container_id)
        try:
            data = json.loads((directory / STATE_NAME).read_text())
            return directory, int(data["pid"]), int(data["start_time"]), Path(data["bundle"])
        except FileNotFoundError:
            raise ContainerNotFound(f"no such container in chroot: {container_id}") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise FormatError(f"container {container_id}: unreadable state") from None

    def state(self, container_id: str) -> ContainerState:
        """Created (waiting for start), running, or stopped, from the state dir and /proc."""
        directory, pid, start_time, bundle = self._load(container_id)
        if not is_alive(pid, start_time):
            return ContainerState(container_id, Status.STOPPED, 0, bundle)
        status = Status.CREATED if (directory / FIFO_NAME).exists() else Status.RUNNING
        return ContainerState(container_id, status, pid, bundle)

    # -- life cycle -------------------------------------------------------------------------

    def _spawn(
        self, plan: InitPlan, stdio: ProcessIO, fifo: Path | None, *, detach: bool
    ) -> tuple[int, int, socket.socket | None]:
        """Fork the intermediate; its pid, the report pipe's read end, our console end."""
        ours, theirs = socket.socketpair() if plan.terminal else (None, None)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        # Signals stay blocked across fork so the intermediate cannot die of one before its
        # relay is installed; it unblocks them itself.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                if ours is not None:
                    ours.close()
                _intermediate(plan, stdio, write_fd, theirs, str(fifo) if fifo else None, detach)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(write_fd)
            if theirs is not None:
                theirs.close()
        return pid, read_fd, ours

    def _begin(
        self, container_id: str, bundle: Path, stdio: ProcessIO, *, detach: bool
    ) -> tuple[Path, int, int, int | None]:
        """Claim the ID, fork, wait for ready: state dir, intermediate pid, pid 1, pty master."""
        plan = parse_plan(load_config(bundle))
        directory = self._claim(container_id)
        try:
            fifo = directory / FIFO_NAME if detach else None
            if fifo is not None:
                os.mkfifo(fifo, 0o600)
            pid, report_fd, console = self._spawn(plan, stdio, fifo, detach=detach)
            try:
                pid1, ready, error = _read_report(report_fd)
                if not ready or error is not None:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                    _raise_start_error(container_id, error)
                master = receive_fd(console) if console is not None else None
            finally:
                if console is not None:
                    console.close()
            self._write_state(directory, pid1, bundle)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory, pid, pid1, master

    def run(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> int:
        """Run in the foreground; the container's exit status."""
        relay = SignalRelay()  # installed before the fork: a signal meanwhile waits, not kills
        with forward_signals(relay):
            directory, pid, pid1, master = self._begin(container_id, bundle, stdio, detach=False)
            try:
                relay.target(lambda sig: os.kill(pid, sig))
                if master is not None:
                    attach_until_exit(master, pid, stdio)
                _, status = os.waitpid(pid, 0)
                return exit_status(status)
            except BaseException:
                # Whatever went wrong on our side, no container is left running unwatched.
                with contextlib.suppress(OSError):
                    os.kill(pid1, signal.SIGKILL)  # the intermediate, our child, holds pid1
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                raise
            finally:
                shutil.rmtree(directory, ignore_errors=True)

    def create(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> Created:
        """Set the container up; its process waits for ``start``."""
        _, pid, pid1, master = self._begin(container_id, bundle, stdio, detach=True)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # the intermediate leaves at once
        return Created(pid=pid1, console=master)

    def start(self, container_id: str) -> None:
        """Release the created container's process through its exec FIFO."""
        directory, pid, start_time, _ = self._load(container_id)
        if not is_alive(pid, start_time):
            raise Conflict(f"container {container_id}: cannot start a container that has stopped")
        try:
            fd = os.open(directory / FIFO_NAME, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Conflict(
                f"container {container_id}: cannot start an already running container"
            ) from None
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if _readable(fd, 0.05):
                    if os.read(fd, 1) != b"0":
                        raise Conflict(f"container {container_id}: already started")
                    break
                if not is_alive(pid, start_time):
                    raise ContainerError(f"container {container_id}: exited before it started")
                if time.monotonic() > deadline:
                    raise ContainerError(f"container {container_id}: did not start")
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            (directory / FIFO_NAME).unlink()

    def kill(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        """Signal pid 1 (through a pidfd checked against the start time: no pid-reuse race)."""
        _, pid, start_time, _ = self._load(container_id)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is None or not is_alive(pid, start_time):
            if pidfd is not None:
                os.close(pidfd)
            raise Conflict(f"container {container_id} is not running")
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            raise Conflict(f"container {container_id} is not running") from None
        finally:
            os.close(pidfd)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove the state; a created container is killed first, a running one with ``force``."""
        directory, pid, start_time, _ = self._load(container_id)
        if is_alive(pid, start_time):
            if not force and not (directory / FIFO_NAME).exists():
                raise Conflict(f"cannot delete container {container_id} that is not stopped")
            with contextlib.suppress(Conflict):
                self.kill(container_id, signal.SIGKILL)
            deadline = time.monotonic() + START_TIMEOUT
            while is_alive(pid, start_time) and time.monotonic() < deadline:
                time.sleep(0.005)
        shutil.rmtree(directory, ignore_errors=True)


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()  # not select(): descriptors past 1023 are normal in a busy monitor
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _probe_unshare() -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            sc.unshare(_ALL_NAMESPACES | sc.CLONE_NEWNET)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
