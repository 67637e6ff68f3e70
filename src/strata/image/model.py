"""The image model: lazy `Image` and `Layer` protocols, as go-containerregistry's ``v1.Image``.

An image is its manifest, its config and its layers; a layer is a blob (compressed or not, as its
media type says) with the digest of its uncompressed tar (the diff ID). Nothing is read until it
is asked for, so an image can stand for one in the store, in a registry, in an archive or one
being made, and every way an image enters the store (`ImageStore.write`) takes one of these.

Implementations here: `BlobLayer` (a blob in a content store), `ContentImage` (an image whose
manifest is in a content store: a stored or a loaded one), `MemoryImage` (config and layers in
memory: what `strata.image.mutate` returns) and `SnapshotLayer` (the changes of a snapshot, made
into a layer when first needed). The remote image lives in `strata.registry.remote`.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from strata.content import ContentStore
from strata.digest import Digest
from strata.errors import FormatError, StrataError
from strata.layer.stats import LayerStats
from strata.oci.config import ImageConfig, parse_config
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import (
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
)

if TYPE_CHECKING:
    from strata.image.archive.formats import LoadedImage

_COPY = 1 << 20


@runtime_checkable
class Layer(Protocol):
    """One layer of an image: its blob and what its uncompressed tar is."""

    @property
    def digest(self) -> Digest:
        """The blob's digest (of the compressed bytes, if compressed)."""
        ...

    @property
    def diff_id(self) -> Digest:
        """The sha256 of the uncompressed tar."""
        ...

    @property
    def media_type(self) -> str: ...

    @property
    def size(self) -> int:
        """The blob's size in bytes (the compressed size, if compressed)."""
        ...

    @property
    def uncompressed_size(self) -> int | None:
        """The uncompressed tar's size, if known without reading it."""
        ...

    @property
    def content_size(self) -> int | None:
        """Bytes of regular files and symlink targets (Docker's layer size), if known."""
        ...

    def compressed(self) -> AbstractContextManager[BinaryIO]:
        """The blob's bytes, as its media type has them."""
        ...

    def uncompressed(self) -> AbstractContextManager[BinaryIO]:
        """The uncompressed tar."""
        ...


@runtime_checkable
class Image(Protocol):
    """An image: a manifest naming a config and layers, each read when first asked for."""

    @property
    def media_type(self) -> str:
        """The manifest's media type."""
        ...

    def digest(self) -> Digest:
        """The manifest's digest."""
        ...

    def raw_manifest(self) -> bytes: ...

    def manifest(self) -> Manifest: ...

    def config_digest(self) -> Digest:
        """The config's digest: the image ID, as Docker has it."""
        ...

    def raw_config(self) -> bytes: ...

    def config(self) -> ImageConfig: ...

    def layers(self) -> Sequence[Layer]:
        """The layers, bottom first."""
        ...


def encode_manifest(
    raw_config: bytes,
    layers: Sequence[tuple[str, Digest, int]],
    *,
    config_digest: Digest | None = None,
) -> tuple[Manifest, bytes]:
    """The OCI manifest strata writes for a config and ``layers`` (media type, blob digest,
    blob size each), and its bytes: what commit, import and every build step record.
    ``config_digest``, when the caller has it, saves hashing the config again."""
    if config_digest is None:
        config_digest = Digest.of(raw_config)
    manifest = Manifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config_digest, len(raw_config)),
        layers=tuple(Descriptor(media_type, blob, size) for media_type, blob, size in layers),
    )
    return manifest, manifest.to_json()


def parse_image_manifest(data: bytes, media_type: str, digest: Digest) -> Manifest:
    """An image manifest (not an index) from its bytes."""
    parsed = parse_manifest(data, media_type, source=f"manifest {digest}", allow_empty_layers=True)
    if isinstance(parsed, Index):
        raise StrataError(f"image {digest}: an index, not an image manifest")
    return parsed


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What is known of a layer besides its descriptor: diff ID and sizes."""

    diff_id: Digest
    uncompressed_size: int | None = None
    content_size: int | None = None


class BlobLayer:
    """A layer whose blob is in a content store (a stored, loaded or pulled image's)."""

    def __init__(
        self,
        content: ContentStore,
        descriptor: Descriptor,
        facts: LayerInfo,
    ) -> None:
        self._content = content
        self._descriptor = descriptor
        self._facts = facts

    @property
    def digest(self) -> Digest:
        return self._descriptor.digest

    @property
    def diff_id(self) -> Digest:
        return self._facts.diff_id

    @property
    def media_type(self) -> str:
        return self._descriptor.media_type

    @property
    def size(self) -> int:
        return self._descriptor.size

    @property
    def uncompressed_size(self) -> int | None:
        return self._facts.uncompressed_size

    @property
    def content_size(self) -> int | None:
        return self._facts.content_size

    @contextlib.contextmanager
    def compressed(self) -> Iterator[BinaryIO]:
        with self._content.open(self.digest) as f:
            yield f

    @contextlib.contextmanager
    def uncompressed(self) -> Iterator[BinaryIO]:
        # The compression libraries load only when a layer is read: `image ls` and a warm
        # `run` import this module (through the store) and must not pay for them.
        from strata.layer.compression import open_decompressed

        with self._content.open(self.digest) as f:
            stream = open_decompressed(f, source=f"layer {self.digest}")
            try:
                yield stream
            finally:
                stream.close()


class ContentImage:
    """An image whose manifest is in a content store (a stored or a loaded one).

    ``facts`` gives what is known of its layers by blob digest (the store's rows, an archive's
    reading); a layer it does not know takes its diff ID from the config.
    """

    def __init__(
        self,
        content: ContentStore,
        digest: Digest,
        media_type: str,
        *,
        config_digest: Digest | None = None,
        facts: Callable[[Manifest], Mapping[Digest, LayerInfo]] | None = None,
        config: ImageConfig | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self._content = content
        self._digest = digest
        self._media_type = media_type
        self._config_digest = config_digest
        self._facts = facts
        self._lock = threading.Lock()
        self._raw_manifest: bytes | None = None
        self._manifest: Manifest | None = manifest
        self._config: ImageConfig | None = config
        self._layers: tuple[Layer, ...] | None = None

    @property
    def media_type(self) -> str:
        return self._media_type

    def digest(self) -> Digest:
        return self._digest

    def raw_manifest(self) -> bytes:
        if self._raw_manifest is None:
            self._raw_manifest = self._content.read_bytes(self._digest, limit=MAX_MANIFEST_SIZE)
        return self._raw_manifest

    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = parse_image_manifest(
                self.raw_manifest(), self._media_type, self._digest
            )
        return self._manifest

    def config_digest(self) -> Digest:
        if self._config_digest is None:
            self._config_digest = self.manifest().config.digest
        return self._config_digest

    def raw_config(self) -> bytes:
        return self._content.read_bytes(self.config_digest(), limit=MAX_CONFIG_SIZE)

    def config(self) -> ImageConfig:
        with self._lock:
            if self._config is None:
                digest = self.config_digest()
                self._config = parse_config(self.raw_config(), source=f"config {digest}")
            return self._config

    def layers(self) -> Sequence[Layer]:
        if self._layers is None:
            self._layers = self._read_layers()
        return self._layers

    def _read_layers(self) -> tuple[Layer, ...]:
        manifest = self.manifest()
        known = self._facts(manifest) if self._facts is not None else {}
        diff_ids: Sequence[Digest] = ()
        if len(known) < len(manifest.layers):
            diff_ids = self.config().rootfs.diff_ids
            if len(diff_ids) != len(manifest.layers):
                raise FormatError(
                    f"manifest {self._digest}: {len(manifest.layers)} layers but"
                    f" {len(diff_ids)} diff IDs in its config"
                )
        out: list[Layer] = []
        for i, desc in enumerate(manifest.layers):
            facts = known.get(desc.digest) or LayerInfo(diff_ids[i])
            out.append(BlobLayer(self._content, desc, facts))
        return tuple(out)


class MemoryImage:
    """An image held in memory: a config and layers, its manifest made from them.

    What `strata.image.mutate` returns. The manifest is strata's OCI manifest for the config and
    layers unless ``raw_manifest`` is given (an image taken as it is, with its media type).
    """

    def __init__(
        self,
        config: ImageConfig,
        layers: Sequence[Layer],
        *,
        raw_config: bytes | None = None,
        raw_manifest: bytes | None = None,
        media_type: str = OCI_MANIFEST,
        config_digest: Digest | None = None,
        digest: Digest | None = None,
    ) -> None:
        # Digests given (a build step has them from encoding) or counted once: a build of
        # many metadata steps writes as many images, each config holding all the ENV before it.
        self._config = config
        self._layers = tuple(layers)
        self._raw_config = raw_config
        self._raw_manifest = raw_manifest
        self._media_type = media_type
        self._manifest: Manifest | None = None
        self._config_digest = config_digest
        self._digest = digest

    @property
    def media_type(self) -> str:
        return self._media_type

    def config(self) -> ImageConfig:
        return self._config

    def raw_config(self) -> bytes:
        if self._raw_config is None:
            self._raw_config = self._config.to_json()
        return self._raw_config

    def config_digest(self) -> Digest:
        if self._config_digest is None:
            self._config_digest = Digest.of(self.raw_config())
        return self._config_digest

    def raw_manifest(self) -> bytes:
        if self._raw_manifest is None:
            self._manifest, self._raw_manifest = encode_manifest(
                self.raw_config(),
                [(la.media_type, la.digest, la.size) for la in self._layers],
                config_digest=self.config_digest(),
            )
        return self._raw_manifest

    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = parse_image_manifest(
                self.raw_manifest(), self._media_type, self.digest()
            )
        return self._manifest

    def digest(self) -> Digest:
        if self._digest is None:
            self._digest = Digest.of(self.raw_manifest())
        return self._digest

    def layers(self) -> Sequence[Layer]:
        return self._layers


def archive_image(content: ContentStore, loaded: LoadedImage) -> ContentImage:
    """An image read from an archive (`strata.image.archive.read_archive`, which has put its
    blobs in ``content``), with what the reading learnt of its layers."""
    facts = {la.blob: LayerInfo(la.diff_id, la.size) for la in loaded.layers}
    return ContentImage(
        content,
        loaded.manifest_digest,
        loaded.manifest.media_type or OCI_MANIFEST,
        config_digest=loaded.config_digest,
        config=loaded.config,
        facts=lambda _: facts,
    )


TarWriter = Callable[[BinaryIO], LayerStats]


class SnapshotLayer:
    """The changes of a snapshot as a layer, made when first asked for (or by `make`).

    ``write_tar`` writes the canonical tar of the changes to a stream and returns its stats (the
    differ, `strata.diff.compare.compare_snapshot`, bound to a snapshot). strata keeps its own
    layers uncompressed (a push compresses them), so the blob is the tar: digest == diff ID.

    The tar is written once and kept while the layer lives: to a file in ``scratch`` (the
    system's temporary directory if None), or, given ``content``, straight into that store as
    the layer's blob, so that `ImageStore.write` finds it there and copies nothing (a commit's
    layer is written and hashed in one pass). Such a blob is passed to ``hold`` (a lease's)
    before its write commits it, as the gc protocol asks; ``ingest`` names the write while it
    runs.
    """

    def __init__(
        self,
        write_tar: TarWriter,
        scratch: Path | None = None,
        *,
        content: ContentStore | None = None,
        hold: Callable[[Digest], object] | None = None,
        ingest: str = "layer",
    ) -> None:
        self._write_tar = write_tar
        self._scratch = scratch
        self._content = content
        self._hold = hold
        self._ingest = ingest
        self._lock = threading.Lock()
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._stats: LayerStats | None = None

    def make(self) -> LayerStats:
        """Write the tar now, if not yet written; its stats (digest, sizes).

        Errors of the write are the differ's and the store's (`NoSpace` from a full store,
        after the store has removed what it wrote); a failed write is tried again when next
        asked for."""
        with self._lock:
            if self._stats is None:
                stored = self._content is not None
                self._stats = self._write_to_store() if stored else self._write_to_file()
            return self._stats

    def _write_to_store(self) -> LayerStats:
        assert self._content is not None
        with self._content.writer(f"{self._ingest}-{uuid.uuid4().hex}") as writer:
            try:
                stats = self._write_tar(writer)  # type: ignore[arg-type]
                if self._hold is not None:
                    self._hold(stats.diff_id)
                writer.commit(expected=stats.diff_id, size=stats.size)
            except BaseException:
                # No one can resume a tar written under a name of its own: nothing is kept.
                with contextlib.suppress(StrataError, OSError):
                    writer.abort()
                raise
        return stats

    def _write_to_file(self) -> LayerStats:
        # Kept open (and so on disk) for the layer's life, not one block: `close`.
        f = tempfile.NamedTemporaryFile(dir=self._scratch, prefix="layer-")  # noqa: SIM115
        try:
            stats = self._write_tar(f)  # type: ignore[arg-type]
            f.flush()
        except BaseException:
            f.close()
            raise
        self._file = f
        return stats

    def close(self) -> None:
        """Remove the tar this layer wrote to its scratch file (if any); a blob written to a
        store stays, for the store's gc to judge."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self._stats = None

    @property
    def digest(self) -> Digest:
        return self.make().diff_id

    @property
    def diff_id(self) -> Digest:
        return self.make().diff_id

    @property
    def media_type(self) -> str:
        return OCI_LAYER

    @property
    def size(self) -> int:
        return self.make().size

    @property
    def uncompressed_size(self) -> int | None:
        return self.make().size

    @property
    def content_size(self) -> int | None:
        return self.make().content

    @contextlib.contextmanager
    def compressed(self) -> Iterator[BinaryIO]:
        stats = self.make()
        if self._content is not None:
            with self._content.open(stats.diff_id) as f:
                yield f
            return
        assert self._file is not None
        with open(self._file.name, "rb") as f:
            yield f

    def uncompressed(self) -> AbstractContextManager[BinaryIO]:
        return self.compressed()


def copy_stream(src: BinaryIO, write: Callable[[bytes], object]) -> int:
    """Copy ``src`` to ``write`` in large chunks; the bytes copied."""
    total = 0
    while chunk := src.read(_COPY):
        write(chunk)
        total += len(chunk)
    return total
