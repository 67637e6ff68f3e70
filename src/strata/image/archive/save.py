"""``save``: stored images, by the names the user gave, into one archive, under a lease.

Every image is held (`strata.image.hold`) before the first byte is written and until the last:
an ``rmi`` and a ``prune`` racing the save either come too late to take anything from it, or
removed the image before it was held, and the save then fails with ``No such image`` having
written nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import BinaryIO

from strata.errors import InvalidArgument
from strata.image.archive.formats import ArchiveFormat, SaveImage
from strata.image.archive.writer import write_archive
from strata.image.hold import hold_image
from strata.image.store import Image, ImageStore
from strata.oci.reference import Reference, parse_reference

__all__ = ["save_images"]


def save_images(
    images: ImageStore,
    names: Sequence[str],
    output: Callable[[], AbstractContextManager[BinaryIO]],
    *,
    format: ArchiveFormat,
) -> None:
    """Write the images ``names`` name as one archive of ``format`` to the stream ``output()``
    opens, which is opened only once every image is held.

    An image named twice is written once, with every tag it was named by (an ID adds none).
    """
    with images.root.lease() as lease:
        by_manifest: dict[str, tuple[SaveImage, list[str]]] = {}
        for name in names:
            held = hold_image(images, lease, name)
            key = str(held.image.manifest_digest)
            if key not in by_manifest:
                save = SaveImage(
                    names=(),
                    manifest_digest=held.image.manifest_digest,
                    manifest=held.manifest,
                    config=images.config(held.image),
                )
                by_manifest[key] = (save, [])
            tag = _named_tag(name, held.image)
            tags = by_manifest[key][1]
            if tag is not None and str(tag) not in tags:
                tags.append(str(tag))
        entries = [
            SaveImage(tuple(tags), save.manifest_digest, save.manifest, save.config)
            for save, tags in by_manifest.values()
        ]
        with output() as out:
            write_archive(out, entries, images.content, format=format)


def _named_tag(text: str, image: Image) -> Reference | None:
    """The tag ``text`` names, when it names ``image`` by one (not by ID or digest)."""
    try:
        ref = parse_reference(text)
    except InvalidArgument:
        return None
    if ref.digest is not None:
        return None
    tagged = ref.with_default_tag()
    return tagged if tagged in image.tags else None
