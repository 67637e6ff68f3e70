"""``image import``: a root filesystem tarball becomes a one-layer image, as ``docker import``."""

from __future__ import annotations

import io
import os
import stat
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import BinaryIO

from strata.errors import DigestMismatch, NoSpace
from strata.image.changes import apply_changes
from strata.image.create import store_image
from strata.image.store import Image, ImageLayer, ImageStore
from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT, open_decompressed
from strata.layer.normalize import normalize_tar
from strata.oci.config import ContainerConfig, History, ImageConfig, RootFS, format_time
from strata.oci.descriptor import Platform
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import Reference
from strata.store.leases import Lease
from strata.store.space import no_space


def base_config(created: datetime) -> ImageConfig:
    """An empty config for this machine's platform."""
    platform = Platform.current()
    return ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        config=ContainerConfig(),
        rootfs=RootFS("layers", ()),
        history=(),
        created=format_time(created),
    )


def write_rootfs_layer(
    images: ImageStore, lease: Lease, source: BinaryIO, *, name: str
) -> ImageLayer:
    """Decompress, check and normalise a rootfs tar stream into an uncompressed layer blob.

    Every member is validated (no ``..``, links inside the layer) and re-emitted in canonical
    form, so the layer's diff ID depends only on the content, never on how the tar was made.
    """
    stream = open_decompressed(source, limit=DEFAULT_DECOMPRESS_LIMIT, source=name)
    try:
        with images.content.writer(f"layer-{uuid.uuid4().hex}") as writer:
            stats = normalize_tar(stream, writer, source=name)  # type: ignore[arg-type]
            lease.add("blob", str(stats.diff_id))
            digest = writer.commit(expected=stats.diff_id, size=stats.size)
    except NoSpace as err:
        # The writer has removed what it wrote; the tar's size is what the layer needs at least.
        size = _file_size(source)
        needed = size - err.written if size is not None else None
        raise no_space(f"writing the layer of {name}", needed=needed) from None
    if digest != stats.diff_id:  # pragma: no cover - commit verifies this
        raise DigestMismatch(f"{name}: layer digest {digest} != {stats.diff_id}")
    return ImageLayer(digest, OCI_LAYER, digest, stats.size, stats.content)


def _file_size(source: BinaryIO) -> int | None:
    """The size of ``source`` if it is a regular file (not a pipe or a download)."""
    try:
        info = os.fstat(source.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def import_rootfs(
    images: ImageStore,
    source: BinaryIO,
    *,
    name: str,
    names: Iterable[Reference] = (),
    message: str = "",
    changes: Iterable[str] = (),
    created: datetime | None = None,
) -> Image:
    """``docker import``: one layer from ``source``, with ``message`` as the image's comment
    and its history's, or Docker's ``Imported from -`` (``-``: the Docker CLI sends a file as
    its request body, so a file and stdin read the same; ``name`` for a URL)."""
    when = created or datetime.now(UTC)
    # Changes are checked before any byte is read, so a bad -c writes nothing.
    config = apply_changes(base_config(when), changes)
    origin = name if name.startswith(("http://", "https://")) else "-"
    comment = message or f"Imported from {origin}"
    with images.operation() as lease:
        layer = write_rootfs_layer(images, lease, source, name=name)
        config = replace(
            config,
            rootfs=RootFS("layers", (layer.diff_id,)),
            history=(History(created=format_time(when), comment=comment),),
            extra={**config.extra, "comment": comment},
        )
        return store_image(images, lease, config=config, layers=[layer], names=names)
