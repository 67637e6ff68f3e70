"""``exec``: another process in a running container, as ``docker exec`` starts one.

The process is the container's own (its config.json ``process``: capabilities, rlimits, user,
environment, working directory) with the exec's changes on top: the command, ``-e`` added to the
environment, ``-w``, ``-u`` resolved in the container's ``/etc/passwd``, ``-t``. Then:

* runc: ``runc exec --process <file> --detach`` with us as child subreaper, as ``run`` does, so
  the process inherits our stdio (or, with ``-t``, its console comes to us) and its exit status
  is ours to reap;
* chroot: :mod:`strata.runtime.nsexec` joins the init's namespaces with setns(2).

A command that does not exist fails before anything starts, with runc's words and Docker's exit
status for a failed exec (126).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import CommandNotExecutable, CommandNotFound, ContainerError, InvalidArgument
from strata.runtime.backend import ProcessIO, RuntimeBackend, load_config
from strata.runtime.process import SignalRelay, exit_status, forward_signals
from strata.runtime.rootfs import find_executable
from strata.runtime.runc import RuncBackend
from strata.runtime.syscalls import become_subreaper
from strata.runtime.tty import ConsoleSocket, attach_until_exit
from strata.runtime.users import resolve_user


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """What ``exec`` takes besides the container."""

    command: tuple[str, ...]
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    console_size: tuple[int, int] | None = None  # (rows, columns)


def _merge_env(base: list[str], extra: tuple[str, ...]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in (*base, *extra):
        key, sep, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if sep:
            merged[key] = value
        else:  # Docker: a bare NAME (the CLI found no host value) unsets NAME
            merged.pop(key, None)
    return merged


def exec_process(config: dict[str, Any], rootfs: Path, options: ExecOptions) -> dict[str, Any]:
    """The OCI ``process`` object for the exec: the container's, changed by ``options``."""
    if not options.command:
        raise InvalidArgument("exec: no command specified")
    process: dict[str, Any] = copy.deepcopy(config["process"])
    env = _merge_env(list(process.get("env") or []), options.env)
    if options.user:
        user = resolve_user(rootfs, options.user)
        process["user"] = {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": list(user.additional_gids),
        }
        if not any(e.partition("=")[0] == "HOME" for e in options.env):
            env["HOME"] = user.home
    if options.tty:
        env.setdefault("TERM", "xterm")
    cwd = options.workdir or process.get("cwd") or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory {cwd!r} is invalid, it needs to be absolute")
    process.update(
        args=list(options.command),
        env=[f"{k}={v}" for k, v in env.items()],
        cwd=cwd,
        terminal=options.tty,
    )
    process.pop("consoleSize", None)
    if options.tty and options.console_size is not None:
        rows, columns = options.console_size
        process["consoleSize"] = {"height": rows, "width": columns}
    return process


def _preflight(config: dict[str, Any], rootfs: Path, process: dict[str, Any]) -> None:
    path_env = next(
        (e[5:] for e in process.get("env") or [] if isinstance(e, str) and e.startswith("PATH=")),
        "",
    )
    opaque = tuple(m["destination"] for m in config.get("mounts") or [] if isinstance(m, dict))
    try:
        find_executable(
            rootfs, process["args"][0], path_env=path_env, cwd=process["cwd"], opaque=opaque
        )
    except (CommandNotFound, CommandNotExecutable) as exc:
        # Docker answers a failed exec with 126 whatever the reason.
        raise CommandNotExecutable(f"exec failed: {exc}") from None


def run_exec(
    backend: RuntimeBackend,
    container_id: str,
    bundle: Path,
    rootfs: Path,
    options: ExecOptions,
    *,
    stdio: ProcessIO,
) -> int:
    """Run ``options.command`` in the running container; its exit status."""
    config = load_config(bundle)
    process = exec_process(config, rootfs, options)
    _preflight(config, rootfs, process)
    if isinstance(backend, RuncBackend):
        return _runc_exec(backend, container_id, bundle, process, stdio)
    if backend.name == "chroot":
        from strata.runtime.nsexec import chroot_exec

        return chroot_exec(backend.state(container_id).pid, process, stdio)
    raise ContainerError(f"exec is not supported by the {backend.name} runtime")


def _runc_exec(
    backend: RuncBackend, container_id: str, bundle: Path, process: dict[str, Any], stdio: ProcessIO
) -> int:
    become_subreaper()
    relay = SignalRelay()  # from before the start: a signal meanwhile is kept, not lost
    with forward_signals(relay):
        pid, master = _runc_launch(backend, container_id, bundle, process, stdio)
        return _wait(pid, master, stdio, relay)


def _runc_launch(
    backend: RuncBackend, container_id: str, bundle: Path, process: dict[str, Any], stdio: ProcessIO
) -> tuple[int, int | None]:
    """``runc exec --detach``: the process's host pid, and its console with ``-t``."""
    token = secrets.token_hex(6)
    spec, pid_file, log = (bundle / f"exec-{token}.{ext}" for ext in ("json", "pid", "log"))
    spec.write_text(json.dumps(process))
    head = ["exec", "--process", str(spec), "--detach", "--pid-file", str(pid_file)]
    master: int | None = None
    try:
        if process.get("terminal"):
            with ConsoleSocket() as console:
                argv = backend.argv(
                    *head, "--console-socket", console.address, container_id, log=log
                )
                proc = _spawn(argv, ProcessIO(subprocess.DEVNULL, subprocess.DEVNULL, stdio.stderr))
                pidfd = os.pidfd_open(proc.pid)
                try:
                    master = console.receive(pidfd)
                except ContainerError:
                    master = None
                finally:
                    os.close(pidfd)
                proc.wait()
        else:
            argv = backend.argv(*head, container_id, log=log)
            proc = _spawn(argv, stdio)  # the process inherits these (runc's pass-through)
            proc.wait()
        if proc.returncode != 0 or (process.get("terminal") and master is None):
            if master is not None:
                os.close(master)
            raise _exec_failure(container_id, log)
        return int(pid_file.read_text().strip()), master
    finally:
        for path in (spec, pid_file, log):
            with contextlib.suppress(OSError):
                path.unlink()


def _spawn(argv: list[str], stdio: ProcessIO) -> subprocess.Popen[bytes]:
    try:
        # Its own process group, so a Ctrl-C meant for the process cannot stop runc midway.
        return subprocess.Popen(
            argv, stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr, process_group=0
        )
    except OSError as exc:
        raise ContainerError(f"{argv[0]}: {exc.strerror}") from None


def _exec_failure(container_id: str, log: Path) -> ContainerError:
    message = ""
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(line)
                if entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    if "unable to start container process" in message:
        return CommandNotExecutable(message.removeprefix("runc exec failed: "))
    return ContainerError(f"container {container_id}: exec failed: {message or 'runc failed'}")


def _wait(pid: int, master: int | None, stdio: ProcessIO, relay: SignalRelay) -> int:
    """Forward signals to the exec'd process, copy its terminal if any, reap it."""
    try:
        relay.target(lambda sig: os.kill(pid, sig))  # our child (we reap it): no pid reuse
        if master is not None:
            attach_until_exit(master, pid, stdio)
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 255
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise
    return exit_status(status)


def spawn_exec(
    backend: RuncBackend,
    container_id: str,
    bundle: Path,
    options: ExecOptions,
    *,
    stdio: ProcessIO,
) -> int:
    """Start ``options.command`` in the running container without waiting: its host pid, a
    child of ours to reap (we must be a child subreaper). For the health checks, which time
    their probes out (`strata.runtime.prober`); runc only, no terminal."""
    config = load_config(bundle)
    rootfs = Path(config["root"]["path"])
    process = exec_process(config, rootfs, options)
    _preflight(config, rootfs, process)
    become_subreaper()
    pid, _ = _runc_launch(backend, container_id, bundle, process, stdio)
    return pid
