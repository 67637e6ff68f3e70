"""A container's writable layer as an image layer: ``commit``, ``diff`` and ``export``.

The container's snapshot is compared with its parent by `strata.diff.compare`, the one differ
(a build's steps use it too): the tar is canonical, so the same changes give the same diff ID.
A commit makes its image through the image model: the container's changes are a
`SnapshotLayer` appended to its image by `strata.image.mutate`, stored by `ImageStore.write`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from strata.diff.compare import compare_snapshot
from strata.errors import NoSpace, StrataError
from strata.image import mutate
from strata.image.hold import hold_image
from strata.image.model import SnapshotLayer
from strata.image.scratch import owned_name, owned_prefix
from strata.image.store import Image
from strata.layer.entry import display_name
from strata.layer.generate import write_tar_from_dir
from strata.layer.stats import LayerStats
from strata.layer.tarreader import TarReader
from strata.oci.config import History, ImageConfig, format_time
from strata.oci.reference import Reference
from strata.runtime.containers import Container
from strata.runtime.lifecycle import Containers
from strata.snapshot.mount import mount_all, unmount
from strata.store.leases import Lease
from strata.store.space import no_space

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def write_container_layer(service: Containers, container: Container, out: BinaryIO) -> LayerStats:
    """Write the container's changes to ``out`` as a canonical layer tar."""
    return compare_snapshot(service.snapshotter, container.snapshot, out, _scratch(service))


def container_config(config: ImageConfig, container: Container) -> ImageConfig:
    """The image's config with what the container ran with, as Docker commits it: its
    environment, ENTRYPOINT and CMD (the ``-c`` changes go on top of this)."""
    env = container.config.env or config.config.env
    merged = replace(config, config=replace(config.config, env=env))
    # The container's own ENTRYPOINT and CMD (given at run, or the image's) are what Docker
    # commits.
    if container.config.entrypoint is not None:
        entrypoint = container.config.entrypoint or None
        merged = replace(merged, config=replace(merged.config, entrypoint=entrypoint))
    if container.config.cmd is not None:
        cmd = container.config.cmd or None
        merged = replace(merged, config=replace(merged.config, cmd=cmd))
    return merged


@contextlib.contextmanager
def _paused(service: Containers, container: Container, pause: bool) -> Iterator[None]:
    """Freeze a running container while its layer is read, as Docker's commit does by default,
    so the layer is one consistent moment of its filesystem. Backends without a freezer (the
    chroot one) commit the running container as it is."""
    from strata.runtime.containers import State
    from strata.runtime.runc import RuncBackend

    backend = service.backend(container.runtime) if pause else None
    if container.state is not State.RUNNING or not isinstance(backend, RuncBackend):
        yield
        return
    backend.pause(container.id)
    try:
        yield
    finally:
        backend.resume(container.id)


def commit_container(
    service: Containers,
    container: Container,
    *,
    ref: Reference | None = None,
    message: str = "",
    author: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
) -> Image:
    """``docker commit``: the container's changes become one new layer on top of its image.

    Made as every image is: the container's image opened as a model image, its config set and
    ``changes`` applied (`strata.image.mutate`), the container's layer appended with its history
    entry, and the result written by `ImageStore.write`.
    """
    images = service.images
    with images.operation() as lease:
        # The new image shares the image's blobs: leased before they are read, so that even if
        # the container (which keeps its image from rmi) is removed meanwhile, no prune can
        # take them from under the new image (`strata.image.hold`).
        held = hold_image(images, lease, container.image).image
        base = images.open(held)
        # Changes are validated before any layer is written, so a bad -c leaves nothing behind.
        configured = mutate.apply_changes(
            mutate.set_config(base, container_config(base.config(), container)), changes
        )
        layer = container_layer(service, container, lease)
        try:
            with _paused(service, container, pause):
                layer.make()
        except NoSpace as err:
            # The writer has removed what it wrote; the layer is at least as large as what the
            # container changed.
            changed = _changed_size(service, container)
            needed = changed - err.written if changed is not None else None
            what = f"writing the layer of container {container.name}"
            raise no_space(what, needed=needed) from None
        now = format_time(datetime.now(UTC))
        own = configured.config().child()
        configured = mutate.set_config(
            configured,
            replace(
                own,
                # Docker's commit writes -m as the image's own comment too (inspect's .Comment).
                extra={**own.extra, **({"comment": message} if message else {})},
                created=now,
                author=author or None,
            ),
        )
        history = History(
            created=now,
            created_by=" ".join(container.config.args),
            author=author or None,
            comment=message or None,
        )
        new = mutate.append_layer(configured, layer, history=history)
        names = [ref] if ref is not None else []
        return images.write(new, names=names, parent=held.id, lease=lease)


def container_layer(service: Containers, container: Container, lease: Lease) -> SnapshotLayer:
    """The container's changes as a layer written straight into the content store when made,
    its blob held by ``lease`` (the commit's)."""
    return SnapshotLayer(
        lambda out: write_container_layer(service, container, out),
        content=service.images.content,
        hold=lambda digest: lease.add("blob", str(digest)),
        ingest="commit",
    )


def _changed_size(service: Containers, container: Container) -> int | None:
    """Bytes the container's own snapshot holds, if it can be measured."""
    try:
        return service.snapshotter.usage(container.snapshot).size
    except StrataError:
        return None


def changes(service: Containers, container: Container) -> list[tuple[str, str]]:
    """``docker diff``: (kind, path) with kind A (added), C (changed) or D (deleted), sorted."""
    scratch = _scratch(service)
    with tempfile.TemporaryFile(dir=scratch) as tar, _lower_view(service, container) as lower:
        write_container_layer(service, container, tar)
        tar.seek(0)
        found: dict[str, str] = {}
        for entry in TarReader(tar, source=f"container {container.short_id}"):
            name = display_name(entry.name).rstrip("/")
            directory, _, base = name.rpartition("/")
            if base == OPAQUE:
                found["/" + directory] = "C"
            elif base.startswith(WHITEOUT):
                found["/" + (f"{directory}/" if directory else "") + base[len(WHITEOUT) :]] = "D"
            else:
                exists = lower is not None and os.path.lexists(lower / name)
                found.setdefault("/" + name, "C" if exists else "A")
    return sorted(((kind, path) for path, kind in found.items()), key=lambda kp: kp[1])


def export(service: Containers, container: Container, out: BinaryIO) -> LayerStats:
    """``docker export``: the container's whole filesystem as one tar.

    Errors reading the tree name the container and the path inside it (the tree is a
    temporary mount the user never saw). Errors writing ``out`` are raised as the `OSError`
    ``out`` gave, a reader gone away as `BrokenPipeError`, for the caller to end quietly.
    """
    sink = _Output(out)
    try:
        with _merged_view(service, container) as merged:
            label = f"container {container.short_id}"
            return write_tar_from_dir(merged, cast(BinaryIO, sink), label=label)
    except _OutputFailed as e:
        raise e.error from None


class _OutputFailed(Exception):
    """A write to the archive's destination failed: not the tree's fault, whatever member
    was being written (deliberately no OSError, which the tree walk blames on a member)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Output:
    """``out`` with its write errors marked as the destination's (`_OutputFailed`)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes | memoryview) -> int:
        try:
            return self._out.write(data)
        except OSError as e:
            raise _OutputFailed(e) from None

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as e:
            raise _OutputFailed(e) from None


def _scratch(service: Containers) -> Path:
    scratch = service.root.path / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    return scratch


@contextlib.contextmanager
def _lower_view(service: Containers, container: Container) -> Iterator[Path | None]:
    """The image's filesystem under the container, mounted read-only while needed."""
    snapshotter = service.snapshotter
    parent = snapshotter.stat(container.snapshot).parent
    if parent is None:
        yield None
        return
    key = owned_name("view")
    mounts = snapshotter.view(key, parent)
    with tempfile.TemporaryDirectory(dir=_scratch(service), prefix=owned_prefix("view")) as target:
        try:
            mount_all(mounts, Path(target))
            try:
                yield Path(target)
            finally:
                unmount(Path(target), detach=True)
        finally:
            snapshotter.remove(key)


@contextlib.contextmanager
def _merged_view(service: Containers, container: Container) -> Iterator[Path]:
    rootfs = service.directory(container) / "rootfs"
    if rootfs.is_mount():
        yield rootfs
        return
    with tempfile.TemporaryDirectory(dir=_scratch(service), prefix=owned_prefix("view")) as target:
        mount_all(service.snapshotter.mounts(container.snapshot), Path(target))
        try:
            yield Path(target)
        finally:
            unmount(Path(target), detach=True)
