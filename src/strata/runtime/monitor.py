"""The monitor: the small process that looks after one container from start to exit.

``strata run -d``, ``start`` and an attached ``run`` fork it (twice, with ``setsid`` between, so
it belongs to no terminal and to no command), and it:

1. becomes a child subreaper, so the container's init, orphaned by the runtime, is its child;
2. creates the container with pipes for stdout/stderr (or a pty, whose master it keeps), and
   stdin from /dev/null, a pipe it holds open (``-i`` without a client), or the client's stdin;
3. records it running, starts it, and reports ``R<pid>`` to the command that forked it, which may
   then return (``-d``) or stay attached;
4. copies the output into the json-file log and, while a client is attached, to the client's own
   stdout/stderr too (the descriptors it inherited when forked);
5. reaps the init, deletes the runtime's container, records the exit code (``X<code>`` to the
   client), and runs the last hook (``--rm``);
6. meanwhile runs the container's health checks (a thread, see :mod:`.prober`), notes an OOM
   kill (the memory cgroup's count, read before the runtime deletes it), and on exit asks the
   restart policy (``--restart``) whether to create and start the container again, after its
   back-off: an attached client hears the first exit only, as Docker's does.

It owns nothing else: what "record", "clean up" and "remove" mean is the caller's, given as
:class:`MonitorHooks` (run in the monitor, after the fork). Messages to the client travel on a
SOCK_SEQPACKET socket pair; a pty master for an attached client is passed with SCM_RIGHTS.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import NoReturn, Protocol

from strata import errors
from strata.errors import ContainerError, StrataError
from strata.runtime.backend import ProcessIO, RuntimeBackend
from strata.runtime.cgroups import cgroup_dirs, memory_dir, oom_kills
from strata.runtime.inputdoor import InputDoor
from strata.runtime.logs import LogWriter
from strata.runtime.process import FORWARDED_SIGNALS, wait_exit
from strata.runtime.syscalls import become_subreaper

_CHUNK = 1 << 16
_MESSAGE = 4096


class StdinMode(StrEnum):
    """Where the container's stdin comes from."""

    NULL = "null"  # /dev/null (no -i)
    HOLD = "hold"  # a pipe the monitor keeps open and never writes (-i, nobody attached)
    CLIENT = "client"  # the attached client's own stdin (-i, attached, no terminal)


@dataclass(frozen=True, slots=True)
class MonitorPlan:
    """One container for the monitor to run. ``attach``: copy output to the client too."""

    container_id: str
    bundle: Path
    log: Path
    tty: bool
    stdin: StdinMode
    attach: bool
    client: tuple[int, int, int] = (0, 1, 2)  # the attached client's stdin, stdout, stderr


class MonitorHooks(Protocol):
    """What the monitor's caller does at each step (called in the monitor process)."""

    def started(self, pid: int) -> None:
        """The container exists (not yet started) and its init has host pid ``pid``."""
        ...

    def failed(self, error: StrataError) -> None:
        """The container could not be created or started; it is gone from the runtime."""
        ...

    def exited(self, code: int) -> None:
        """The container exited with ``code`` and is gone from the runtime."""
        ...

    # res: the container's life while the monitor keeps it.

    def restarted(self, pid: int) -> None:
        """The container exists again (restarted by its policy), its init is ``pid``."""
        ...

    def oom_killed(self) -> None:
        """The kernel's OOM killer killed a process of the container during this run."""
        ...

    def restart(self, code: int) -> bool:
        """The container exited with ``code``: whether to start it again, once its back-off
        has passed (this call waits it out); False: it stays exited (`exited` follows)."""
        ...

    def watch_health(self) -> Callable[[], None]:
        """Start the container's health checks, if it has any; the function that stops them."""
        ...

    def done(self) -> None:
        """The monitor is about to leave (after the client heard the exit code)."""
        ...


class MonitorLink:
    """The forking command's end: the container's pid, its console if attached with a pty."""

    def __init__(self, sock: socket.socket, pid: int, console: int | None) -> None:
        self.sock, self.pid, self.console = sock, pid, console

    def fileno(self) -> int:
        """Readable when the monitor has news (the exit code) or has gone."""
        return self.sock.fileno()

    def wait_exit(self) -> int | None:
        """Block until the container exits: its exit code, None if the monitor died first."""
        while True:
            try:
                message = self.sock.recv(_MESSAGE)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except OSError:
                return None
            if not message:
                return None
            if message[:1] == b"X":
                return int(message[1:])

    def close(self) -> None:
        """Drop the link (the monitor stops copying output to us)."""
        if self.console is not None:
            os.close(self.console)
            self.console = None
        self.sock.close()


def launch(
    plan: MonitorPlan, backend: RuntimeBackend, hooks: MonitorHooks, *, keep: tuple[int, ...]
) -> MonitorLink:
    """Fork the monitor for ``plan``; return once the container runs (or raise its error).

    ``keep`` lists descriptors the monitor must keep (the owner lock). The caller must hold no
    SQLite connection across this call: the monitor opens its own.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        try:
            ours.close()
            os.setsid()
            if os.fork() == 0:
                _monitor(plan, backend, hooks, theirs, keep)
        finally:
            os._exit(0)
    theirs.close()
    os.waitpid(child, 0)
    try:
        message, fds = _receive(ours)
        if message[:1] == b"R":
            console = fds[0] if fds else None
            return MonitorLink(ours, int(message[1:]), console)
        for fd in fds:
            os.close(fd)
        if message[:1] == b"E":
            raise _error_from(message[1:])
        raise ContainerError(
            f"container {plan.container_id}: its monitor exited before the container started"
        )
    except BaseException:
        ours.close()
        raise


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    try:
        message, fds, _, _ = socket.recv_fds(sock, _MESSAGE, 1)
    except OSError:
        return b"", []
    return message, list(fds)


def _error_from(payload: bytes) -> StrataError:
    """The monitor's error as the same strata error class, so the exit status is the same."""
    try:
        data = json.loads(payload)
        kind = getattr(errors, str(data["type"]), None)
        message = str(data["message"])
    except (ValueError, KeyError, TypeError):
        return ContainerError(f"the monitor failed: {payload[:200]!r}")
    if isinstance(kind, type) and issubclass(kind, StrataError):
        return kind(message)
    return ContainerError(message)


def _report_error(sock: socket.socket, error: BaseException) -> None:
    kind = type(error).__name__ if isinstance(error, StrataError) else "ContainerError"
    message = str(error) if isinstance(error, StrataError) else f"monitor: {error!r}"
    with contextlib.suppress(OSError):
        sock.send(b"E" + json.dumps({"type": kind, "message": message}).encode())


# -- the monitor process ----------------------------------------------------------------------


@dataclass(slots=True)
class _Client:
    """The attached command's output descriptors, while it is there to read them."""

    stdout: int
    stderr: int
    stdin: int

    def close(self) -> None:
        for fd in {self.stdout, self.stderr, self.stdin}:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdout = self.stderr = self.stdin = -1


def _quiet(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: ignored signals would stay ignored in what the runtime execs."""


def _isolate(plan: MonitorPlan, sock: socket.socket, keep: tuple[int, ...]) -> _Client:
    """Take the client's descriptors we need, put /dev/null on 0-2, close everything else."""
    for forwarded in FORWARDED_SIGNALS:  # the forking command's handlers are not ours
        signal.signal(forwarded, signal.SIG_DFL)
    for terminal in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(terminal, _quiet)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    client = _Client(-1, -1, -1)
    stdin, stdout, stderr = plan.client
    if plan.attach:
        client.stdout = os.dup(stdout)
        client.stderr = os.dup(stderr) if not plan.tty else -1
    if plan.stdin is StdinMode.CLIENT:
        client.stdin = os.dup(stdin)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    wanted = {0, 1, 2, sock.fileno(), *keep, client.stdout, client.stderr, client.stdin}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in wanted:
            with contextlib.suppress(OSError):
                os.close(fd)
    return client


def _monitor(
    plan: MonitorPlan,
    backend: RuntimeBackend,
    hooks: MonitorHooks,
    sock: socket.socket,
    keep: tuple[int, ...],
) -> NoReturn:  # pragma: no cover - runs in the forked monitor
    try:
        client = _isolate(plan, sock, keep)
        become_subreaper()
        _supervise(plan, backend, hooks, sock, client)
    except BaseException as exc:
        _report_error(sock, exc)
        with contextlib.suppress(BaseException):
            import traceback

            path = plan.bundle / "monitor.log"
            path.write_text("".join(traceback.format_exception(exc)))
    os._exit(0)


@dataclass(slots=True)
class _Stdio:
    """The container's stdio and our ends of it."""

    io: ProcessIO
    theirs: list[int]  # to close once the container has them
    readers: dict[int, str]  # our read ends: fd -> stream
    hold: int = -1  # the write end of a stdin pipe kept open (-i, nobody attached)


def _container_stdio(plan: MonitorPlan, client: _Client) -> _Stdio:
    if plan.tty:  # the backend gives the container its pty; these are not used
        return _Stdio(ProcessIO(0, 1, 2), [], {})
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    hold = -1
    if plan.stdin is StdinMode.CLIENT:
        stdin = client.stdin
        client.stdin = -1  # the container's now
    elif plan.stdin is StdinMode.HOLD:
        stdin, hold = os.pipe2(os.O_CLOEXEC)
    else:
        stdin = 0
    theirs = [out_w, err_w, *([stdin] if stdin != 0 else [])]
    return _Stdio(ProcessIO(stdin, out_w, err_w), theirs, {out_r: "stdout", err_r: "stderr"}, hold)


def _supervise(
    plan: MonitorPlan,
    backend: RuntimeBackend,
    hooks: MonitorHooks,
    sock: socket.socket,
    client: _Client,
) -> None:  # pragma: no cover - runs in the forked monitor
    first = True
    while True:
        code = _one_run(plan, backend, hooks, sock, client, first=first)
        if code is None:
            return
        if not hooks.restart(code):
            hooks.exited(code)
            break
        # An attached client (``run`` without -d) ends with the first exit, as Docker's does;
        # the restarted container's output goes to its log only, its stdin to nothing.
        with contextlib.suppress(OSError):
            sock.send(f"X{code}".encode())
        client.close()
        stdin = StdinMode.HOLD if plan.stdin is not StdinMode.NULL else StdinMode.NULL
        plan = replace(plan, attach=False, stdin=stdin)
        first = False
    with contextlib.suppress(OSError):
        sock.send(f"X{code}".encode())
    sock.close()
    client.close()
    hooks.done()


def _one_run(
    plan: MonitorPlan,
    backend: RuntimeBackend,
    hooks: MonitorHooks,
    sock: socket.socket,
    client: _Client,
    *,
    first: bool,
) -> int | None:  # pragma: no cover - runs in the forked monitor
    """Create, start and watch the container once: its exit code (None: it never started)."""
    stdio = _container_stdio(plan, client)
    try:
        created = backend.create(plan.container_id, plan.bundle, stdio=stdio.io)
    except StrataError as exc:
        hooks.failed(exc)
        _report_error(sock, exc)
        return None
    finally:
        for fd in stdio.theirs:
            os.close(fd)
    log = LogWriter(plan.log)
    # Found while the init lives: the OOM killer's count is read there once it has exited.
    # Counted from now: a backend without a cgroup of its own (chroot) shares ours.
    memory = memory_dir(cgroup_dirs(created.pid))
    ooms = oom_kills(memory)
    try:
        if first:
            hooks.started(created.pid)
        else:
            hooks.restarted(created.pid)
        backend.start(plan.container_id)
    except StrataError as exc:
        with contextlib.suppress(StrataError):
            backend.delete(plan.container_id, force=True)
        with contextlib.suppress(ChildProcessError):
            wait_exit(created.pid)
        hooks.failed(exc)
        _report_error(sock, exc)
        return None
    if first:
        ready = f"R{created.pid}".encode()
        with contextlib.suppress(OSError):  # the client may have gone: the container runs on
            if created.console is not None and plan.attach:
                socket.send_fds(sock, [ready], [created.console])
            else:
                sock.send(ready)
    stop_probes = hooks.watch_health()
    # A later `attach` writes to the container's terminal, or to the stdin pipe held for -i.
    given = created.console if created.console is not None else stdio.hold
    door = InputDoor(plan.container_id, given) if given >= 0 else None
    try:
        if created.console is not None:
            _pump_terminal(created.console, log, sock, client)
            if door is not None:
                door.close()
            os.close(created.console)
        else:
            _pump_pipes(stdio.readers, log, sock, client)
        code = wait_exit(created.pid)
    finally:
        stop_probes()
        if door is not None:
            door.close()
    log.close()
    if stdio.hold >= 0:
        os.close(stdio.hold)
    if oom_kills(memory) > ooms:
        hooks.oom_killed()
    with contextlib.suppress(StrataError):
        backend.delete(plan.container_id, force=True)
    return code


def _to_client(client: _Client, stream: str, data: bytes) -> None:
    fd = client.stderr if stream == "stderr" else client.stdout
    if fd < 0:
        return
    try:
        _write_all(fd, data)
    except OSError:  # the client's terminal or pipe went away: stop copying to it
        client.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll(1000)


def _client_gone(sock: socket.socket, client: _Client, mask: int) -> bool:
    """Whether the attached client left (its end of the socket closed)."""
    if mask & (select.POLLHUP | select.POLLERR):
        client.close()
        return True
    return False


def _pump_pipes(
    readers: dict[int, str], log: LogWriter, sock: socket.socket, client: _Client
) -> None:  # pragma: no cover - runs in the forked monitor
    watching_client = client.stdout >= 0
    while readers:
        poller = select.poll()
        for fd in readers:
            poller.register(fd, select.POLLIN)
        if watching_client:
            poller.register(sock, select.POLLHUP)
        for fd, mask in poller.poll():
            if fd == sock.fileno():
                watching_client = not _client_gone(sock, client, mask)
                continue
            stream = readers.get(fd)
            if stream is None:
                continue
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                os.close(fd)
                del readers[fd]
                continue
            log.write(stream, chunk)
            _to_client(client, stream, chunk)


def _pump_terminal(
    master: int, log: LogWriter, sock: socket.socket, client: _Client
) -> None:  # pragma: no cover - runs in the forked monitor
    watching_client = client.stdout >= 0
    while True:
        poller = select.poll()
        poller.register(master, select.POLLIN)
        if watching_client:
            poller.register(sock, select.POLLHUP)
        events = dict(poller.poll())
        if sock.fileno() in events and watching_client:
            watching_client = not _client_gone(sock, client, events[sock.fileno()])
        if master not in events:
            continue
        try:
            chunk = os.read(master, _CHUNK)
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:  # every slave closed: the container has ended
                return
            raise
        if not chunk:
            return
        log.write("stdout", chunk, raw=True)
        _to_client(client, "stdout", chunk)
