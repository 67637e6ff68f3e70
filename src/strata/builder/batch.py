"""A run of step images written together: configs and manifests in one durable write, their rows
and cache records in one transaction.

Docker's classic builder makes an image per step, metadata steps (ENV, LABEL, CMD...) included,
and strata keeps that (``image ls -a``, ``history``, the cache), but such a step need not pay for
its own fsyncs and commits: its image is encoded in memory and queued here. The queue is written
when a step needs the store (a RUN or COPY, an unpack), at the end of the build, or when it
reaches `MAX_STEPS` or `MAX_BYTES` of encoded JSON. Crash safety is the store's usual order: the
blobs are leased (the build's lease) before they are written, and their rows and cache records
are committed only after the blobs are durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, Final

from strata.builder.cache import BuildCache, StepKey
from strata.builder.configjson import ConfigEncoder
from strata.builder.hold import BuildHold
from strata.digest import Digest
from strata.image.create import ImageBlobs, NewImage, blob_layer
from strata.image.model import MemoryImage
from strata.image.record import WriteRequest
from strata.image.store import ImageLayer, ImageStore
from strata.oci.config import ImageConfig

MAX_STEPS: Final = 256
MAX_BYTES: Final = 64 << 20

_Record = tuple[StepKey, str, Mapping[str, Any] | None]


class StepBatch:
    """The step images and cache records of one build not yet written."""

    def __init__(self, images: ImageStore, hold: BuildHold, cache: BuildCache) -> None:
        self.images = images
        self.hold = hold
        self.cache = cache
        self.encoder = ConfigEncoder()
        self._images: list[WriteRequest] = []
        self._records: list[_Record] = []
        self._used: list[str] = []  # cache records hit, to mark used
        self._bytes = 0
        self._blob_sizes: dict[Digest, int] = {}

    def encode_config(self, config: ImageConfig) -> bytes:
        """``config.to_json()``, byte for byte, reusing what earlier steps encoded."""
        return self.encoder.encode(config)

    def blob_size(self, layer: ImageLayer) -> int:
        """The size of ``layer``'s blob (for its descriptor), looked up once per build."""
        size = self._blob_sizes.get(layer.blob)
        if size is None:
            size = self._blob_sizes[layer.blob] = self.images.content.info(layer.blob).size
        return size

    def add(self, new: NewImage, blobs: ImageBlobs, config: ImageConfig) -> None:
        """Queue a step's image, ``config`` encoded as ``blobs`` (written by the next `flush`)."""
        layers = [blob_layer(self.images, la, self.blob_size(la)) for la in new.layers]
        image = MemoryImage(
            config,
            layers,
            raw_config=blobs.config,
            raw_manifest=blobs.manifest,
            config_digest=blobs.config_digest,
            digest=blobs.manifest_digest,
        )
        self._images.append(
            WriteRequest(image, new.names, intermediate=new.intermediate, parent=new.parent)
        )
        self._bytes += len(blobs.config) + len(blobs.manifest)

    def record(self, key: StepKey, image: str, sources: Mapping[str, Any] | None) -> None:
        """Queue a step's cache record; write the queue if it has reached its bound."""
        self._records.append((key, image, sources))
        if len(self._images) >= MAX_STEPS or self._bytes >= MAX_BYTES:
            self.flush()

    def used(self, key: StepKey) -> None:
        """Queue marking the cache record of ``key`` used (a hit): written with the rest."""
        self._used.append(key.digest)

    def flush(self) -> None:
        """Write what is queued: lease, blobs (one fsync pass), then one transaction."""
        if not self._images and not self._records and not self._used:
            return
        queued, records, used = self._images, self._records, self._used

        def also(conn: sqlite3.Connection) -> None:
            BuildCache.write(conn, records)
            BuildCache.mark_used(conn, used)

        self.images.write_many(queued, hold=lambda keys: self.hold.add("blob", keys), also=also)
        self._images, self._records, self._used, self._bytes = [], [], [], 0
