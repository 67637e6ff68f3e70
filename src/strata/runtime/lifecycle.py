"""Containers from images: create (unpack + writable snapshot + record), run, remove.

This is what ``strata run`` / ``create`` / ``rm`` do, as a library: the image's layers are
unpacked once into shared snapshots, the container gets its own writable snapshot on top, its
root filesystem is mounted under ``containers/<id>/rootfs`` only while it runs, and its record
says where it stands. The writable snapshot outlives the process (for ``commit`` and ``diff``)
until the container is removed.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from strata.errors import Conflict, InvalidArgument, StrataError
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.image.unpack import unpack
from strata.oci.config import ContainerConfig
from strata.runtime.backend import INHERIT, ProcessIO, RuntimeBackend
from strata.runtime.containers import Container, ContainerStore, State
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
from strata.snapshot import Snapshotter
from strata.snapshot.mount import mount_all, unmount
from strata.snapshot.select import default_snapshotter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``strata run`` / ``create`` take besides the image."""

    name: str | None = None
    command: tuple[str, ...] = ()
    entrypoint: str | None = None  # None: the image's; "": none
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "host"
    volumes: tuple[str, ...] = ()
    tty: bool = False
    interactive: bool = False
    runtime: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def process_args(config: ContainerConfig, options: RunOptions) -> tuple[str, ...]:
    """Docker's rule: ENTRYPOINT + CMD, where a given command replaces CMD and a given
    ``--entrypoint`` replaces ENTRYPOINT (and drops the image's CMD)."""
    if options.entrypoint is not None:
        entrypoint: tuple[str, ...] = (options.entrypoint,) if options.entrypoint else ()
        cmd = options.command
    else:
        entrypoint = config.entrypoint or ()
        cmd = options.command or (config.cmd or ())
    args = (*entrypoint, *cmd)
    if not args:
        raise InvalidArgument("no command specified")
    return args


def process_env(config: ContainerConfig, extra: Sequence[str]) -> tuple[str, ...]:
    """The image's env, then ``-e`` values; PATH defaults as Docker's."""
    merged: dict[str, str] = {}
    for entry in (*config.env, *extra):
        key, sep, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        merged[key] = value if sep else ""
    merged.setdefault("PATH", DEFAULT_PATH)
    return tuple(f"{k}={v}" for k, v in merged.items())


class Containers:
    """The container service over one store root."""

    def __init__(self, root: StoreRoot) -> None:
        self.root = root
        self.images = ImageStore(root)
        self.records = ContainerStore(root.db)
        self._snapshotter: Snapshotter | None = None

    @property
    def snapshotter(self) -> Snapshotter:
        if self._snapshotter is None:
            self._snapshotter = default_snapshotter(self.root.path, self.root.db)
        return self._snapshotter

    def backend(self, name: str | None) -> RuntimeBackend:
        state = self.root.path / "runtime"
        return backend_by_name(name, state) if name else default_backend(state)

    def directory(self, container: Container) -> Path:
        return self.root.path / "containers" / container.id

    def create(self, image_ref: str, options: RunOptions) -> Container:
        """Unpack the image if needed, give the container a writable snapshot, record it."""
        image = self.images.get(image_ref)
        config = self.images.config(image)
        args = process_args(config.config, options)
        env = process_env(config.config, options.env)
        if options.network not in ("host", "none"):
            raise InvalidArgument(f"invalid --network {options.network!r}: use host or none")
        volumes = [parse_volume(v) for v in options.volumes]
        for volume in volumes:
            if not volume.source.exists():
                volume.source.mkdir(parents=True)
        backend = self.backend(options.runtime)
        top = unpack(self.images, self.snapshotter, image)
        cid = secrets.token_hex(32)
        key = f"container-{cid}"
        self.snapshotter.prepare(key, top)
        try:
            return self.records.create(
                name=options.name,
                image=str(image.manifest_digest),
                image_ref=image_ref,
                snapshot=key,
                runtime=backend.name,
                container_id=cid,
                config={
                    "args": list(args),
                    "env": list(env),
                    "cwd": options.workdir or config.config.working_dir or "/",
                    "user": options.user if options.user is not None else config.config.user or "",
                    "hostname": options.hostname or "",
                    "network": options.network,
                    "volumes": list(options.volumes),
                    "tty": options.tty,
                    "interactive": options.interactive,
                },
            )
        except BaseException:
            self.snapshotter.remove(key)
            raise

    def run(self, container: Container, *, stdio: ProcessIO = INHERIT) -> int:
        """Run the container in the foreground; returns its exit code."""
        if container.state is State.RUNNING:
            raise Conflict(f"container {container.short_id} is already running")
        cfg = container.config
        directory = self.directory(container)
        rootfs = directory / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        network = Network(cfg["network"])
        hostname = cfg["hostname"] or default_hostname(container.id, network)
        etc = write_etc_files(directory, hostname=hostname, network=network)
        mount_all(self.snapshotter.mounts(container.snapshot), rootfs)
        try:
            spec = RunSpec(
                rootfs=rootfs,
                process=ProcessSpec(
                    args=tuple(cfg["args"]),
                    env=tuple(cfg["env"]),
                    cwd=cfg["cwd"],
                    user=cfg["user"],
                    terminal=bool(cfg["tty"]),
                ),
                hostname=hostname,
                network=network,
                mounts=tuple(parse_volume(v) for v in cfg["volumes"]),
                etc=etc,
            )
            write_bundle(directory, spec, container_id=container.id)
            backend = self.backend(container.runtime)
            self.records.set_running(container.id, 0)
            code = 127
            try:
                code = backend.run(container.id, directory, stdio=stdio)
            except StrataError as exc:
                code = exc.exit_code
                raise
            finally:
                self.records.set_exited(container.id, code)
            return code
        finally:
            unmount(rootfs, detach=True)

    def remove(self, container: Container, *, force: bool = False) -> None:
        """``docker rm``: a running container needs ``force`` (it is killed first)."""
        if container.state is State.RUNNING:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the container"
                    " before attempting removal or force remove"
                )
            with contextlib.suppress(StrataError):
                self.backend(container.runtime).delete(container.id, force=True)
        directory = self.directory(container)
        rootfs = directory / "rootfs"
        if rootfs.is_mount():
            unmount(rootfs, detach=True)
        with contextlib.suppress(StrataError):
            self.snapshotter.remove(container.snapshot)
        shutil.rmtree(directory, ignore_errors=True)
        self.records.delete(container.id)
