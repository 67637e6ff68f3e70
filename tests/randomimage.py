"""In-memory images of random files, for tests: go-containerregistry's ``pkg/v1/random``, ours.

``random_image(layers=3, seed=7)`` makes an image whose every byte is a function of its
arguments: each layer a canonical tar (strata's own `TarWriter`) of a few random files, gzipped
with the mtime at 0, and a config and manifest whose canonical bytes and digests follow. Nothing
touches disk. The shapes follow the lazy image model (`strata.image.model`): a layer has a
digest, diff ID, media type and size and opens as a compressed or uncompressed stream; an image
has its manifest, config and layers, their raw bytes and digests, and ``id`` (the config digest).

A `RandomImage` is a `strata.image.model.Image`: `record_image` puts one into a real store through
`ImageStore.write`, for tests that need the image recorded, as the build cache's foreign key does.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from strata.digest import Digest
from strata.errors import NotFound
from strata.image.store import Image, ImageStore
from strata.layer.entry import TarEntry
from strata.layer.tarwriter import TarWriter
from strata.oci.config import History, ImageConfig, RootFS
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from strata.oci.reference import Reference

# Every timestamp of a random image: fixed, so its digests depend on the seed alone.
CREATED = "2024-01-01T00:00:00Z"
REGTYPE = b"0"


@dataclass(frozen=True, slots=True)
class RandomLayer:
    """One layer: its tar, its gzip blob, and the files it holds (path → content)."""

    tar: bytes
    blob: bytes
    files: Mapping[str, bytes]
    media_type: str = OCI_LAYER_GZIP

    @property
    def digest(self) -> Digest:
        """The digest of the compressed blob (what a manifest names)."""
        return Digest.of(self.blob)

    @property
    def diff_id(self) -> Digest:
        """The digest of the uncompressed tar (what the config's rootfs names)."""
        return Digest.of(self.tar)

    @property
    def size(self) -> int:
        """The size of the compressed blob."""
        return len(self.blob)

    @property
    def uncompressed_size(self) -> int:
        """The size of the tar."""
        return len(self.tar)

    @property
    def content_size(self) -> int:
        """The bytes of the files the layer holds (what Docker's SIZE counts)."""
        return sum(len(data) for data in self.files.values())

    def compressed(self) -> BinaryIO:
        """The blob as stored and sent."""
        return io.BytesIO(self.blob)

    def uncompressed(self) -> BinaryIO:
        """The tar."""
        return io.BytesIO(self.tar)

    def descriptor(self) -> Descriptor:
        """The manifest's entry for this layer."""
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True, slots=True)
class RandomImage:
    """An image held in memory: layers, config and manifest with their canonical bytes."""

    _layers: tuple[RandomLayer, ...]
    _config: ImageConfig
    _manifest: Manifest
    _raw_config: bytes
    _raw_manifest: bytes

    def digest(self) -> Digest:
        """The manifest digest."""
        return Digest.of(self._raw_manifest)

    def config_digest(self) -> Digest:
        return Digest.of(self._raw_config)

    def raw_config(self) -> bytes:
        return self._raw_config

    def raw_manifest(self) -> bytes:
        return self._raw_manifest

    @property
    def id(self) -> Digest:
        """The image ID, as Docker shows it: the config digest."""
        return self.config_digest()

    @property
    def media_type(self) -> str:
        """The manifest's media type."""
        return self._manifest.effective_media_type

    @property
    def size(self) -> int:
        """The manifest's size in bytes."""
        return len(self._raw_manifest)

    def manifest(self) -> Manifest:
        return self._manifest

    def config(self) -> ImageConfig:
        return self._config

    def layers(self) -> tuple[RandomLayer, ...]:
        return self._layers

    def layer_by_digest(self, digest: Digest) -> RandomLayer:
        """The layer whose blob is ``digest``; `NotFound` if none."""
        for layer in self._layers:
            if layer.digest == digest:
                return layer
        raise NotFound(f"random image {self.digest().short}: no layer {digest}")

    def layer_by_diff_id(self, diff_id: Digest) -> RandomLayer:
        """The layer whose tar is ``diff_id``; `NotFound` if none."""
        for layer in self._layers:
            if layer.diff_id == diff_id:
                return layer
        raise NotFound(f"random image {self.digest().short}: no layer with diff ID {diff_id}")


def random_layer(
    rng: random.Random, *, files: int = 3, size: int = 64, media_type: str = OCI_LAYER_GZIP
) -> RandomLayer:
    """A layer of ``files`` regular files of ``size`` random bytes, at random top-level names."""
    contents = {f"{rng.getrandbits(64):016x}": rng.randbytes(size) for _ in range(files)}
    out = io.BytesIO()
    with TarWriter(out) as writer:
        for name in sorted(contents):
            data = contents[name]
            entry = TarEntry(name.encode(), REGTYPE, 0o644, 0, 0, 0, size=len(data))
            writer.add(entry, data)
        writer.finish()
    tar = out.getvalue()
    return RandomLayer(tar, gzip.compress(tar, mtime=0), contents, media_type)


def random_image(
    layers: int = 3,
    *,
    seed: int = 0,
    files: int = 3,
    size: int = 64,
    docker: bool = False,
) -> RandomImage:
    """An image of ``layers`` random layers (see `random_layer`), the same for the same arguments.

    OCI media types, or Docker schema 2 ones with ``docker``. The config has one history entry
    per layer and a fixed creation time.
    """
    rng = random.Random(seed)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    made = tuple(
        random_layer(rng, files=files, size=size, media_type=layer_type) for _ in range(layers)
    )
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        rootfs=RootFS(diff_ids=tuple(layer.diff_id for layer in made)),
        history=tuple(
            History(created=CREATED, created_by=f"random layer {i} (seed {seed})")
            for i in range(len(made))
        ),
        created=CREATED,
    )
    raw_config = config.to_json()
    manifest = Manifest(
        schema_version=2,
        media_type=DOCKER_MANIFEST if docker else OCI_MANIFEST,
        config=Descriptor(
            DOCKER_CONFIG if docker else OCI_CONFIG, Digest.of(raw_config), len(raw_config)
        ),
        layers=tuple(layer.descriptor() for layer in made),
    )
    return RandomImage(made, config, manifest, raw_config, manifest.to_json())


def record_image(
    images: ImageStore,
    image: RandomImage,
    *,
    names: Iterable[Reference] = (),
    intermediate: bool = False,
    parent: Digest | None = None,
) -> Image:
    """Put ``image`` into ``images`` the one way images enter a store: `ImageStore.write`."""
    return images.write(image, names=names, intermediate=intermediate, parent=parent)
