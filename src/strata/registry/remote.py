"""A remote image: the image model (`strata.image.model`) over a registry, read lazily.

Nothing is fetched until asked: the manifest (through an index, for a platform) when first
needed, the config then, each layer's blob only when its stream is opened, checked against its
digest and size as it is read. `ImageStore.write(RemoteImage(...))` stores an image straight from
a registry (without `pull`'s progress, parallel downloads or extraction while downloading).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from strata.digest import Digest
from strata.errors import DigestMismatch, FormatError, SizeMismatch, TooLarge
from strata.image.model import Layer, parse_image_manifest
from strata.layer.compression import open_decompressed
from strata.oci.config import ImageConfig, parse_config
from strata.oci.descriptor import Descriptor, Platform
from strata.oci.manifest import Manifest, parse_manifest
from strata.oci.mediatypes import DOCKER_MANIFEST, MAX_CONFIG_SIZE, OCI_MANIFEST
from strata.registry.client import RegistryClient
from strata.registry.platforms import select_manifest
from strata.registry.pull import MANIFEST_ACCEPT

_IMAGE_ACCEPT = (OCI_MANIFEST, DOCKER_MANIFEST)


class _Checked(io.RawIOBase):
    """A blob's chunks as a stream; at its end the bytes must have ``desc``'s digest and size."""

    def __init__(self, chunks: Iterator[bytes], desc: Descriptor, what: str) -> None:
        self._chunks = chunks
        self._desc = desc
        self._what = what
        self._hash = hashlib.new(desc.digest.algorithm)
        self._buffer = b""
        self._count = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._finish()
            else:
                self._count += len(chunk)
                if self._count > self._desc.size:
                    raise SizeMismatch(f"{self._what}: more than {self._desc.size} bytes")
                self._hash.update(chunk)
                self._buffer = chunk
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def _finish(self) -> None:
        self._done = True
        if self._count != self._desc.size:
            raise SizeMismatch(f"{self._what}: {self._count} bytes, expected {self._desc.size}")
        got = Digest(self._desc.digest.algorithm, self._hash.hexdigest())
        if got != self._desc.digest:
            raise DigestMismatch(f"{self._what}: digest mismatch (got {got})")


class RemoteLayer:
    """One layer of a remote image; its blob is downloaded each time a stream is opened."""

    def __init__(self, client: RegistryClient, repo: str, desc: Descriptor, diff_id: Digest):
        self._client = client
        self._repo = repo
        self._desc = desc
        self._diff_id = diff_id

    @property
    def digest(self) -> Digest:
        return self._desc.digest

    @property
    def diff_id(self) -> Digest:
        return self._diff_id

    @property
    def media_type(self) -> str:
        return self._desc.media_type

    @property
    def size(self) -> int:
        return self._desc.size

    @property
    def uncompressed_size(self) -> int | None:
        return None  # known only once read

    @property
    def content_size(self) -> int | None:
        return None

    @contextlib.contextmanager
    def compressed(self) -> Iterator[BinaryIO]:
        what = f"layer {self.digest}"
        with self._client.get_blob(self._repo, self.digest) as blob:
            raw = _Checked(blob.iter_chunks(), self._desc, what)
            yield io.BufferedReader(raw, 1 << 20)

    @contextlib.contextmanager
    def uncompressed(self) -> Iterator[BinaryIO]:
        with self.compressed() as f:
            stream = open_decompressed(f, source=f"layer {self.digest}")
            try:
                yield stream
            finally:
                stream.close()


class RemoteImage:
    """The image ``reference`` (a tag or digest) of ``repo`` names, for ``platform`` when it is
    an index (this machine's by default)."""

    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        reference: str,
        *,
        platform: Platform | None = None,
    ) -> None:
        self._client = client
        self._repo = repo
        self._reference = reference
        self._platform = platform or Platform.current()
        self._lock = threading.Lock()
        self._resolved: tuple[Digest, str, bytes, Manifest] | None = None
        self._raw_config: bytes | None = None
        self._config: ImageConfig | None = None
        self._layers: tuple[Layer, ...] | None = None

    def _resolve(self) -> tuple[Digest, str, bytes, Manifest]:
        with self._lock:
            if self._resolved is None:
                self._resolved = self._fetch_manifest()
            return self._resolved

    def _fetch_manifest(self) -> tuple[Digest, str, bytes, Manifest]:
        top = self._client.get_manifest(self._repo, self._reference, MANIFEST_ACCEPT)
        parsed = parse_manifest(
            top.data, top.media_type, source=f"manifest {top.digest}", allow_empty_layers=True
        )
        if isinstance(parsed, Manifest):
            return top.digest, parsed.media_type or top.media_type, top.data, parsed
        entry = select_manifest(parsed, self._platform, source=f"index {top.digest}")
        sub = self._client.get_manifest(self._repo, str(entry.digest), _IMAGE_ACCEPT)
        source = f"manifest {entry.digest}"
        if sub.digest != entry.digest:
            raise DigestMismatch(f"{source}: digest mismatch (got {sub.digest})")
        if len(sub.data) != entry.size:
            raise SizeMismatch(f"{source}: {len(sub.data)} bytes, the index says {entry.size}")
        image = parse_image_manifest(sub.data, sub.media_type, sub.digest)
        return sub.digest, image.media_type or sub.media_type, sub.data, image

    @property
    def media_type(self) -> str:
        return self._resolve()[1]

    def digest(self) -> Digest:
        return self._resolve()[0]

    def raw_manifest(self) -> bytes:
        return self._resolve()[2]

    def manifest(self) -> Manifest:
        return self._resolve()[3]

    def config_digest(self) -> Digest:
        return self.manifest().config.digest

    def raw_config(self) -> bytes:
        if self._raw_config is None:
            desc = self.manifest().config
            source = f"config {desc.digest}"
            if desc.size > MAX_CONFIG_SIZE:
                raise TooLarge(f"{source}: {desc.size} bytes, over the limit of {MAX_CONFIG_SIZE}")
            with self._client.get_blob(self._repo, desc.digest) as blob:
                raw = _Checked(blob.iter_chunks(), desc, source)
                self._raw_config = io.BufferedReader(raw).read()
        return self._raw_config

    def config(self) -> ImageConfig:
        if self._config is None:
            self._config = parse_config(self.raw_config(), source=f"config {self.config_digest()}")
        return self._config

    def layers(self) -> Sequence[Layer]:
        if self._layers is None:
            manifest = self.manifest()
            diff_ids = self.config().rootfs.diff_ids
            if len(diff_ids) != len(manifest.layers):
                raise FormatError(
                    f"manifest {self.digest()}: {len(manifest.layers)} layers but"
                    f" {len(diff_ids)} diff IDs in config {manifest.config.digest}"
                )
            self._layers = tuple(
                RemoteLayer(self._client, self._repo, desc, diff_id)
                for desc, diff_id in zip(manifest.layers, diff_ids, strict=True)
            )
        return self._layers
