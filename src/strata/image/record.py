"""How an image enters the store: `write_images`, behind `ImageStore.write` and `write_many`.

Blobs first, rows last: every blob an image needs is leased before its presence is checked (so
a concurrent gc cannot take a blob the writer has found and relies on), the ones the store lacks
are streamed in from the model image, and only then are the rows of all the images recorded in
one transaction. An image whose blobs are all present (a pull's, a build step's) copies nothing.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from strata.digest import Digest
from strata.image.model import Image as ModelImage
from strata.image.model import Layer, copy_stream
from strata.image.store import Image, ImageLayer, now_rfc3339
from strata.oci.mediatypes import OCI_MANIFEST
from strata.oci.reference import Reference

if TYPE_CHECKING:
    from strata.image.store import ImageStore

Hold = Callable[[list[str]], None]
"""Leases blobs by digest (a `Lease`'s or a build hold's ``add`` for kind ``"blob"``)."""


@dataclass(frozen=True, slots=True)
class NewImage:
    """An image whose blobs are written (or about to be): the rows `record_images` writes."""

    manifest_digest: Digest
    config_digest: Digest
    created: str | None
    layers: tuple[ImageLayer, ...]
    media_type: str = OCI_MANIFEST
    names: tuple[Reference, ...] = ()
    intermediate: bool = False
    parent: Digest | None = None
    repo_digests: tuple[Reference, ...] = ()

    def image(self, added: str) -> Image:
        """The `Image` this records, as `ImageStore.by_manifest` would read it back (without
        its repo digests)."""
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
class WriteRequest:
    """One image for `ImageStore.write_many`, with what to record about it."""

    image: ModelImage
    names: tuple[Reference, ...] = ()
    repo_digests: tuple[Reference, ...] = ()
    intermediate: bool = False
    parent: Digest | None = None
    # The config's ``created``, when the caller has it (a build's final image): its config is
    # then not parsed here, which for a long build's last config is a megabyte of JSON.
    created: str | None = None


def write_images(
    images: ImageStore,
    requests: Sequence[WriteRequest],
    hold: Hold,
    *,
    also: Callable[[sqlite3.Connection], None] | None = None,
) -> list[Image]:
    """Store the blobs ``requests``' images lack (held by ``hold`` first), then record them
    all in one transaction (with ``also``'s rows); the images as recorded, not read back."""
    small: dict[Digest, Callable[[], bytes]] = {}
    layers: dict[Digest, Layer] = {}
    for request in requests:
        image = request.image
        small.setdefault(image.config_digest(), image.raw_config)
        small.setdefault(image.digest(), image.raw_manifest)
        for layer in image.layers():
            layers.setdefault(layer.digest, layer)
    hold([str(d) for d in (*small, *layers)])
    for layer in layers.values():
        if not images.content.exists(layer.digest):
            _copy_layer(images, layer)
    # Configs and manifests in one durable write (a build's many steps pay one pass of fsyncs),
    # read from the model image only if the store lacks them.
    images.content.put_many(
        [(raw(), digest) for digest, raw in small.items() if not images.content.exists(digest)],
        missing=True,
    )
    recorded = {digest: _recorded(images, layer) for digest, layer in layers.items()}
    entries = [
        NewImage(
            r.image.digest(),
            r.image.config_digest(),
            r.created if r.created is not None else r.image.config().created,
            tuple(recorded[la.digest] for la in r.image.layers()),
            media_type=r.image.media_type,
            names=r.names,
            intermediate=r.intermediate,
            parent=r.parent,
            repo_digests=r.repo_digests,
        )
        for r in requests
    ]
    return record_images(images, entries, also=also)


def _copy_layer(images: ImageStore, layer: Layer) -> None:
    """Stream ``layer``'s blob into the content store, checked against its digest and size."""
    with layer.compressed() as src, images.content.writer(f"layer-{uuid.uuid4().hex}") as w:
        copy_stream(src, w.write)
        w.commit(expected=layer.digest, size=layer.size)


def _recorded(images: ImageStore, layer: Layer) -> ImageLayer:
    """The layer's row: its uncompressed size counted from the blob if the layer does not
    know it (the content size is counted by `record_images` when unknown)."""
    size = layer.uncompressed_size
    if size is None:
        # The compression libraries (isal pulls in multiprocessing) load only when a size must
        # be counted: a cached build records its image through here and must not pay for them.
        from strata.layer.compression import open_decompressed

        with images.content.open(layer.digest) as f:
            stream = open_decompressed(f, source=f"layer {layer.digest}")
            try:
                size = copy_stream(stream, lambda _: None)
            finally:
                stream.close()
    return ImageLayer(layer.digest, layer.media_type, layer.diff_id, size, layer.content_size)


def record_images(
    images: ImageStore,
    new: Sequence[NewImage],
    *,
    also: Callable[[sqlite3.Connection], None] | None = None,
) -> list[Image]:
    """Record images whose blobs are durable, in ONE transaction (with ``also``'s rows).

    An image already recorded is kept as it is (its names move to it: a name that pointed at
    another image leaves that one dangling, ``<none>``, as Docker does); a layer's known size
    is kept. The images are returned as recorded, without reading them back (a concurrent
    prune may remove them at once; their blobs stay leased).
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
        conn.executemany(
            "INSERT OR REPLACE INTO repo_digests (repository, manifest_digest, digest)"
            " VALUES (?, ?, ?)",
            [_repo_digest_row(ref, n.manifest_digest) for n in entries for ref in n.repo_digests],
        )
        if also is not None:
            also(conn)
    return [n.image(added) for n in entries]


def _repo_digest_row(ref: Reference, manifest_digest: Digest) -> tuple[str, str, str | None]:
    # The digest the name was pulled by (an index's) when it is not the manifest's.
    named = str(ref.digest) if ref.digest not in (None, manifest_digest) else None
    return (ref.name, str(manifest_digest), named)
