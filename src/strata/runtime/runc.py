"""The OCI runtime backend: runc (or a runc-compatible CLI such as crun) on a state root.

* ``run`` is ``runc run --detach``: one runc process that starts the container and leaves. We
  become a child subreaper first (PR_SET_CHILD_SUBREAPER, a process-wide setting, as
  containerd-shim does), so the orphaned init is ours to signal and ``waitpid``; then
  ``runc delete``. Without a terminal the container inherits the given descriptors themselves
  (runc's foreground ``run`` would interpose pipes and read our stdin even from the background);
  with one, ``--console-socket`` hands us the pty master and we copy the terminal (tty.py).
  The container's init is a session leader, so a Ctrl-C on our terminal reaches us only, and we
  forward it once.
* ``create``/``start``/``kill``/``delete``/``state`` are the runc commands of the same names.

runc prints its own failures to the stderr it shares with the container. To give Docker's
one-line error instead, the command is looked up in the rootfs before runc starts (as runc will:
Go's ``LookPath`` on the container's PATH), and runc's JSON log (``--log``) is read to tell a
runc failure from a container that exited 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    ContainerError,
    ContainerNotFound,
    FormatError,
    StrataError,
    ToolError,
)
from strata.runtime.backend import (
    INHERIT,
    ContainerState,
    Created,
    ProcessIO,
    Status,
    check_container_id,
    container_command,
    container_path_env,
    load_config,
)
from strata.runtime.process import SignalRelay, exit_status, forward_signals
from strata.runtime.rootfs import find_executable
from strata.runtime.syscalls import become_subreaper
from strata.runtime.tty import ConsoleSocket, attach_until_exit

LOG_NAME = "runc.log"
PID_NAME = "init.pid"
_START_FAILED = "unable to start container process: "


def preflight(config: dict[str, Any]) -> None:
    """Raise CommandNotFound/CommandNotExecutable now if runc would fail to exec the command."""
    process = config["process"]
    destinations = tuple(
        m["destination"] for m in config.get("mounts") or [] if isinstance(m, dict)
    )
    find_executable(
        Path(config["root"]["path"]),
        container_command(config),
        path_env=container_path_env(config),
        cwd=process.get("cwd") or "/",
        opaque=destinations,
    )


def cgroup_problem(
    mountinfo: str | None = None, shown: Callable[[str, str], bool] | None = None
) -> str | None:
    """Why runc (as root) cannot make a container's cgroup on this host, or None if it can.

    runc creates a cgroup for every container in every mounted hierarchy (v1, v2 or both) and
    fails when one is read-only, or hidden under another mount (a read-only tmpfs over
    /sys/fs/cgroup): what an unprivileged container or many CI runners give their processes.
    ``mountinfo`` is /proc/self/mountinfo's text (ours when None); ``shown(point, "major:minor")``
    tells whether that mount is the one seen at its mount point (ours: by ``stat``).
    """
    if _rootless():
        return None  # runc's rootless mode goes on without the cgroups it cannot write
    shown = shown or _mount_shown
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None  # no /proc to tell: let runc say
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        try:
            dash = fields.index("-")
        except ValueError:
            continue
        if len(fields) < dash + 4 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        if not shown(point, fields[2]):
            continue
        options = fields[5].split(",") + fields[dash + 3].split(",")
        if "ro" in options:
            return f"the cgroup filesystem {point} is read-only"
        points.append(point)
    if not points:
        return "no cgroup filesystem is mounted"
    return None


def _rootless() -> bool:
    """Whether runc runs rootless here (``--rootless auto``): not root, or in a user namespace."""
    if os.geteuid() != 0:
        return True
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _mount_shown(point: str, device: str) -> bool:
    try:
        st = os.stat(point)
    except OSError:
        return False
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" == device


def _exec_error(container_id: str, message: str) -> StrataError:
    """Docker's mapping of a runtime failure to an exit status (127/126), else a plain error."""
    if "already exists" in message or "container with id exists" in message:
        return Conflict(f"container ID {container_id} already exists")
    if _START_FAILED in message:
        detail = message.split(_START_FAILED, 1)[1]
        if "executable file not found" in detail or "no such file or directory" in detail:
            return CommandNotFound(detail)
        if "permission denied" in detail or "is a directory" in detail:
            return CommandNotExecutable(detail)
        return ContainerError(f"container {container_id}: {detail}")
    return ContainerError(f"container {container_id}: {message}")


def _log_error(log: Path) -> str | None:
    """The last error runc wrote to its JSON log, if any."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    message = None
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", ""))
    if message is None:
        return None
    for prefix in ("runc run failed: ", "runc create failed: "):
        message = message.removeprefix(prefix)
    return message


class RuncBackend:
    """Containers run by ``runc --root <state_root>`` (any runc-compatible binary)."""

    def __init__(self, state_root: Path, *, binary: str = "runc") -> None:
        self.state_root = state_root
        self.binary = binary

    @property
    def name(self) -> str:
        """``runc`` (or the binary's name, e.g. ``crun``)."""
        return Path(self.binary).name

    def available(self) -> bool:
        """Whether ``<binary> --version`` runs (select.py also runs a probe container)."""
        if shutil.which(self.binary) is None:
            return False
        try:
            done = subprocess.run(
                [self.binary, "--version"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0

    def argv(self, *args: str, log: Path | None = None) -> list[str]:
        """The runc command line for ``args`` on this state root (``--log`` as JSON if given)."""
        argv = [self.binary, "--root", str(self.state_root)]
        if log is not None:
            argv += ["--log", str(log), "--log-format", "json"]
        return [*argv, *args]

    def _call(self, container_id: str, *args: str) -> str:
        """Run a runc command that does not involve the container's stdio; its stdout."""
        check_container_id(container_id)
        try:
            done = subprocess.run(self.argv(*args), capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ToolError(f"{self.binary}: {exc.strerror}") from None
        if done.returncode == 0:
            return done.stdout
        message = _stderr_message(done.stderr)
        if "does not exist" in message:
            raise ContainerNotFound(f"no such container in {self.name}: {container_id}")
        if any(word in message for word in ("not running", "stopped", "already running", "paused")):
            raise Conflict(f"container {container_id}: {message}")
        raise ContainerError(f"container {container_id}: {self.name} {args[0]}: {message}")

    def _prepare(self, container_id: str, bundle: Path) -> tuple[dict[str, Any], Path]:
        check_container_id(container_id)
        if (self.state_root / container_id).exists():  # before touching the bundle's files
            raise Conflict(f"container ID {container_id} already exists")
        config = load_config(bundle)
        preflight(config)
        problem = cgroup_problem()
        if problem is not None:
            # Before runc, which would print its own error too, on the container's stderr.
            raise ContainerError(
                f"container {container_id}: {self.name} cannot run containers here: {problem} "
                "(--runtime chroot runs without cgroups)"
            )
        log = bundle / LOG_NAME
        log.write_bytes(b"")
        with contextlib.suppress(FileNotFoundError):
            (bundle / PID_NAME).unlink()
        return config, log

    def run(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> int:
        """Run in the foreground; the container's exit status.

        Makes the calling process a child subreaper (see the module docstring).
        """
        config, log = self._prepare(container_id, bundle)
        become_subreaper()
        relay = SignalRelay()  # installed before the launch: a signal meanwhile waits, not kills
        with forward_signals(relay):
            pid, master = self._launch(container_id, bundle, log, "run", stdio, config)
            try:
                # The init is our child now (we are its subreaper): its pid cannot be reused
                # before we reap it, so signalling it directly is safe.
                relay.target(lambda sig: os.kill(pid, sig))
                if master is not None:
                    attach_until_exit(master, pid, stdio)
                code = _reap(pid)
            except BaseException:
                # Whatever went wrong on our side, no container is left running unwatched.
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                _reap(pid)
                raise
            finally:
                with contextlib.suppress(StrataError):
                    self._call(container_id, "delete", "--force", container_id)
        return code

    def create(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> Created:
        """``runc create``: the container waits for ``start``; stdio are the given descriptors."""
        config, log = self._prepare(container_id, bundle)
        pid, master = self._launch(container_id, bundle, log, "create", stdio, config)
        return Created(pid=pid, console=master)

    def _spawn(self, argv: list[str], **streams: Any) -> subprocess.Popen[bytes]:
        # Its own process group: a Ctrl-C meant for the container cannot kill runc midway.
        try:
            return subprocess.Popen(argv, process_group=0, **streams)
        except OSError as exc:
            raise ToolError(f"{self.binary}: {exc.strerror}") from None

    def _launch(
        self,
        container_id: str,
        bundle: Path,
        log: Path,
        command: str,
        stdio: ProcessIO,
        config: dict[str, Any],
    ) -> tuple[int, int | None]:
        """``runc run --detach`` or ``runc create``: the init's pid, the pty master if any.

        Without a terminal the container inherits ``stdio`` itself (runc's pass-through mode).
        """
        head = [command, *(["--detach"] if command == "run" else [])]
        head += ["--pid-file", str(bundle / PID_NAME)]
        tail = ["--bundle", str(bundle), container_id]
        if not config["process"].get("terminal"):
            argv = self.argv(*head, *tail, log=log)
            proc = self._spawn(argv, stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr)
            if proc.wait() != 0:
                raise _exec_error(container_id, _log_error(log) or f"{self.name} {command} failed")
            return self._read_pid(bundle), None
        with ConsoleSocket() as console:
            argv = self.argv(*head, "--console-socket", console.address, *tail, log=log)
            proc = self._spawn(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            pidfd = os.pidfd_open(proc.pid)
            try:
                master = console.receive(pidfd)
            except ContainerError:
                proc.communicate()
                raise _exec_error(container_id, _log_error(log) or "no console received") from None
            finally:
                os.close(pidfd)
            _, err = proc.communicate()
            if proc.returncode != 0:
                os.close(master)
                message = _log_error(log) or _stderr_message(err.decode(errors="replace"))
                raise _exec_error(container_id, message)
        return self._read_pid(bundle), master

    def _read_pid(self, bundle: Path) -> int:
        try:
            return int((bundle / PID_NAME).read_text().strip())
        except (OSError, ValueError):
            raise ContainerError(f"bundle {bundle}: {self.name} wrote no pid file") from None

    def start(self, container_id: str) -> None:
        """``runc start``."""
        self._call(container_id, "start", container_id)

    def kill(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        """``runc kill`` (the init only, as ``docker kill``)."""
        self._call(container_id, "kill", container_id, str(int(sig)))

    def pause(self, container_id: str) -> None:
        """``runc pause``: freeze every process of the container (cgroup freezer)."""
        self._call(container_id, "pause", container_id)

    def resume(self, container_id: str) -> None:
        """``runc resume``: thaw what `pause` froze."""
        self._call(container_id, "resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """``runc update --resources -``: new cgroup limits for a running container (OCI
        ``linux.resources`` form)."""
        check_container_id(container_id)
        argv = self.argv("update", "--resources", "-", container_id)
        try:
            done = subprocess.run(
                argv, input=json.dumps(resources), capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise ToolError(f"{self.binary}: {exc.strerror}") from None
        if done.returncode != 0:
            message = _stderr_message(done.stderr)
            if "does not exist" in message or "not running" in message:
                raise Conflict(f"container {container_id}: {message}")
            raise ContainerError(f"Cannot update container {container_id}: {message}")

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """``runc delete [--force]`` (a created container is deleted without ``force``)."""
        self._call(container_id, "delete", *(["--force"] if force else []), container_id)

    def state(self, container_id: str) -> ContainerState:
        """``runc state``."""
        out = self._call(container_id, "state", container_id)
        try:
            data = json.loads(out)
            status = Status(data["status"])
            pid = int(data.get("pid") or 0)
            bundle = Path(data["bundle"])
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"{self.name} state {container_id}: unexpected output") from None
        return ContainerState(
            id=container_id,
            status=status,
            pid=0 if status is Status.STOPPED else pid,
            bundle=bundle,
        )


def _reap(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 255  # not ours after all (no subreaper): the status is lost
    return exit_status(status)


def _stderr_message(stderr: str) -> str:
    """runc's last stderr line, without its logrus decoration."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "failed"
    line = lines[-1]
    with contextlib.suppress(ValueError):
        entry = json.loads(line)
        if isinstance(entry, dict) and "msg" in entry:
            return str(entry["msg"])
    if 'msg="' in line:
        return line.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return line
