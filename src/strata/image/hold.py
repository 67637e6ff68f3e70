"""Holding a stored image for a reader: its blobs under a lease before any of them is read.

A push or a save reads an image's manifest, config and layers for as long as the upload or the
archive takes; an ``rmi`` and a ``prune`` meanwhile would collect them, and the reader would fail
half-way or, worse, send half an image. So the reader leases first and looks afterwards (the gc
protocol of `strata.store.leases`): the manifest is leased before it is read, the blobs it names
before any of them is opened, and only then is the image looked up again. If it is still
recorded, every blob is present and stays so until the lease is released; if it was removed
before the lease was taken, the reader stops with Docker's ``No such image`` before it has
written anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.errors import BlobNotFound, ImageNotFound
from strata.image.store import Image, ImageStore
from strata.oci.manifest import Manifest
from strata.store.leases import Lease

__all__ = ["HeldImage", "hold_image"]


@dataclass(frozen=True, slots=True)
class HeldImage:
    """An image whose manifest, config and layer blobs a lease holds: present until released."""

    image: Image
    manifest: Manifest


def hold_image(images: ImageStore, lease: Lease, text: str) -> HeldImage:
    """Lease every blob of the image ``text`` names, then check that they are all there.

    `ImageNotFound` (``No such image: TEXT``) if there is no such image, or it was removed before
    its blobs were leased; `BlobNotFound` if it is still recorded but a blob is missing (a
    damaged store: ``system check`` says more).
    """
    image = images.get(text)
    # The manifest first: reading it is a look, and gc must not take it from under the read.
    lease.add("blob", str(image.manifest_digest))
    try:
        manifest = images.manifest(image)
    except BlobNotFound:
        _still_recorded(images, image, text)
        raise
    lease.add_all("blob", [str(manifest.config.digest), *(str(d.digest) for d in manifest.layers)])
    # Every blob is held from here on. The image may have been removed (and its blobs collected)
    # between the lookup and the lease: a row still there now means it was not, or that a
    # writer made it again, blobs first.
    _still_recorded(images, image, text)
    for digest in (manifest.config.digest, *(d.digest for d in manifest.layers)):
        if not images.content.exists(digest):
            raise BlobNotFound(f"image {image.id.short}: blob {digest} not found")
    return HeldImage(image, manifest)


def _still_recorded(images: ImageStore, image: Image, text: str) -> None:
    if images.by_manifest(image.manifest_digest) is None:
        raise ImageNotFound(f"No such image: {text}")
