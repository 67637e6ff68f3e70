"""Containers as records: create, look up, reconcile, remove, and repair what a crash left.

A container is a record (`strata.runtime.containers`), a writable snapshot and a directory
``containers/<id>/`` (its owner lock, bundle and log); this module makes the three together and
takes them away together, in an order a kill at any point leaves repairable: the snapshot before
the record on create, the snapshot, then the record, then the directory on removal.

Every command may run in any shell at any time, so the record is only a claim: the truth is the
owner lock (:mod:`.owner`), which the kernel drops when the owner dies. A record that says
``running`` while nobody holds the lock is reconciled (`ContainerRecords.refresh`): if the
runtime still runs the container, it runs on unowned (stop, kill, exec and rm still work); once
it has stopped, its exit code is lost and recorded as 255 (as Docker shows containers that were
running when their daemon died), its rootfs unmounted, and ``--rm`` honoured. Running the
container's process is :mod:`.tasks`'s.
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
from typing import TYPE_CHECKING, Any

from strata.errors import (
    Conflict,
    ContainerNotFound,
    ImageNotFound,
    InvalidArgument,
    NotFound,
    StrataError,
)
from strata.image.quick import image_recorded
from strata.runtime.backend import RuntimeBackend, Status
from strata.runtime.config import ContainerConfig
from strata.runtime.containers import Container, ContainerStore, State
from strata.runtime.mounts import MountPoint
from strata.runtime.networking import ContainerNetworks
from strata.runtime.options import (
    ProcessDefaults,
    RunOptions,
    entrypoint_cmd,
    process_args,
    process_env,
)
from strata.runtime.owner import OwnerLock, owner_alive
from strata.runtime.resources import Resources
from strata.runtime.resources import check as check_resources
from strata.runtime.select import backend_by_name, default_backend
from strata.runtime.spec import Network, default_hostname
from strata.snapshot.mount import unmount

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore
    from strata.snapshot import Snapshotter

LOST_EXIT_CODE = 255  # the owner died and nobody saw the exit
REMOVE_WAIT = 30.0
REPAIR_EVERY = 1.0  # seconds: a long-lived service repairs again, a command of many rm once
POLL = 0.02


class ContainerRecords:
    """The containers of one store root: their records, snapshots and directories."""

    def __init__(self, root: StoreRoot) -> None:
        self.root = root
        self._images: ImageStore | None = None
        self._snapshotter: tuple[object, Snapshotter] | None = None
        self._repaired = -REPAIR_EVERY  # when repair_dead last ran (`rm` of many: once)
        self.networks = ContainerNetworks(root, lambda: self.records, self.directory)

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

    def close_store(self) -> None:
        """Close the database (reopened on next use): a forked monitor must not share it."""
        self.root.close()
        self._images = None

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
            _life(options, config, self.backend(options.runtime).name)  # before any unpacking
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

    def _check(self, config: ProcessDefaults, options: RunOptions) -> None:
        # Bad options fail before any unpacking.
        self.networks.choose(options.network, options.publish, options.default_network)
        process_args(config, options)
        process_env(config, options.env)
        from strata.runtime.volumes import check_options

        check_options(options)

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
        from strata.runtime import volumes as container_volumes

        network = self.networks.choose(options.network, options.publish, options.default_network)
        backend = self.backend(options.runtime)
        planned = container_volumes.plan(
            options, tuple(getattr(config, "volumes", ()) or ()), self._mounts_of
        )
        resources, healthcheck = _life(options, config, backend.name)
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
        image_check = _still_recorded(manifest_digest, image_ref) if image_required else None
        volume_hook = container_volumes.record_hook(
            self.root.path, cid, planned, self._volumes_from_names(options)
        )

        def requires(conn: sqlite3.Connection) -> None:
            if image_check is not None:
                image_check(conn)
            volume_hook(conn)

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
                    # short ID (see Tasks.prepare).
                    hostname=options.hostname
                    or (default_hostname(cid, Network.HOST) if options.network == "host" else ""),
                    network=network.network,
                    network_mode=options.network,  # as typed: inspect's HostConfig
                    volumes=planned.binds,
                    tty=options.tty,
                    interactive=options.interactive,
                    autoremove=options.autoremove,
                    stop_signal=config.stop_signal or "",
                    labels=dict(options.labels),
                    mounts=planned.mounts,
                    tmpfs=planned.tmpfs,
                    volumes_from=tuple(options.volumes_from),
                    config_volumes=planned.config_volumes,
                    publish=tuple(options.publish),
                    publish_all=options.publish_all,
                    exposed=tuple(getattr(config, "exposed_ports", ()) or ()),
                    aliases=tuple(options.aliases),
                    resources=resources,
                    restart=options.restart,
                    restart_max=options.restart_max,
                    healthcheck=healthcheck,
                ),
                requires=requires,
            )
        except BaseException:
            self.snapshotter.remove(key)
            container_volumes.discard(self.root.path, self.root.db, planned)
            raise
        self.directory(container).mkdir(parents=True, exist_ok=True)
        return container

    def _mounts_of(self, text: str) -> tuple[MountPoint, ...]:
        """``--volumes-from``: the mounts of the container ``text`` names."""
        found = self.records.lookup(text)
        if found is None:
            raise ContainerNotFound(f"No such container: {text}")
        return found.config.mounts

    def _volumes_from_names(self, options: RunOptions) -> list[str]:
        """The volumes ``--volumes-from`` borrows (they must exist; they are never made)."""
        from strata.runtime.mounts import VOLUME, parse_volumes_from

        names = []
        for text in options.volumes_from:
            name, _ = parse_volumes_from(text)
            names += [m.source for m in self._mounts_of(name) if m.kind == VOLUME]
        return names

    # -- state ----------------------------------------------------------------------------------

    def repair_dead(self) -> None:
        """What commands killed on this path left: records of containers whose owner died
        while they ran (reconciled: unmounted, exit recorded, ``--rm`` honoured) and dead
        commands' scratch (a half-extracted layer, a mounted view), a killed create's volume
        directory. Cheap: an ``flock`` probe per running record, a listing of ``tmp/`` and
        ``volumes/``; best effort (``system check`` reports what stays)."""
        from strata.image.scratch import remove_dead_scratch

        if time.monotonic() - self._repaired < REPAIR_EVERY:
            return
        self._repaired = time.monotonic()
        with contextlib.suppress(StrataError, OSError):
            for container in self.records.all():
                if container.state is State.RUNNING and not owner_alive(self.directory(container)):
                    self.refresh(container)
            remove_dead_scratch(self.root, lambda: self.snapshotter)
            if (self.root.path / "volumes").is_dir():
                from strata.volume.store import VolumeStore

                VolumeStore(self.root.path, self.root.db).clear_debris()
        # A killed removal (an rm, or a run --rm's) is on this path too: the next run finishes it.
        self._finish_removals()

    def _finish_removals(self) -> None:
        """Finish the removals a killed ``rm`` left half done: a record whose snapshot is gone
        (`purge` removes the snapshot, then the record), and the snapshot's trash directory.

        A build's step container is skipped: its build commits the step's snapshot as a layer
        and then discards the record, with no owner lock between. Judged under the owner lock,
        which a removal holds: one at work is never taken for a dead one.
        """
        with contextlib.suppress(StrataError, OSError):
            finished = False
            # Records first, then the snapshots: a container's snapshot is made before its
            # record, so a record listed here whose snapshot the later walk lacks lost it.
            containers = self.records.all()
            keys = {info.key for info in self.snapshotter.walk()} if containers else set()
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
                        _clear_leftover(self.directory(container))
                        continue
                    self.purge(current)
                    finished = True
            # The trash directory a killed removal left (put back while its row survives, so the
            # removal is done again whole), or the half-made one of a killed create.
            if finished or self.snapshotter.has_leftovers():
                self.snapshotter.cleanup()

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

    def runtime_status(self, container: Container) -> Status | None:
        """What the runtime says of the container (None: it cannot say)."""
        try:
            return self.backend(container.runtime).state(container.id).status
        except StrataError:
            return None

    def _reconcile(self, container: Container) -> Container | None:
        """A running record with no owner (the caller holds the lock)."""
        if container.config.tied:
            self.purge(container)  # a build step's: it means nothing without its build
            return None
        status = self.runtime_status(container)
        if status in (Status.RUNNING, Status.PAUSED, Status.CREATED):
            return container  # runs on, unowned
        with contextlib.suppress(StrataError):
            self.backend(container.runtime).delete(container.id, force=True)
        self.unmount_rootfs(container)
        self.networks.release(container)
        self.records.set_exited_if_running(container.id, LOST_EXIT_CODE)
        if container.config.autoremove:
            self.purge(container)
            return None
        return self.records.lookup(container.id)

    def unmount_rootfs(self, container: Container) -> None:
        rootfs = self.directory(container) / "rootfs"
        with contextlib.suppress(OSError):
            if rootfs.is_mount():
                unmount(rootfs, detach=True)

    # -- remove ---------------------------------------------------------------------------------

    def remove(self, container: Container, *, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``: a running container needs ``force`` (it is killed first); ``volumes``
        (``-v``) removes its anonymous volumes too."""
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
        if running:
            self.records.set_user_stopped(current.id)  # its monitor must not restart it
        directory = self.directory(current)
        if not directory.is_dir():
            self.purge(current, volumes=volumes or None)
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
            time.sleep(POLL)
        with lock:
            latest = self.records.lookup(current.id)
            if latest is None:  # its owner removed it meanwhile (a run --rm)
                _clear_leftover(directory)
                return
            alive = latest.state is State.RUNNING and self.runtime_status(latest) in (
                Status.RUNNING,
                Status.PAUSED,
            )
            if alive and not force:  # unowned, and it survived the kill we did not send
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the"
                    " container before attempting removal or force remove"
                )
            self.purge(latest, volumes=volumes or None)

    def discard(self, container: Container) -> None:
        """Remove a stopped container at once: runtime state, mount, snapshot, files, record.

        For a build step, whose snapshot has already been committed as a layer (then it is
        no longer the container's to remove).
        """
        self.purge(container)

    def autoremove(self, container: Container) -> None:
        """``--rm``: the container goes, if it was created so (best effort)."""
        if container.config.autoremove:
            with contextlib.suppress(StrataError):
                self.purge(container)

    def purge(self, container: Container, *, volumes: bool | None = None) -> None:
        """Everything of the container goes: runtime state, mount, snapshot, files, record;
        with ``volumes`` (default: ``--rm``'s, as Docker's) its anonymous volumes too."""
        with contextlib.suppress(StrataError):
            self.backend(container.runtime).delete(container.id, force=True)
        self.unmount_rootfs(container)
        self.networks.release(container)
        with contextlib.suppress(StrataError):
            self.snapshotter.remove(container.snapshot)
        # The directory before the record, and again after it: killed in between, a record
        # is left whose snapshot is gone, which the next command's `_finish_removals` purges
        # (a directory left without its record, nobody would). The second pass takes the
        # owner lock a `ps` probing it meanwhile may have recreated.
        from strata.volume.store import release_in

        shutil.rmtree(self.directory(container), ignore_errors=True)
        self.records.delete(container.id, also=lambda conn: release_in(conn, container.id))
        shutil.rmtree(self.directory(container), ignore_errors=True)
        if container.config.autoremove if volumes is None else volumes:
            from strata.runtime.volumes import remove_anonymous

            remove_anonymous(self.root.path, self.root.db, container.config.mounts)


def _life(
    options: RunOptions, config: ProcessDefaults, runtime: str
) -> tuple[Resources, dict[str, Any] | None]:
    """The container's limits and healthcheck, checked as Docker's daemon checks them (before
    anything is made: a refused limit leaves nothing behind)."""
    if options.restart != "no" and options.autoremove:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    resources = check_resources(options.resources)
    if resources.cgroup_limited and runtime == "chroot":
        raise InvalidArgument(
            "the chroot runtime cannot limit memory, CPU or pids (it runs without cgroups);"
            " use --runtime runc, or only --ulimit"
        )
    image_check = getattr(config, "healthcheck", None)
    if image_check is None and options.healthcheck is None:
        return resources, None
    from strata.runtime.health import merge_healthcheck  # only for a container with a check

    return resources, merge_healthcheck(image_check, options.healthcheck)


def _clear_leftover(directory: Path) -> None:
    """Remove what is left of a removed container's directory, with its owner lock held.

    A removal deletes the record, then the directory; a probe of the lock meanwhile (ours,
    waiting for the owner to let go) opens ``owner.lock`` with O_CREAT and may recreate it
    after the removal's ``rmtree`` emptied the directory, which then stays. Once the record is
    gone nobody else creates anything there, so what is left is this probe's.
    """
    shutil.rmtree(directory, ignore_errors=True)


def _still_recorded(manifest_digest: str, image_ref: str) -> Callable[[sqlite3.Connection], None]:
    """A check for `ContainerStore.create`: the image is still recorded (see `create_on`)."""

    def check(conn: sqlite3.Connection) -> None:
        if not image_recorded(conn, manifest_digest):
            raise ImageNotFound(f"No such image: {image_ref}")

    return check
