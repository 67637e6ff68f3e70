"""Containers from images, and their life: create, start, run, stop, kill, wait, exec, remove.

``create`` unpacks the image once into shared snapshots, gives the container its own writable
snapshot and a record (state ``created``). A start mounts that snapshot under
``containers/<id>/rootfs``, writes the bundle there, and hands the container to an *owner*: the
process that waits for its exit, records it and unmounts. The owner is either the ``run`` command
itself (``run --rm`` in the foreground: the fastest path, the container inherits our stdio) or a
monitor (:mod:`.monitor`: ``-d``, ``start``, an attached ``run``, with a json-file log).

Every command may run in any shell at any time, so the record is only a claim: the truth is the
owner lock (:mod:`.owner`), which the kernel drops when the owner dies. A record that says
``running`` while nobody holds the lock is reconciled (:meth:`Containers.refresh`): if the runtime
still runs the container, it runs on unowned (stop, kill, exec and rm still work); once it has
stopped, its exit code is lost and recorded as 255 (as Docker shows containers that were running
when their daemon died), its rootfs unmounted, and ``--rm`` honoured.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import (
    Conflict,
    ContainerNotFound,
    ImageNotFound,
    InvalidArgument,
    NotFound,
    StrataError,
)
from strata.image.quick import image_recorded
from strata.runtime.backend import INHERIT, ProcessIO, RuntimeBackend, Status
from strata.runtime.config import ContainerConfig
from strata.runtime.containers import Container, ContainerStore, State
from strata.runtime.options import (
    Attach,
    ProcessDefaults,
    RunOptions,
    entrypoint_cmd,
    parse_signal,
    process_args,
    process_env,
    process_vars,
)
from strata.runtime.owner import OwnerLock, owner_alive
from strata.runtime.select import backend_by_name, default_backend
from strata.runtime.spec import (
    Network,
    ProcessSpec,
    RunSpec,
    default_hostname,
    parse_volume,
    write_bundle,
    write_etc_files,
)
from strata.snapshot.mount import mount_all, unmount

__all__ = [
    "LOST_EXIT_CODE",
    "Attach",
    "Containers",
    "RunOptions",
    "owned",
    "parse_signal",
    "process_args",
    "process_env",
]

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore
    from strata.runtime.execution import ExecOptions
    from strata.runtime.monitor import MonitorLink
    from strata.snapshot import Snapshotter

LOST_EXIT_CODE = 255  # the owner died and nobody saw the exit
STOP_TIMEOUT = 10.0
KILL_WAIT = 30.0  # how long SIGKILL may take to show (the owner records the exit)
CLAIM_WAIT = 5.0  # a previous owner finishing its cleanup
REMOVE_WAIT = 30.0
_POLL = 0.02


REPAIR_EVERY = 1.0  # seconds: a long-lived service repairs again, a command of many rm once


class Containers:
    """The container service over one store root."""

    def __init__(self, root: StoreRoot) -> None:
        self.root = root
        self._images: ImageStore | None = None
        self._snapshotter: tuple[object, Snapshotter] | None = None
        self._repaired = -REPAIR_EVERY  # when repair_dead last ran (`rm` of many: once)

    @property
    def images(self) -> ImageStore:
        if self._images is None:
            from strata.image.store import ImageStore

            self._images = ImageStore(self.root)
        return self._images

    @property
    def records(self) -> ContainerStore:
        # Per access: the database is closed before a monitor forks and reopened after.
        return ContainerStore(self.root.db)

    @property
    def snapshotter(self) -> Snapshotter:
        db = self.root.db
        if self._snapshotter is None or self._snapshotter[0] is not db:
            from strata.snapshot.select import default_snapshotter

            self._snapshotter = (db, default_snapshotter(self.root.path, db))
        return self._snapshotter[1]

    def backend(self, name: str | None) -> RuntimeBackend:
        state = self.root.path / "runtime"
        return backend_by_name(name, state) if name else default_backend(state)

    def directory(self, container: Container) -> Path:
        return self.root.path / "containers" / container.id

    def log_path(self, container: Container) -> Path:
        """The container's json-file log."""
        from strata.runtime.logs import log_path

        return log_path(self.directory(container), container.id)

    # -- create ---------------------------------------------------------------------------------

    def create(self, image_ref: str, options: RunOptions) -> Container:
        """Unpack the image if needed, give the container a writable snapshot, record it."""
        self.repair_dead()
        image = self.images.get(image_ref)
        try:
            config = self.images.config(image).config
            self._check(config, options)
            from strata.image.unpack import unpack  # only now: it loads the layer code

            top = unpack(self.images, self.snapshotter, image)
        except NotFound:
            self._gone(str(image.manifest_digest), image_ref)
            raise
        return self.create_on(str(image.manifest_digest), top, config, image_ref, options)

    def _gone(self, manifest_digest: str, image_ref: str) -> None:
        """``No such image`` if the image was removed: what a missing blob or snapshot of it
        means while an ``rmi`` races the run (else the caller's own error stands)."""
        with self.records.db.read() as conn:
            if not image_recorded(conn, manifest_digest):
                raise ImageNotFound(f"No such image: {image_ref}") from None

    @staticmethod
    def _check(config: ProcessDefaults, options: RunOptions) -> None:
        # Bad options fail before any unpacking.
        process_args(config, options)
        process_env(config, options.env)
        if options.network not in ("host", "none", "default"):
            raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")
        for volume in options.volumes:
            parse_volume(volume)

    def create_on(
        self,
        manifest_digest: str,
        top: str | None,
        config: ProcessDefaults,
        image_ref: str,
        options: RunOptions,
        *,
        init_layer: bool = True,
        image_required: bool = True,
    ) -> Container:
        """Create a container on an unpacked image whose top layer snapshot is ``top``.

        Without ``init_layer`` the container's snapshot stacks right on ``top`` (a build step,
        whose snapshot becomes the next layer; the runtime's mount points are its to clean).
        With ``image_required`` the container is recorded only if its image still is, in the
        same transaction: an ``rmi -f`` racing the run either comes first (the run fails with
        ``No such image``) or finds the container and only untags. A build passes False: its
        lease holds what its step containers stand on, intermediate images included.
        """
        args = process_args(config, options)
        entrypoint, cmd = entrypoint_cmd(config, options)
        env = process_env(config, options.env)
        if options.network not in ("host", "none", "default"):
            raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")
        volumes = [parse_volume(v) for v in options.volumes]
        backend = self.backend(options.runtime)
        for volume in volumes:
            # Docker makes a missing source a directory; an existing file is bound as a file.
            if not volume.source.exists():
                volume.source.mkdir(parents=True, exist_ok=True)
        from strata.runtime.initlayer import ensure_init_layer

        cid = secrets.token_hex(32)
        key = f"container-{cid}"
        try:
            parent = ensure_init_layer(self.snapshotter, top) if init_layer else top
            self.snapshotter.prepare(key, parent)
        except NotFound:
            if image_required:
                self._gone(manifest_digest, image_ref)
            raise
        try:
            container = self.records.create(
                name=options.name,
                image=manifest_digest,
                image_ref=image_ref,
                snapshot=key,
                runtime=backend.name,
                container_id=cid,
                config=ContainerConfig(
                    args=args,
                    entrypoint=entrypoint,
                    cmd=cmd,
                    env=env,
                    cwd=options.workdir or config.working_dir or "/",
                    user=options.user if options.user is not None else config.user or "",
                    # Docker's: the host's name on an explicit --network host, else the
                    # short ID ("default", the host's network here too: see _prepare).
                    hostname=options.hostname
                    or (default_hostname(cid, Network.HOST) if options.network == "host" else ""),
                    network="host" if options.network == "default" else options.network,
                    network_mode=options.network,  # as typed: inspect's HostConfig
                    volumes=tuple(options.volumes),
                    tty=options.tty,
                    interactive=options.interactive,
                    autoremove=options.autoremove,
                    stop_signal=config.stop_signal or "",
                    labels=dict(options.labels),
                ),
                requires=_still_recorded(manifest_digest, image_ref) if image_required else None,
            )
        except BaseException:
            self.snapshotter.remove(key)
            raise
        self.directory(container).mkdir(parents=True, exist_ok=True)
        return container

    # -- start ----------------------------------------------------------------------------------

    def _claim(self, container: Container) -> OwnerLock:
        """Become the container's owner: its lock, and its record marked running."""
        current = self.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is State.RUNNING:
            raise Conflict(f"container {container.id} is already running")
        directory = self.directory(current)
        directory.mkdir(parents=True, exist_ok=True)
        lock = OwnerLock.acquire(directory, CLAIM_WAIT)
        if lock is None:
            raise Conflict(f"container {container.id} is busy (another command owns it)")
        try:
            if not self.records.claim(current.id):
                current = self.records.lookup(current.id)
                if current is None:
                    raise ContainerNotFound(f"No such container: {container.id}")
                raise Conflict(f"container {container.id} is already running")
        except BaseException:
            lock.release()
            raise
        return lock

    def _prepare(self, container: Container, console_size: tuple[int, int] | None) -> None:
        """Mount the rootfs and write the bundle (config.json, /etc files) for a start."""
        cfg = container.config
        directory = self.directory(container)
        rootfs = directory / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        network = Network(cfg.network)
        # Each container its own name unless create_on chose one (the host's for an explicit
        # --network host, as Docker's); the default network is the host's too:
        # the prompt says which container a shell is in, as in the walkthroughs.
        hostname = cfg.hostname or container.short_id
        etc = write_etc_files(directory, hostname=hostname, network=network)
        hosts = etc.hosts.read_text()
        if hostname not in hosts.split():
            etc.hosts.write_text(f"{hosts}127.0.1.1\t{hostname}\n")
        if rootfs.is_mount():
            unmount(rootfs, detach=True)
        mount_all(self.snapshotter.mounts(container.snapshot), rootfs)
        try:
            tty = cfg.tty
            spec = RunSpec(
                rootfs=rootfs,
                process=ProcessSpec(
                    args=cfg.args,
                    env=process_vars(cfg.env),
                    cwd=cfg.cwd,
                    user=cfg.user,
                    terminal=tty,
                    console_size=console_size if tty else None,
                ),
                hostname=hostname,
                network=network,
                mounts=tuple(parse_volume(v) for v in cfg.volumes),
                etc=etc,
            )
            write_bundle(directory, spec, container_id=container.id)
        except BaseException:
            unmount(rootfs, detach=True)
            raise

    def _unmount(self, container: Container) -> None:
        rootfs = self.directory(container) / "rootfs"
        with contextlib.suppress(OSError):
            if rootfs.is_mount():
                unmount(rootfs, detach=True)

    def _failed(self, container: Container, error: BaseException) -> None:
        """A start that did not happen: unmounted, back to ``created`` with Docker's code."""
        self._unmount(container)
        code = error.exit_code if isinstance(error, StrataError) else 125
        self.records.set_failed(container.id, code)

    def _exited(self, container: Container, code: int) -> None:
        self._unmount(container)
        self.records.set_exited(container.id, code)

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
                backend = self.backend(container.runtime)
                code = backend.run(container.id, self.directory(container), stdio=stdio)
            except BaseException as exc:
                self._failed(container, exc)
                raise
            self._exited(container, code)
            return code
        finally:
            try:
                if container.config.autoremove:
                    self._purge(container)
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
            self._autoremove(container)
            lock.release()
            raise
        if cfg.tty:
            stdin = StdinMode.NULL
        elif attach is not None and attach.stdin:
            stdin = StdinMode.CLIENT
        else:
            stdin = StdinMode.HOLD if cfg.interactive else StdinMode.NULL
        directory = self.directory(container)
        plan = MonitorPlan(
            container_id=container.id,
            bundle=directory,
            log=self.log_path(container),
            tty=cfg.tty,
            stdin=stdin,
            attach=attach is not None,
        )
        backend = self.backend(container.runtime)
        self.root.close()  # the monitor must not share our SQLite connection
        self._images = None
        try:
            link = launch(plan, backend, _Hooks(self, container), keep=(lock.fd,))
        except BaseException:
            lock.release()
            with contextlib.suppress(StrataError):
                self.refresh(container)  # the monitor died before it could clean up
            raise
        lock.release()  # the monitor holds it now
        if attach is None:
            link.close()
            return None
        return link

    # -- state ----------------------------------------------------------------------------------

    def repair_dead(self) -> None:
        """What commands killed on this path left: records of containers whose owner died
        while they ran (reconciled: unmounted, exit recorded, ``--rm`` honoured) and dead
        commands' scratch (a half-extracted layer, a mounted view). Cheap: an ``flock`` probe
        per running record, a listing of ``tmp/``; best effort (``system check`` reports what
        stays)."""
        from strata.image.scratch import remove_dead_scratch

        if time.monotonic() - self._repaired < REPAIR_EVERY:
            return
        self._repaired = time.monotonic()
        with contextlib.suppress(StrataError, OSError):
            for container in self.records.all():
                if container.state is State.RUNNING and not owner_alive(self.directory(container)):
                    self.refresh(container)
            remove_dead_scratch(self.root, lambda: self.snapshotter)
        # A killed removal (an rm, or a run --rm's) is on this path too: the next run finishes it.
        self._finish_removals()

    def _finish_removals(self) -> None:
        """Finish the removals a killed ``rm`` left half done: a record whose snapshot is gone
        (`_purge` removes the snapshot, then the record), and the snapshot's trash directory.

        A build's step container is skipped: its build commits the step's snapshot as a layer
        and then discards the record, with no owner lock between. Judged under the owner lock,
        which a removal holds: one at work is never taken for a dead one.
        """
        with contextlib.suppress(StrataError, OSError):
            finished = False
            # Records first, then the snapshots: a container's snapshot is made before its
            # record, so a record listed here whose snapshot the later walk lacks lost it.
            containers = self.records.all()
            if not containers:
                return
            keys = {info.key for info in self.snapshotter.walk()}
            for container in containers:
                if container.snapshot in keys:
                    continue
                if container.config.tied:
                    continue
                try:
                    self.snapshotter.stat(container.snapshot)
                    continue
                except NotFound:
                    pass
                lock = OwnerLock.try_acquire(self.directory(container))
                if lock is None:
                    continue  # being removed (or run) right now
                with lock:
                    current = self.records.lookup(container.id)
                    if current is None or current.id != container.id:
                        continue
                    self._purge(current)
                    finished = True
            if finished:
                self.snapshotter.cleanup()  # the trash directory the killed removal left

    def lookup(self, text: str) -> Container:
        """The container named ``text`` (ID, prefix or name), its state reconciled."""
        container = self.records.lookup(text)
        current = self.refresh(container) if container is not None else None
        if current is None:
            raise ContainerNotFound(f"No such container: {text}")
        return current

    def refresh(self, container: Container) -> Container | None:
        """The container's record, reconciled with its owner and runtime (None: removed)."""
        current = self.records.lookup(container.id)
        if current is None or current.state is not State.RUNNING:
            return current
        directory = self.directory(current)
        if not directory.is_dir():
            return self._reconcile(current)
        lock = OwnerLock.try_acquire(directory)
        if lock is None:
            return current  # its owner is alive (or another command is reconciling it)
        with lock:
            return self._reconcile(current)

    def _runtime_status(self, container: Container) -> Status | None:
        try:
            return self.backend(container.runtime).state(container.id).status
        except StrataError:
            return None

    def _reconcile(self, container: Container) -> Container | None:
        """A running record with no owner (the caller holds the lock)."""
        if container.config.tied:
            self._purge(container)  # a build step's: it means nothing without its build
            return None
        status = self._runtime_status(container)
        if status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
            return container  # runs on, unowned
        with contextlib.suppress(StrataError):
            self.backend(container.runtime).delete(container.id, force=True)
        self._unmount(container)
        self.records.set_exited_if_running(container.id, LOST_EXIT_CODE)
        if container.config.autoremove:
            self._purge(container)
            return None
        return self.records.lookup(container.id)

    def _autoremove(self, container: Container) -> None:
        if container.config.autoremove:
            with contextlib.suppress(StrataError):
                self._purge(container)

    # -- signals --------------------------------------------------------------------------------

    def _wait_not_running(self, container: Container, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.refresh(container)
            if current is None or current.state is not State.RUNNING:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def _signal(self, container: Container, sig: int) -> None:
        try:
            self.backend(container.runtime).kill(container.id, sig)
        except (Conflict, ContainerNotFound):
            raise Conflict(f"Container {container.id} is not running") from None

    def kill(self, container: Container, sig: int = signal.SIGKILL) -> None:
        """``docker kill``: signal the init (Conflict if not running); SIGKILL waits for it."""
        current = self.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is not State.RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        self._signal(current, sig)
        if sig == signal.SIGKILL:
            self._wait_not_running(current, KILL_WAIT)

    def stop(
        self, container: Container, *, timeout: float | None = None, sig: int | None = None
    ) -> None:
        """``docker stop``: the stop signal, then SIGKILL after ``timeout`` (negative: never).

        A container that is not running is left as it is, without error (as Docker).
        """
        current = self.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        if current.state is not State.RUNNING:
            return
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
        """``docker wait``: block until the container is not running; its exit code."""
        while True:
            current = self.refresh(container)
            if current is None:
                raise ContainerNotFound(f"No such container: {container.id}")
            if current.state is not State.RUNNING:
                return current.exit_code or 0
            time.sleep(_POLL * 2.5)

    # -- exec -----------------------------------------------------------------------------------

    def exec(
        self, container: Container, options: ExecOptions, *, stdio: ProcessIO = INHERIT
    ) -> int:
        """``docker exec``: run a process in the running container; its exit status."""
        from strata.runtime.execution import run_exec

        current = self.refresh(container)
        if current is None:
            raise ContainerNotFound(f"No such container: {container.id}")
        backend = self.backend(current.runtime)
        running = current.state is State.RUNNING
        if not running or self._runtime_status(current) is not Status.RUNNING:
            raise Conflict(f"Container {container.id} is not running")
        directory = self.directory(current)
        return run_exec(backend, current.id, directory, directory / "rootfs", options, stdio=stdio)

    # -- remove ---------------------------------------------------------------------------------

    def remove(self, container: Container, *, force: bool = False) -> None:
        """``docker rm``: a running container needs ``force`` (it is killed first)."""
        self.repair_dead()
        self._finish_removals()
        current = self.refresh(container)
        if current is None:
            return
        running = current.state is State.RUNNING
        if running and not force:
            raise Conflict(
                f"You cannot remove a running container {container.id}. Stop the container"
                " before attempting removal or force remove"
            )
        directory = self.directory(current)
        if not directory.is_dir():
            self._purge(current)
            return
        # The owner records the exit and unmounts; we wait for it to let go, then clean up.
        # SIGKILL again meanwhile: a container still being started had nothing to kill yet.
        deadline, next_kill = time.monotonic() + REMOVE_WAIT, 0.0
        while (lock := OwnerLock.try_acquire(directory)) is None:
            now = time.monotonic()
            if now > deadline:
                raise Conflict(f"container {container.id}: its owner did not let go; try again")
            if running and now >= next_kill:
                with contextlib.suppress(StrataError):
                    self.backend(current.runtime).kill(current.id, signal.SIGKILL)
                next_kill = now + 0.5
            time.sleep(_POLL)
        with lock:
            latest = self.records.lookup(current.id)
            if latest is None:
                return
            alive = latest.state is State.RUNNING and self._runtime_status(latest) in (
                Status.RUNNING,
                Status.PAUSED,
            )
            if alive and not force:  # unowned, and it survived the kill we did not send
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the"
                    " container before attempting removal or force remove"
                )
            self._purge(latest)

    def discard(self, container: Container) -> None:
        """Remove a stopped container at once: runtime state, mount, snapshot, files, record.

        For a build step, whose snapshot has already been committed as a layer (then it is
        no longer the container's to remove).
        """
        self._purge(container)

    def _purge(self, container: Container) -> None:
        """Everything of the container goes: runtime state, mount, snapshot, files, record."""
        with contextlib.suppress(StrataError):
            self.backend(container.runtime).delete(container.id, force=True)
        self._unmount(container)
        with contextlib.suppress(StrataError):
            self.snapshotter.remove(container.snapshot)
        # The record before the directory: while the record exists, any `ps` may recreate the
        # directory's owner lock, so removing the directory first could leave it behind.
        self.records.delete(container.id)
        shutil.rmtree(self.directory(container), ignore_errors=True)


class _Hooks:
    """What the monitor does at each step, for one container (runs in the monitor)."""

    def __init__(self, service: Containers, container: Container) -> None:
        self.service, self.container = service, container

    def started(self, pid: int) -> None:
        self.service.records.set_running(self.container.id, pid)

    def failed(self, error: StrataError) -> None:
        self.service._failed(self.container, error)
        self.service._autoremove(self.container)

    def exited(self, code: int) -> None:
        self.service._exited(self.container, code)

    def done(self) -> None:
        self.service._autoremove(self.container)


def owned(service: Containers, container: Container) -> bool:
    """Whether some process owns (waits for) the container right now."""
    return owner_alive(service.directory(container))


def _still_recorded(manifest_digest: str, image_ref: str) -> Callable[[sqlite3.Connection], None]:
    """A check for `ContainerStore.create`: the image is still recorded (see `create_on`)."""

    def check(conn: sqlite3.Connection) -> None:
        if not image_recorded(conn, manifest_digest):
            raise ImageNotFound(f"No such image: {image_ref}")

    return check
