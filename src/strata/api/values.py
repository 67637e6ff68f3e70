"""The values the API returns: handles for images and containers, a run's result, a history
entry, a push's result; and where a call's store is."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.image.history import LayerFiles
    from strata.image.root import StoreRoot
    from strata.image.store import Image as StoredImage
    from strata.image.store import ImageStore
    from strata.network.ports import Port
    from strata.oci.config import ImageConfig
    from strata.runtime.containers import Container as Record

__all__ = [
    "Container",
    "HistoryEntry",
    "Image",
    "Pushed",
    "Root",
    "RunResult",
    "container_value",
    "image_store",
    "image_value",
    "store_root",
]

Root = str | os.PathLike[str] | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of an image's history, newest first as ``docker history``.

    ``id`` is the ID of the local image made of the steps up to this one (the image's own on
    the top entry), None where Docker shows ``<missing>``; ``size`` is the bytes of the files
    the step's layer holds, 0 for a step that made none. ``files`` (asked for with ``files=``)
    says what the layer did to the files below it: the largest added, changed and deleted,
    and the bytes of lower layers it hides.
    """

    id: str | None
    created: datetime | None
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...] = ()
    empty_layer: bool = False
    author: str = ""
    files: LayerFiles | None = None

    @property
    def short_id(self) -> str | None:
        return self.id.removeprefix("sha256:")[:12] if self.id is not None else None


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image: its ID (the config digest), manifest digest, names and size.

    ``str(image)`` is its ID, so a handle goes wherever an image name goes.
    """

    id: str
    digest: str  # the manifest's
    tags: tuple[str, ...]  # familiar names: ``app:2``, ``localhost:5000/app:1``
    repo_digests: tuple[str, ...]
    created: datetime | None
    size: int  # of the uncompressed layers
    root: Path = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.id

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker shows."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def config(self) -> ImageConfig:
        """The image's configuration (read from the store on each access)."""
        with image_store(self.root) as store:
            return store.config(store.get(self.id))

    def history(self) -> list[HistoryEntry]:
        """`strata.history` of this image."""
        from strata.api.stored import history

        return history(self, root=self.root)


@dataclass(frozen=True, slots=True)
class Container:
    """A container as last seen: ``state`` is ``created``, ``running`` or ``exited``."""

    id: str
    name: str
    image: str  # the image's manifest digest
    image_ref: str  # the image as it was named
    command: tuple[str, ...]
    state: str
    exit_code: int | None
    created: str
    started: str | None
    finished: str | None
    ports: tuple[Port, ...] = ()  # net (issue 12): published and exposed, while it runs
    # res: ``starting``/``healthy``/``unhealthy`` for a container with a healthcheck; whether
    # it waits to be restarted by its policy; restarts so far.
    health: str | None = None
    restarting: bool = False
    restart_count: int = 0
    # cmds: a running container frozen by `pause` (its state stays "running", as Docker's).
    paused: bool = False
    # cmds: `ps -s` (`containers(size=True)`): the container's own layer, and that plus its image.
    size_rw: int | None = None
    size_root_fs: int | None = None

    def __str__(self) -> str:
        return self.id

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `run` did: the exit code and output (None and empty when detached)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    container: Container


@dataclass(frozen=True, slots=True)
class Pushed:
    """A pushed manifest: where it went (with its tag), its digest and size."""

    reference: str
    digest: str
    size: int


def store_root(root: Root) -> StoreRoot:
    from strata.image.root import StoreRoot, default_root

    return StoreRoot(Path(root) if root else default_root())


@contextlib.contextmanager
def image_store(root: Root) -> Iterator[ImageStore]:
    """The store's images, its database closed when the block ends: no call leaves a connection
    open behind it (a process that forks a container's monitor must hold none)."""
    from strata.image.store import ImageStore

    with store_root(root) as where:
        yield ImageStore(where)


def image_value(found: StoredImage, root: Path) -> Image:
    from strata.oci.config import parse_time

    return Image(
        id=str(found.id),
        digest=str(found.manifest_digest),
        tags=tuple(tag.familiar for tag in found.tags),
        repo_digests=tuple(found.repo_digests),
        created=parse_time(found.created) if found.created else None,
        size=found.size,
        root=root,
    )


def container_value(record: Record, ports: Sequence[Port] = ()) -> Container:
    return Container(
        id=record.id,
        name=record.name,
        image=record.image,
        image_ref=record.image_ref,
        command=record.config.args,
        state=str(record.state.value),
        exit_code=record.exit_code,
        created=record.created,
        started=record.started,
        finished=record.finished,
        ports=tuple(ports),
        health=record.health_status,
        restarting=record.restarting,
        restart_count=record.restart_count,
    )
