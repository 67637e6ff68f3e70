"""Write a new image (config + OCI manifest) for layers already in the content store.

`store_image` writes and records one image; a build's runs of metadata steps encode theirs
with `encode_image`, write the blobs of many at once and record them with `add_images`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from strata.digest import Digest
from strata.image.store import Image, ImageLayer, ImageStore, now_rfc3339
from strata.oci.config import ImageConfig
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST
from strata.oci.reference import Reference
from strata.store.leases import Lease


def put_blob(images: ImageStore, lease: Lease, data: bytes) -> Digest:
    """Store ``data`` under the operation's lease (leased first, so gc cannot race the write)."""
    digest = Digest.of(data)
    lease.add("blob", str(digest))
    images.content.put_bytes(data, expected=digest)
    return digest


@dataclass(frozen=True, slots=True)
class NewImage:
    """An image whose blobs are written (or about to be): what `add_images` records."""

    manifest_digest: Digest
    config_digest: Digest
    created: str | None
    layers: tuple[ImageLayer, ...]
    media_type: str = OCI_MANIFEST
    names: tuple[Reference, ...] = ()
    intermediate: bool = False
    parent: Digest | None = None

    def image(self, added: str) -> Image:
        """The `Image` this records, as `ImageStore.by_manifest` would read it back."""
        size = sum(layer.shown_size for layer in self.layers)
        return Image(
            manifest_digest=self.manifest_digest,
            config_digest=self.config_digest,
            media_type=self.media_type,
            created=self.created,
            size=size,
            added=added,
            tags=tuple(sorted((n.with_default_tag() for n in self.names), key=str)),
            intermediate=self.intermediate,
        )


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
    manifest = Manifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(Descriptor(layer.media_type, layer.blob, size) for layer, size in layers),
    )
    manifest_bytes = manifest.to_json()
    return ImageBlobs(config_bytes, config_digest, manifest_bytes, Digest.of(manifest_bytes))


def add_images(
    images: ImageStore,
    new: Sequence[NewImage],
    *,
    also: Callable[[sqlite3.Connection], None] | None = None,
) -> list[Image]:
    """Record many images whose blobs are durable, in ONE transaction (with ``also``'s rows).

    `ImageStore.add`'s rows, for a batch: an image already recorded is kept as it is (its names
    move to it), a layer's known size is kept. The images are returned as recorded, without
    reading them back (a concurrent prune may remove them at once; their blobs stay leased).
    """
    sized = {la.blob: la for la in images._sized([la for n in new for la in n.layers])}
    added = now_rfc3339()
    entries = [replace(n, layers=tuple(sized[la.blob] for la in n.layers)) for n in new]
    with images.db.transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO images"
            " (manifest_digest, config_digest, media_type, created, size, added, intermediate,"
            " parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    str(n.manifest_digest),
                    str(n.config_digest),
                    n.media_type,
                    n.created,
                    sum(la.shown_size for la in n.layers),
                    added,
                    int(n.intermediate),
                    str(n.parent) if n.parent is not None else None,
                )
                for n in entries
            ],
        )
        layers = {la.blob: la for n in entries for la in n.layers}
        conn.executemany(
            "INSERT INTO layers (digest, diff_id, size, media_type, content_size)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET content_size ="
            " COALESCE(layers.content_size, excluded.content_size)",
            [
                (str(la.blob), str(la.diff_id), la.size, la.media_type, la.content_size)
                for la in layers.values()
            ],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO tags (name, manifest_digest, updated) VALUES (?, ?, ?)",
            [
                (str(name.with_default_tag()), str(n.manifest_digest), added)
                for n in entries
                for name in n.names
            ],
        )
        if also is not None:
            also(conn)
    return [n.image(added) for n in entries]


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
    writes, and a build's many metadata steps pay one commit for the two, not two)."""
    config_bytes = config.to_json()
    config_digest = Digest.of(config_bytes)
    manifest = Manifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(
            Descriptor(layer.media_type, layer.blob, images.content.info(layer.blob).size)
            for layer in layers
        ),
    )
    manifest_bytes = manifest.to_json()
    manifest_digest = Digest.of(manifest_bytes)
    lease.add_all("blob", [str(config_digest), str(manifest_digest)])
    images.content.put_bytes(config_bytes, expected=config_digest)
    images.content.put_bytes(manifest_bytes, expected=manifest_digest)
    return images.add(
        manifest_digest=manifest_digest,
        media_type=OCI_MANIFEST,
        config_digest=config_digest,
        config=config,
        layers=layers,
        names=names,
        intermediate=intermediate,
        parent=parent,
    )
