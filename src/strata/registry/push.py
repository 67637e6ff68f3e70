"""``push``: an image from the store to a registry, blobs first and the manifest last.

Each layer goes as a compressed blob: one pulled or loaded compressed is sent as it is (so its
digest, and the manifest's, survive a round trip); one stored uncompressed is compressed once
(`strata.registry.compress`) and the result kept for every later push. A blob the registry
already has is not sent (HEAD); one known to be in another repository of the same registry is
mounted from there; the rest are uploaded, several at once. The manifest goes last, so the
registry never names an image whose parts it lacks.

Without ``--format`` an image whose stored manifest needs no change (its layers already
compressed) is pushed with that very manifest, keeping its digest; otherwise strata writes an
OCI manifest (or Docker schema 2 with ``format="docker"``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal

from strata.digest import Digest
from strata.errors import DigestMismatch, InvalidArgument, StrataError
from strata.image.hold import HeldImage, hold_image
from strata.image.store import ImageLayer, ImageStore
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER_FOREIGN,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    MAX_CONFIG_SIZE,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    is_nondistributable,
    layer_compression,
)
from strata.oci.reference import Reference
from strata.registry.compress import (
    CompressedBlob,
    LayerCompression,
    layer_media_type,
    record_compressed,
    recorded_compressed,
)
from strata.registry.progress import (
    LAYER_EXISTS,
    PREPARING,
    PUSHED,
    PUSHING,
    WAITING,
    NullEvents,
    TransferEvents,
    mounted_from,
)
from strata.registry.pull import DEFAULT_JOBS, client_names, reraise_named
from strata.registry.sources import known_repositories, record_sources
from strata.registry.upload import compress_and_upload
from strata.store.db import Database
from strata.store.leases import Lease

if TYPE_CHECKING:
    from strata.registry.client import RegistryClient

__all__ = ["ManifestFormat", "PushResult", "push"]

ManifestFormat = Literal["oci", "docker"]
_MANIFEST_TYPES: Final[dict[str, str]] = {"oci": OCI_MANIFEST, "docker": DOCKER_MANIFEST}
_CONFIG_TYPES: Final[dict[str, str]] = {"oci": OCI_CONFIG, "docker": DOCKER_CONFIG}


@dataclass(frozen=True, slots=True)
class PushResult:
    """The pushed manifest: its digest and size, under ``reference`` (with its tag)."""

    reference: Reference
    digest: Digest
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class _Blob:
    """One blob to send: what the manifest will say, and how to get its bytes."""

    name: str  # the layer as shown (short diff ID), or "" for the config
    descriptor: Descriptor
    source: Digest | None  # the uncompressed layer to compress first, if not made yet
    compression: LayerCompression | None
    candidates: tuple[str, ...]  # other repositories of this registry that have it


def _as_is_type(media_type: str, manifest_format: str) -> str:
    """The media type of an already compressed layer in a manifest of ``manifest_format``."""
    compression = layer_compression(media_type)
    foreign = is_nondistributable(media_type)
    if manifest_format == "docker":
        if compression != "gzip":
            raise InvalidArgument(
                f"layer media type {media_type}: Docker schema 2 has no {compression} layers"
                " (use --format oci)"
            )
        return DOCKER_LAYER_FOREIGN if foreign else DOCKER_LAYER_GZIP
    if foreign:
        return OCI_LAYER_NONDIST_GZIP if compression == "gzip" else OCI_LAYER_NONDIST_ZSTD
    return OCI_LAYER_GZIP if compression == "gzip" else OCI_LAYER_ZSTD


def push(
    images: ImageStore,
    client: RegistryClient,
    ref: Reference,
    *,
    source: str | None = None,
    manifest_format: ManifestFormat | None = None,
    compression: LayerCompression = "gzip",
    jobs: int = DEFAULT_JOBS,
    events: TransferEvents | None = None,
) -> PushResult:
    """Push the local image ``source`` (default: ``ref`` itself) to ``ref`` (module docstring).

    ``compression`` applies to layers stored uncompressed; ``jobs`` blobs move at once.
    Every error is one line starting ``push REF:``.
    """
    if jobs < 1:
        raise InvalidArgument(f"invalid --jobs {jobs}: must be at least 1")
    if ref.digest is not None:
        raise InvalidArgument(f"push {ref.familiar}: cannot push to a digest reference")
    ref = ref.with_default_tag()
    try:
        return _Push(images, client, ref, source, manifest_format, compression, jobs, events).run()
    except StrataError as err:
        raise reraise_named(err, f"push {ref.familiar}", client_names(client, ref)) from None


class _Push:
    def __init__(
        self,
        images: ImageStore,
        client: RegistryClient,
        ref: Reference,
        source: str | None,
        manifest_format: ManifestFormat | None,
        compression: LayerCompression,
        jobs: int,
        events: TransferEvents | None,
    ) -> None:
        self.images = images
        self.content = images.content
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.source = source if source is not None else str(ref)
        self.format = manifest_format
        self.compression = compression
        self.jobs = jobs
        self.events: TransferEvents = events or NullEvents()
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._made: list[tuple[Digest, CompressedBlob]] = []  # by worker threads
        self._lease: Lease | None = None  # held by `run` for the whole push

    def run(self) -> PushResult:
        # Held for the whole push: an rmi and a prune meanwhile must not collect what is being
        # sent (`strata.image.hold`), nor a compressed form an earlier push made of a layer.
        with self.images.root.lease() as lease:
            self._lease = lease
            return self._run(hold_image(self.images, lease, self.source))

    def _run(self, held: HeldImage) -> PushResult:
        image, stored = held.image, held.manifest
        layers = self.images.layers(image)
        config = self.content.read_bytes(image.config_digest, limit=MAX_CONFIG_SIZE)
        compressed = [layer_compression(layer.media_type) != "none" for layer in layers]
        fmt: ManifestFormat
        if self.format is None:
            keep = all(compressed)
            fmt = "docker" if keep and image.media_type == DOCKER_MANIFEST else "oci"
        else:
            fmt = self.format
            keep = all(compressed) and _MANIFEST_TYPES[fmt] == image.media_type
        layer_type = layer_media_type(self.compression, fmt) if not all(compressed) else ""
        blobs: list[_Blob] = []
        for layer, desc, done in zip(layers, stored.layers, compressed, strict=True):
            blobs.append(self._plan(layer, desc, done, fmt, layer_type))
        config_desc = Descriptor(_CONFIG_TYPES[fmt], image.config_digest, len(config))
        if keep:
            config_desc = stored.config
        blobs.append(_Blob("", config_desc, None, None, self._candidates(config_desc.digest)))
        sent = self._send(blobs, [layer.diff_id for layer in layers])
        if keep:
            data = self.content.read_bytes(image.manifest_digest, limit=4 << 20)
            media_type = image.media_type
        else:
            media_type = _MANIFEST_TYPES[fmt]
            manifest = Manifest(
                schema_version=2,
                media_type=media_type,
                config=sent[-1],
                layers=tuple(sent[:-1]),
            )
            data = manifest.to_json()
        digest = Digest.of(data)
        tag = self.ref.tag or "latest"
        answered = self.client.put_manifest(self.repo, tag, data, media_type)
        if answered != digest:
            raise DigestMismatch(f"manifest {digest}: the registry stored it as {answered}")
        record_sources(self.images.db, [d.digest for d in sent], self.ref.domain, self.repo)
        return PushResult(self.ref, digest, len(data), media_type)

    def _candidates(self, digest: Digest) -> tuple[str, ...]:
        return tuple(known_repositories(self.images.db, digest, self.ref.domain, exclude=self.repo))

    def _plan(
        self, layer: ImageLayer, stored: Descriptor, compressed: bool, fmt: str, layer_type: str
    ) -> _Blob:
        name = layer.diff_id.short
        if compressed:
            desc = replace(stored, media_type=_as_is_type(stored.media_type, fmt))
            return _Blob(name, desc, None, None, self._candidates(desc.digest))
        made = recorded_compressed(self.images.db, layer.diff_id, self.compression)
        if made is None:
            # Not made yet: the worker compresses, then asks the registry.
            desc = Descriptor(layer_type, layer.blob, 0)
            return _Blob(name, desc, layer.blob, self.compression, ())
        # Leased before `_send_one` looks for it: present then, it stays for the upload.
        assert self._lease is not None
        self._lease.add("blob", str(made.digest))
        desc = Descriptor(layer_type, made.digest, made.size)
        return _Blob(name, desc, layer.blob, self.compression, self._candidates(made.digest))

    def _send(self, blobs: list[_Blob], diff_ids: list[Digest]) -> list[Descriptor]:
        """Every blob in the registry (config last in the result); records what was made."""
        for blob in blobs:
            if blob.name:
                self.events.status(blob.name, PREPARING)
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="strata-push")
        try:
            futures: dict[int, Future[Descriptor]] = {}
            # Largest first: its compression then its upload are the longest path.
            order = sorted(range(len(blobs)), key=lambda i: -self._weight(blobs[i]))
            for n, i in enumerate(order):
                blob = blobs[i]
                if blob.name and n >= self.jobs:
                    self.events.status(blob.name, WAITING)
                diff_id = diff_ids[i] if i < len(diff_ids) else None
                futures[i] = pool.submit(self._send_one, blob, diff_id)
            sent = [futures[i].result() for i in range(len(blobs))]
        except BaseException:
            self.cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            # Even when the push failed: what was compressed is kept for the next attempt. The
            # push's lease holds each blob (`_hold`) until the record keeps it alive.
            for diff_id, made in self._made:
                record_compressed(self.images.db, diff_id, made)
        return sent

    def _weight(self, blob: _Blob) -> int:
        if blob.descriptor.size:
            return blob.descriptor.size
        return self.content.info(blob.source).size if blob.source is not None else 0

    def _send_one(self, blob: _Blob, diff_id: Digest | None) -> Descriptor:
        """HEAD, mount, or compress and upload one blob (on a worker thread)."""
        desc = blob.descriptor
        if blob.source is not None and desc.size == 0:
            # Never compressed: no digest to ask about, so compress straight into the upload.
            return self._compress_and_send(blob, desc, diff_id)
        if is_nondistributable(desc.media_type):
            return desc
        if self.client.blob_size(self.repo, desc.digest) is not None:
            self._final(blob, LAYER_EXISTS)
            return desc
        for other in blob.candidates:
            if self.client.mount_blob(self.repo, desc.digest, other):
                self._final(blob, mounted_from(other))
                return desc
        if blob.source is not None and not self.content.exists(desc.digest):
            # Recorded by an earlier push but collected since: made again, the same bytes.
            return self._compress_and_send(blob, desc, diff_id)
        self._upload(blob, desc)
        return desc

    def _compress_and_send(
        self, blob: _Blob, desc: Descriptor, diff_id: Digest | None
    ) -> Descriptor:
        assert blob.source is not None and blob.compression is not None
        progress: Callable[[int], None] | None = None
        if blob.name:
            self.events.start(blob.name, PUSHING, self.content.info(blob.source).size)
            name = blob.name
            progress = lambda n: self.events.advance(name, n)  # noqa: E731
        made, sent = compress_and_upload(
            self.client,
            self.content,
            self.repo,
            blob.source,
            blob.compression,
            progress=progress,
            cancelled=self.cancel.is_set,
            hold=self._hold,
        )
        if diff_id is not None:
            with self._lock:
                self._made.append((diff_id, made))
        desc = replace(desc, digest=made.digest, size=made.size)
        if sent:
            self._final(blob, PUSHED)
        else:
            self._upload(blob, desc)  # the stream broke off: the kept blob, with retries
        return desc

    def _hold(self, digest: Digest) -> None:
        """Lease a compressed blob before it is committed: it may be sent again from the store
        (a broken stream), and until the push records it nothing else keeps it alive.

        Runs on the compressing thread, and a connection is one thread's: the push's lease is
        extended through a connection of its own.
        """
        assert self._lease is not None
        db = Database(self.images.root.path / "strata.db")
        try:
            Lease(db, self._lease.id, self._lease.expires).add("blob", str(digest))
        finally:
            db.close()

    def _upload(self, blob: _Blob, desc: Descriptor) -> None:
        progress: Callable[[int], None] | None = None
        if blob.name:
            self.events.start(blob.name, PUSHING, desc.size)
            name = blob.name
            progress = lambda n: self.events.advance(name, n)  # noqa: E731
        with self.content.open(desc.digest) as src:
            self.client.upload_blob(self.repo, desc.digest, desc.size, src, progress=progress)
        self._final(blob, PUSHED)

    def _final(self, blob: _Blob, text: str) -> None:
        if blob.name:
            self.events.status(blob.name, text, final=True)
