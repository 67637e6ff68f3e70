"""``docker cp``: files between a container (running or not) and the host, or a tar stream.

A running container is reached through its init's ``/proc/<pid>/root``: its own mount
namespace, so what is mounted in it (binds, volumes, tmpfs) is copied through, as Docker copies
through them. A container that does not run has its snapshot mounted for the copy, under its
owner lock so that no start races the mount, and its volumes and binds are mounted over it
where they would be (tmpfs mounts are not: they hold nothing while it is stopped), as Docker
mounts them for a copy.

What a path means and how a tree lands are :mod:`.copyfiles`'s, the same for both directions:
the host is a root (``/``) like the container's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from strata.errors import Conflict, InvalidArgument, NotFound, StrataError
from strata.runtime.backend import Status
from strata.runtime.containers import Container, State
from strata.runtime.copyfiles import (
    PathStat,
    check_pair,
    contents_only,
    extract_archive,
    open_dir,
    stat_in_root,
    wants_dir,
    write_archive,
)
from strata.runtime.owner import OwnerLock
from strata.runtime.records import ContainerRecords

_ROOT_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """``-L``: follow a symlink in the source's last place; ``-a``: keep owners (copy-in
    keeps the archive's ids as root anyway, as Docker 20.10 does; copy-out never does)."""

    follow_link: bool = False
    archive: bool = False


@contextlib.contextmanager
def container_root(service: ContainerRecords, container: Container) -> Iterator[int]:
    """An fd of the container's root directory for the time of a copy."""
    if container.state is State.RUNNING:
        pid = _init_pid(service, container)
        if pid:
            try:
                fd = os.open(f"/proc/{pid}/root", _ROOT_FLAGS)
            except OSError:
                pass
            else:
                try:
                    yield fd
                finally:
                    os.close(fd)
                return
        rootfs = service.directory(container) / "rootfs"
        if rootfs.is_mount():
            with _opened(rootfs) as fd:
                yield fd
            return
        raise Conflict(f"container {container.name} is starting or stopping: try again")
    lock = OwnerLock.try_acquire(service.directory(container))
    if lock is None:  # a start holds it right now
        raise Conflict(f"container {container.name} is starting: try again")
    with lock, _mounted(service, container) as path, _opened(path) as fd:
        yield fd


def _init_pid(service: ContainerRecords, container: Container) -> int:
    """The host pid of the container's init, as its runtime knows it (0: not running)."""
    try:
        state = service.backend(container.runtime).state(container.id)
    except StrataError:
        return 0
    return state.pid if state.status in (Status.RUNNING, Status.PAUSED) else 0


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[int]:
    fd = os.open(path, _ROOT_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _mounted(service: ContainerRecords, container: Container) -> Iterator[Path]:
    from strata.image.scratch import owned_prefix
    from strata.snapshot.mount import mount_all, unmount

    scratch = service.root.path / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=owned_prefix("cp")) as target:
        mount_all(service.snapshotter.mounts(container.snapshot), Path(target))
        try:
            _mount_volumes(service, container, Path(target))
            yield Path(target)
        finally:
            unmount(Path(target), detach=True)  # lazily, with the volumes mounted under it


def _mount_volumes(service: ContainerRecords, container: Container, target: Path) -> None:
    """Bind the stopped container's volumes and binds at their destinations in ``target``
    (resolved inside it, as the runtime resolves them); one whose destination does not exist
    yet (never started) is skipped: the copy then lands in the container's layer, as it
    would once the runtime made the mount point."""
    from strata.runtime import syscalls as sc
    from strata.runtime.mounts import BIND, TMPFS, parse_volume_flag
    from strata.runtime.rootfs import resolve_components
    from strata.volume.store import data_dir

    cfg = container.config
    mounts = cfg.mounts or tuple(parse_volume_flag(v) for v in cfg.volumes)
    for mount in mounts:
        if mount.kind == TMPFS:
            continue
        source = (
            Path(mount.source) if mount.kind == BIND else data_dir(service.root.path, mount.source)
        )
        where = target.joinpath(*resolve_components(target, mount.destination))
        if not where.exists() or not source.exists():
            continue
        sc.mount(str(source), str(where), None, sc.MS_BIND | sc.MS_REC)
        if not mount.rw:
            sc.mount(None, str(where), None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _top_name(path: str, source: PathStat) -> bytes:
    """The source's name in the archive: the base name as given, ``.`` for its contents."""
    if source.is_dir and contents_only(path):
        return b"."
    name = os.fsencode(path).rstrip(b"/").rsplit(b"/", 1)[-1]
    return name if name and name not in (b".", b"..") else source.name or b"."


def _source(root_fd: int, path: str, options: CopyOptions, missing: str) -> PathStat:
    source = stat_in_root(root_fd, path, follow=options.follow_link)
    if not source.exists:
        raise NotFound(missing)
    if wants_dir(path) and not source.is_dir:
        raise InvalidArgument(f"{path}: not a directory")
    return source


def _copy(
    src_root: int,
    source: PathStat,
    top: bytes,
    dest_root: int,
    dest: PathStat,
    *,
    keep_owner: bool,
    what: str,
) -> None:
    """Archive ``source`` and extract it onto ``dest`` by Docker's rules: into an existing
    directory under its own name (its contents, for ``top`` ``.``), else as ``dest``."""
    if dest.is_dir:
        target, rename = dest.parts, None
    else:
        target, rename = dest.parent, (top, dest.name)
    dest_fd = open_dir(dest_root, target)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        with open(write_fd, "wb") as out:
            try:
                write_archive(src_root, source, top, out)
            except BrokenPipeError:
                pass  # the extractor failed first: its error is the one to tell
            except BaseException as exc:
                failure.append(exc)

    worker = threading.Thread(target=produce, name="cp-archive")
    worker.start()
    try:
        with open(read_fd, "rb") as stream:
            try:
                extract_archive(stream, dest_fd, source=what, rename=rename, keep_owner=keep_owner)
            finally:
                stream.close()  # lets a blocked producer fail, so the join below returns
                worker.join()
    finally:
        os.close(dest_fd)
    if failure:
        raise failure[0]


def copy_from(
    service: ContainerRecords,
    container: Container,
    path: str,
    dest: str,
    options: CopyOptions = CopyOptions(),  # noqa: B008 - frozen
    *,
    stdout: IO[bytes] | None = None,
    given: str | None = None,
) -> None:
    """``docker cp CONTAINER:PATH DEST`` (``-``: a tar on ``stdout``); ``given`` is the
    container as the user named it, for messages."""
    missing = f"Could not find the file {path} in container {given or container.name}"
    with container_root(service, container) as root_fd:
        source = _source(root_fd, path, options, missing)
        top = _top_name(path, source)
        if dest == "-":
            assert stdout is not None
            write_archive(root_fd, source, top, cast(BinaryIO, stdout))
            return
        host = os.open("/", _ROOT_FLAGS)
        try:
            absolute = os.path.join(os.getcwd(), dest)
            target = stat_in_root(host, absolute, follow=True)
            if not target.exists and lookup_missing(host, target):
                parent = os.path.dirname(absolute.rstrip("/")) or "/"
                raise NotFound(f'invalid output path: directory "{parent}" does not exist')
            check_pair(source.is_dir, target, dest)
            _copy(root_fd, source, top, host, target, keep_owner=False, what=dest)
        finally:
            os.close(host)


def copy_to(
    service: ContainerRecords,
    container: Container,
    src: str,
    path: str,
    options: CopyOptions = CopyOptions(),  # noqa: B008 - frozen
    *,
    stdin: IO[bytes] | None = None,
    given: str | None = None,
) -> None:
    """``docker cp SRC CONTAINER:PATH`` (``-``: a tar read from ``stdin``)."""
    label = given or container.name
    with container_root(service, container) as root_fd:
        target = stat_in_root(root_fd, path, follow=True)
        if src == "-":
            if not target.is_dir:
                raise InvalidArgument(f'destination "{label}:{path}" must be a directory')
            assert stdin is not None
            dest_fd = open_dir(root_fd, target.parts)
            try:
                extract_archive(cast(BinaryIO, stdin), dest_fd, source="the tar on stdin")
            finally:
                os.close(dest_fd)
            return
        host = os.open("/", _ROOT_FLAGS)
        try:
            absolute = os.path.join(os.getcwd(), src)
            source = _source(
                host, absolute, options, f"lstat {absolute}: no such file or directory"
            )
            if not target.exists and lookup_missing(root_fd, target):
                parent = os.path.dirname(os.path.join("/", path).rstrip("/")) or "/"
                raise NotFound(f"Could not find the file {parent} in container {label}")
            check_pair(source.is_dir, target, path)
            top = _top_name(src, source)
            where = f"{label}:{path}"
            _copy(host, source, top, root_fd, target, keep_owner=True, what=where)
        finally:
            os.close(host)


def lookup_missing(root_fd: int, target: PathStat) -> bool:
    """Whether ``target``'s parent directory is missing."""
    try:
        os.close(open_dir(root_fd, target.parent))
    except NotFound:
        return True
    return False
