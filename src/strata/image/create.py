"""Write a new image (config + OCI manifest) for layers already in the content store.

`store_image` writes and records one image through `ImageStore.write`; a build's runs of
metadata steps encode theirs with `encode_image` and write many at once
(`ImageStore.write_many`); `add_images` records the rows of images whose blobs are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strata.digest import Digest
from strata.image.model import BlobLayer, LayerInfo, MemoryImage, encode_manifest
from strata.image.record import NewImage
from strata.image.record import record_images as add_images
from strata.image.store import Image, ImageLayer, ImageStore
from strata.oci.config import ImageConfig
from strata.oci.descriptor import Descriptor
from strata.oci.reference import Reference
from strata.store.leases import Lease

__all__ = [
    "ImageBlobs",
    "NewImage",
    "add_images",
    "blob_layer",
    "encode_image",
    "put_blob",
    "store_image",
]


def put_blob(images: ImageStore, lease: Lease, data: bytes) -> Digest:
    """Store ``data`` under the operation's lease (leased first, so gc cannot race the write)."""
    digest = Digest.of(data)
    lease.add("blob", str(digest))
    images.content.put_bytes(data, expected=digest)
    return digest


@dataclass(frozen=True, slots=True)
class ImageBlobs:
    """An image's config and OCI manifest, encoded but not yet stored."""

    config: bytes
    config_digest: Digest
    manifest: bytes
    manifest_digest: Digest


def encode_image(config_bytes: bytes, layers: Sequence[tuple[ImageLayer, int]]) -> ImageBlobs:
    """The config blob ``config_bytes`` and an OCI manifest for ``layers`` (each with its
    blob's size), with their digests; nothing is written."""
    config_digest = Digest.of(config_bytes)
    _, manifest_bytes = encode_manifest(
        config_bytes,
        [(layer.media_type, layer.blob, size) for layer, size in layers],
        config_digest=config_digest,
    )
    return ImageBlobs(config_bytes, config_digest, manifest_bytes, Digest.of(manifest_bytes))


def blob_layer(images: ImageStore, layer: ImageLayer, size: int | None = None) -> BlobLayer:
    """A recorded (or just written) layer as a model layer; ``size`` is its blob's size,
    looked up if not given."""
    if size is None:
        size = images.content.info(layer.blob).size
    return BlobLayer(
        images.content,
        Descriptor(layer.media_type, layer.blob, size),
        LayerInfo(layer.diff_id, layer.size, layer.content_size),
    )


def store_image(
    images: ImageStore,
    lease: Lease,
    *,
    config: ImageConfig,
    layers: Sequence[ImageLayer],
    names: Iterable[Reference] = (),
    intermediate: bool = False,
    parent: Digest | None = None,
) -> Image:
    """Write the config and an OCI manifest for ``layers`` and record the image under ``names``.

    Both blobs are leased in one transaction before either is written (gc cannot race the
    writes), and written in one durable pass."""
    image = MemoryImage(config, [blob_layer(images, layer) for layer in layers])
    return images.write(image, names=names, intermediate=intermediate, parent=parent, lease=lease)
