"""``image load``: images from an archive or layout directory into the store, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from strata.errors import NoSpace
from strata.image.archive import read_archive
from strata.image.model import archive_image
from strata.image.store import Image, ImageStore
from strata.oci.reference import Reference, parse_reference


def load_images(
    images: ImageStore, source: Path | BinaryIO, *, name: str
) -> list[tuple[Image, list[Reference]]]:
    """Read every image in ``source``; on any error the store is left as it was."""
    loaded_images: list[tuple[Image, list[Reference]]] = []
    with images.operation() as lease:
        try:
            loaded = read_archive(
                source, images.content, name=name, on_blob=lambda d: lease.add("blob", str(d))
            )
        except NoSpace as err:
            # The archive names the input, the writer the blob and the space it needed.
            raise NoSpace(f"loading {name}: {err}", written=err.written) from None
        for item in loaded:
            refs = [parse_reference(n) for n in item.names]
            image = images.write(archive_image(images.content, item), names=refs, lease=lease)
            loaded_images.append((image, refs))
    return loaded_images
