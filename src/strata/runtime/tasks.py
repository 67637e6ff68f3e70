"""Running a container's process: start, run, signal, stop, wait, exec.

A start mounts the container's snapshot under ``containers/<id>/rootfs``, writes the bundle
there, and hands the container to an *owner*: the process that waits for its exit, records it
and unmounts. The owner is either the ``run`` command itself (``run --rm`` in the foreground: the
fastest path, the container inherits our stdio) or a monitor (:mod:`.monitor`: ``-d``,
``start``, an attached ``run``, with a json-file log). The records the owner keeps, and their
reconciliation when it dies, are :mod:`.records`'s.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import Conflict, ContainerNotFound, StrataError
from strata.runtime.backend import INHERIT, ProcessIO, Status
from strata.runtime.containers import Container, State
from strata.runtime.options import Attach, parse_signal, process_vars
from strata.runtime.owner import OwnerLock
from strata.runtime.records import POLL, ContainerRecords
from strata.runtime.spec import (
    BindMount,
    Network,
    ProcessSpec,
    RunSpec,
    TmpfsMount,
    parse_volume,
    write_bundle,
    write_etc_files,
)
from strata.snapshot.mount import mount_all, unmount

if TYPE_CHECKING:
    from strata.runtime.execution import ExecOptions
    from strata.runtime.monitor import MonitorLink

STOP_TIMEOUT = 10.0
KILL_WAIT = 30.0  # how long SIGKILL may take to show (the owner records the exit)
CLAIM_WAIT = 5.0  # a previous owner finishing its cleanup
RESTART_POLL = 0.05  # how often a restart's back-off looks for a stop by the user


class Tasks:
    """The running of the containers `ContainerRecords` keeps."""

    def __init__(self, containers: ContainerRecords) -> None:
        self.containers = containers

    # -- start ----------------------------------------------------------------------------------

    def _claim(self, container: Container) -> OwnerLock:
        """Become the container's owner: its lock, and its record marked running."""
        current = self.containers.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is State.RUNNING:
            raise Conflict(f"container {container.id} is already running")
        directory = self.containers.directory(current)
        directory.mkdir(parents=True, exist_ok=True)
        lock = OwnerLock.acquire(directory, CLAIM_WAIT)
        if lock is None:
            raise Conflict(f"container {container.id} is busy (another command owns it)")
        try:
            if not self.containers.records.claim(current.id):
                current = self.containers.records.lookup(current.id)
                if current is None:
                    raise ContainerNotFound(f"No such container: {container.id}")
                raise Conflict(f"container {container.id} is already running")
            # A start by the user: its life (restarts, health, OOM, user stop) starts afresh
            # (a fresh container without a healthcheck has nothing to reset: no write).
            health = _initial_health(current)
            if (
                health
                or current.health
                or current.restart_count
                or current.oom_killed
                or (current.user_stopped)
            ):
                self.containers.records.begin_life(current.id, health)
        except BaseException:
            lock.release()
            raise
        return lock

    def _prepare(self, container: Container, console_size: tuple[int, int] | None) -> None:
        """Mount the rootfs and write the bundle (config.json, /etc files) for a start."""
        cfg = container.config
        directory = self.containers.directory(container)
        rootfs = directory / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        network = Network(cfg.network) if cfg.network in ("host", "none") else Network.BRIDGE
        # Each container its own name unless create_on chose one (the host's for an explicit
        # --network host, as Docker's): the prompt says which container a shell is in.
        hostname = cfg.hostname or container.short_id
        etc = write_etc_files(directory, hostname=hostname, network=network)
        attached = self.containers.networks.attach(container)
        hosts = etc.hosts.read_text()
        if attached is not None and attached.endpoints:
            hosts += "".join(f"{e.address}\t{hostname}\n" for e in attached.endpoints[:1])
            etc.hosts.write_text(hosts)
        if hostname not in hosts.split():
            etc.hosts.write_text(f"{hosts}127.0.1.1\t{hostname}\n")
        self.containers.networks.started(container)
        if rootfs.is_mount():
            unmount(rootfs, detach=True)
        try:
            mount_all(self.containers.snapshotter.mounts(container.snapshot), rootfs)
        except BaseException:
            self.containers.networks.release(container)
            raise
        try:
            binds, tmpfs = self._mounts(container, rootfs)
            spec = RunSpec(
                rootfs=rootfs,
                process=ProcessSpec(
                    args=cfg.args,
                    env=process_vars(cfg.env),
                    cwd=cfg.cwd,
                    user=cfg.user,
                    terminal=cfg.tty,
                    console_size=console_size if cfg.tty else None,
                ),
                hostname=hostname,
                network=network,
                mounts=binds,
                etc=etc,
                tmpfs=tmpfs,
                netns=attached.netns if attached is not None else None,
                resources=cfg.resources,
            )
            write_bundle(directory, spec, container_id=container.id)
        except BaseException:
            unmount(rootfs, detach=True)
            self.containers.networks.release(container)
            raise

    def _mounts(
        self, container: Container, rootfs: Path
    ) -> tuple[tuple[BindMount, ...], tuple[TmpfsMount, ...]]:
        """The bundle's binds and tmpfs mounts; empty volumes filled from the image first."""
        cfg = container.config
        if not cfg.mounts and not cfg.tmpfs:  # no volumes (or a record from before them)
            return tuple(parse_volume(v) for v in cfg.volumes), ()
        from strata.runtime.volumes import start_mounts

        return start_mounts(self.containers.root.path, rootfs, cfg.mounts, dict(cfg.tmpfs))

    def _failed(self, container: Container, error: BaseException) -> None:
        """A start that did not happen: unmounted, back to ``created`` with Docker's code."""
        self.containers.unmount_rootfs(container)
        self.containers.networks.release(container)
        code = error.exit_code if isinstance(error, StrataError) else 125
        self.containers.records.set_failed(container.id, code)

    def _exited(self, container: Container, code: int) -> None:
        self.containers.unmount_rootfs(container)
        self.containers.networks.release(container)
        self.containers.records.set_exited(container.id, code)

    def run(
        self,
        container: Container,
        *,
        stdio: ProcessIO = INHERIT,
        console_size: tuple[int, int] | None = None,
    ) -> int:
        """Run in the foreground in this process, stdio inherited; the exit code.

        No monitor and no log: the path of ``run --rm``, where nobody can read a log later.
        """
        lock = self._claim(container)
        try:
            try:
                self._prepare(container, console_size)
                backend = self.containers.backend(container.runtime)
                directory = self.containers.directory(container)
                code = backend.run(container.id, directory, stdio=stdio)
            except BaseException as exc:
                self._failed(container, exc)
                raise
            self._exited(container, code)
            return code
        finally:
            try:
                if container.config.autoremove:
                    self.containers.purge(container)
            finally:
                lock.release()

    def start(self, container: Container, *, attach: Attach | None = None) -> MonitorLink | None:
        """Start the container under a monitor; return once it runs.

        With ``attach`` the monitor copies the output to our stdout/stderr too, and the link to
        it is returned (see :func:`strata.runtime.attach.attach_client`); else None.
        """
        from strata.runtime.monitor import MonitorPlan, StdinMode, launch

        lock = self._claim(container)
        cfg = container.config
        try:
            self._prepare(container, attach.console_size if attach else None)
        except BaseException as exc:
            self._failed(container, exc)
            self.containers.autoremove(container)
            lock.release()
            raise
        if cfg.tty:
            stdin = StdinMode.NULL
        elif attach is not None and attach.stdin:
            stdin = StdinMode.CLIENT
        else:
            stdin = StdinMode.HOLD if cfg.interactive else StdinMode.NULL
        directory = self.containers.directory(container)
        plan = MonitorPlan(
            container_id=container.id,
            bundle=directory,
            log=self.containers.log_path(container),
            tty=cfg.tty,
            stdin=stdin,
            attach=attach is not None,
            client=attach.stdio if attach is not None else (0, 1, 2),
        )
        backend = self.containers.backend(container.runtime)
        self.containers.close_store()  # the monitor must not share our SQLite connection
        try:
            link = launch(plan, backend, _Hooks(self, container), keep=(lock.fd,))
        except BaseException:
            lock.release()
            with contextlib.suppress(StrataError):
                self.containers.refresh(container)  # the monitor died before it could clean up
            raise
        lock.release()  # the monitor holds it now
        if attach is None:
            link.close()
            return None
        return link

    # -- signals --------------------------------------------------------------------------------

    def _wait_not_running(self, container: Container, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.containers.refresh(container)
            if current is None or current.state is not State.RUNNING:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def _signal(self, container: Container, sig: int) -> None:
        try:
            self.containers.backend(container.runtime).kill(container.id, sig)
        except (Conflict, ContainerNotFound):
            raise Conflict(f"Container {container.id} is not running") from None

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        """``docker kill``: signal the init (Conflict if not running); SIGKILL waits for it."""
        current = self.containers.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is not State.RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        self.containers.records.set_user_stopped(current.id)  # no restart by its policy
        self._signal(current, sig)
        if sig == signal.SIGKILL:
            self._wait_not_running(current, KILL_WAIT)

    def stop(
        self, container: Container, *, timeout: float | None = None, sig: int | None = None
    ) -> None:
        """``docker stop``: the stop signal, then SIGKILL after ``timeout`` (negative: never).

        A container that is not running is left as it is, without error (as Docker).
        """
        current = self.containers.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is not State.RUNNING:
            return
        self.containers.records.set_user_stopped(current.id)  # no restart by its policy
        if sig is None:
            sig = parse_signal(current.config.stop_signal or "SIGTERM")
        timeout = STOP_TIMEOUT if timeout is None else timeout
        with contextlib.suppress(Conflict):
            self._signal(current, sig)
        if self._wait_not_running(current, None if timeout < 0 else timeout):
            return
        with contextlib.suppress(Conflict):
            self._signal(current, signal.SIGKILL)
        if not self._wait_not_running(current, KILL_WAIT):
            raise Conflict(f"container {container.id} did not stop")

    def wait(self, container: Container) -> int:
        """``docker wait``: block until the container is not running; its exit code.

        A container its policy restarts has stopped too, as Docker's wait sees it: its exit
        is recorded (a new ``finished``) before the back-off, and ends the wait.
        """
        first = None
        while True:
            current = self.containers.refresh(container)
            if current is None:
                raise ContainerNotFound(f"No such container: {container.id}")
            if current.state is not State.RUNNING:
                return current.exit_code or 0
            if first is None:
                first = current
            elif current.finished != first.finished and current.exit_code is not None:
                return current.exit_code  # exited, and restarted or about to be
            time.sleep(POLL * 2.5)

    # -- exec -----------------------------------------------------------------------------------

    def exec(
        self, container: Container, options: ExecOptions, *, stdio: ProcessIO = INHERIT
    ) -> int:
        """``docker exec``: run a process in the running container; its exit status."""
        from strata.runtime.execution import run_exec

        current = self.containers.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        backend = self.containers.backend(current.runtime)
        running = current.state is State.RUNNING
        if not running or self.containers.runtime_status(current) is not Status.RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        directory = self.containers.directory(current)
        return run_exec(backend, current.id, directory, directory / "rootfs", options, stdio=stdio)


class _Hooks:
    """What the monitor does at each step, for one container (runs in the monitor)."""

    def __init__(self, tasks: Tasks, container: Container) -> None:
        self.tasks, self.container = tasks, container
        self._run_started = time.monotonic()
        self._delay = 0.0  # the last restart's back-off

    def started(self, pid: int) -> None:
        self.tasks.containers.records.set_running(self.container.id, pid)

    def failed(self, error: StrataError) -> None:
        self.tasks._failed(self.container, error)
        self.tasks.containers.autoremove(self.container)

    def exited(self, code: int) -> None:
        self.tasks._exited(self.container, code)

    # res: restarts, OOM kills, health checks.

    def restarted(self, pid: int) -> None:
        records = self.tasks.containers.records
        records.set_restarted(self.container.id, pid, _initial_health(self.container))
        self._run_started = time.monotonic()

    def oom_killed(self) -> None:
        self.tasks.containers.records.set_oom_killed(self.container.id)

    def restart(self, code: int) -> bool:
        from strata.runtime.restart import backoff, should_restart

        records = self.tasks.containers.records
        current = records.lookup(self.container.id)
        if current is None:
            return False
        cfg = current.config  # as recorded now: `update --restart` may have changed it
        if not should_restart(
            cfg.restart, cfg.restart_max, code, current.restart_count, current.user_stopped
        ):
            return False
        self._delay = backoff(self._delay, time.monotonic() - self._run_started)
        records.set_restarting(self.container.id, code)
        deadline = time.monotonic() + self._delay
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, RESTART_POLL))
            current = records.lookup(self.container.id)
            if current is None or current.user_stopped:  # stopped, killed or removed meanwhile
                records.clear_restarting(self.container.id)
                return False
        return True

    def watch_health(self) -> Callable[[], None]:
        from strata.runtime.health import probe_of

        probe = probe_of(self.container.config.healthcheck)
        if probe is None:
            return lambda: None
        from strata.runtime.prober import Prober

        containers = self.tasks.containers
        backend = containers.backend(self.container.runtime)
        bundle = containers.directory(self.container)
        prober = Prober(containers.root.path, self.container.id, backend, bundle, probe)
        return prober.start()

    def done(self) -> None:
        self.tasks.containers.autoremove(self.container)


def _initial_health(container: Container) -> str | None:
    """``State.Health`` at a start: ``starting`` if the container has a check, else none."""
    if container.config.healthcheck is None:
        return None  # the common case, without loading the health module
    from strata.runtime.health import HealthState, probe_of

    if probe_of(container.config.healthcheck) is None:
        return None
    return json.dumps(HealthState().to_json())
