"""Reading image archives: every image of a docker-archive, OCI archive or OCI layout directory.

The input is taken in one pass (see `members`), then resolved: ``index.json`` descriptors are
followed to image manifests (a nested index contributes this platform's manifest),
``manifest.json`` entries are matched to those manifests by config or get a synthesised OCI
manifest, and every image is checked end to end: each referenced blob is in the archive with the
size its descriptor states, the config parses, and every layer's diff ID — its digest when
uncompressed, the digest of its decompressed stream otherwise — is the one the config lists.
Nothing but verified blobs reaches the content store, and an error leaves only those behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from strata.content import ContentStore
from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    NotFound,
    SizeMismatch,
    StrataError,
    TooLarge,
    UnsupportedMediaType,
)
from strata.image.archive.diffid import hash_decompressed
from strata.image.archive.docker import (
    layer_media_type,
    parse_manifest_json,
    synthesise_manifest,
)
from strata.image.archive.formats import (
    INDEX_JSON,
    MANIFEST_JSON,
    OCI_LAYOUT,
    LoadedImage,
    LoadedLayer,
    blob_member,
)
from strata.image.archive.members import DirMembers, Members, OnBlob, TarMembers
from strata.image.archive.ocilayout import choose_platform_manifest, names_from_annotations
from strata.layer.compression import Compression, detect, open_decompressed
from strata.oci.config import ImageConfig, parse_config
from strata.oci.descriptor import Descriptor, Platform, matches
from strata.oci.layout import parse_index, parse_layout_header
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    LAYER_MEDIA_TYPES,
    MAX_CONFIG_SIZE,
    MAX_INDEX_JSON_SIZE,
    MAX_MANIFEST_SIZE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    layer_compression,
)

__all__ = ["read_archive"]

_MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_CONFIG_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})
_MAX_INDEX_DEPTH: Final = 4
_HEAD: Final = 512


def _ignore(_: Digest) -> None:
    return None


def read_archive(
    source: Path | BinaryIO,
    content: ContentStore,
    *,
    name: str,
    on_blob: Callable[[Digest], None] = _ignore,
) -> list[LoadedImage]:
    """Every image in ``source``, with all its blobs verified and in ``content``.

    ``source`` is a tar file (plain or gzip/zstd/xz/bzip2-compressed), a directory holding an OCI
    layout or an extracted docker-archive, or a binary stream read once from front to back.
    ``name`` is what errors call the input. ``on_blob(d)`` is called for each blob before it is
    written to or found in the store, so a gc lease can protect it. Errors are one line naming
    ``name``: `FormatError` (and its `UnsafePath`, `TooLarge`, `UnsupportedMediaType`),
    `DigestMismatch`, `SizeMismatch`, and `NotFound` when an index has no image for this platform.
    Blobs written before an error stay in the store (they are verified; gc removes them).

    A blob the store already has is not written again, but its bytes in the archive are still
    hashed: the archive is judged by its own content, so one input gives one answer whatever
    the store holds (hashing runs at ~1 GB/s, far below the cost of the load itself). Names
    follow `strata.image.archive.ocilayout` for ``index.json`` and Docker for ``RepoTags``.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            members: Members = DirMembers(path, name, content, on_blob)
        else:
            try:
                f = open(path, "rb")  # noqa: SIM115 -- closed below
            except FileNotFoundError:
                raise NotFound(f"{name}: no such file or directory") from None
            except OSError as err:
                raise FormatError(f"{name}: cannot open: {err.strerror or err}") from None
            with f:
                members = _scan(f, name, content, on_blob)
    else:
        members = _scan(source, name, content, on_blob)
    return _Resolver(members, content, name).load()


def _scan(stream: BinaryIO, name: str, content: ContentStore, on_blob: OnBlob) -> TarMembers:
    members = TarMembers(name, content, on_blob)
    with open_decompressed(stream, source=name) as tar_stream:
        members.scan(tar_stream)
    return members


@dataclass(slots=True, eq=False)
class _Found:
    """An image found in the archive, not yet checked."""

    digest: Digest
    manifest: Manifest
    names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.names[0] if self.names else str(self.digest)


class _Resolver:
    def __init__(self, members: Members, content: ContentStore, name: str) -> None:
        self.members = members
        self.content = content
        self.name = name
        self.platform = Platform.current()
        self.found: dict[Digest, _Found] = {}
        self.diff_ids: dict[Digest, tuple[Digest, int]] = {}
        # Blobs already stored from members not named by digest (docker-archive paths).
        self.stored: dict[Digest, int] = {}

    def load(self) -> list[LoadedImage]:
        m = self.members
        layout = m.read_optional(OCI_LAYOUT, limit=MAX_MANIFEST_SIZE, what=OCI_LAYOUT)
        if layout is not None:
            parse_layout_header(layout, source=f"{self.name}: {OCI_LAYOUT}")
        index_data = m.read_optional(INDEX_JSON, limit=MAX_INDEX_JSON_SIZE, what=INDEX_JSON)
        docker_data = m.read_optional(MANIFEST_JSON, limit=MAX_MANIFEST_SIZE, what=MANIFEST_JSON)
        if index_data is None and docker_data is None:
            if layout is not None:
                raise FormatError(f"{self.name}: OCI layout without {INDEX_JSON}")
            raise FormatError(
                f"{self.name}: not a docker-archive or OCI archive "
                f"(it has neither {MANIFEST_JSON} nor {INDEX_JSON})"
            )
        from_index, skipped = self._from_index(index_data) if index_data is not None else ([], [])
        order = self._from_docker(docker_data, from_index) if docker_data is not None else []
        for found in from_index:
            if found not in order:
                order.append(found)
        if skipped and not order:
            raise NotFound(
                f"{self.name}: no image for {self.platform} "
                f"(the archive has {', '.join(sorted(set(skipped)))})"
            )
        return [self._check(found) for found in order]

    def _from_index(self, data: bytes) -> tuple[list[_Found], list[str]]:
        """The images ``index.json`` lists for this platform, and the platforms it skipped."""
        index = parse_index(data, source=f"{self.name}: {INDEX_JSON}")
        if not isinstance(index, Index):
            raise FormatError(f"{self.name}: {INDEX_JSON} is not an image index")
        images: list[_Found] = []
        skipped: list[str] = []
        for i, desc in enumerate(index.manifests):
            where = f"{INDEX_JSON} manifests[{i}]"
            if desc.platform is not None and not matches(desc.platform, self.platform):
                skipped.append(str(desc.platform))
                continue
            found = self._image(self._resolve(desc, where, 0), where)
            found.names.extend(names_from_annotations(desc.annotations))
            if found not in images:
                images.append(found)
        return images, skipped

    def _resolve(self, desc: Descriptor, where: str, depth: int) -> Descriptor:
        """The image manifest ``desc`` leads to on this platform."""
        if desc.media_type in _MANIFEST_TYPES:
            return desc
        if desc.media_type not in _INDEX_TYPES:
            raise UnsupportedMediaType(
                f"{self.name}: {where}: media type {desc.media_type!r} "
                "is not an image manifest or index"
            )
        if depth >= _MAX_INDEX_DEPTH:
            raise FormatError(f"{self.name}: {where}: indexes nested too deep")
        data = self._blob_bytes(desc, MAX_MANIFEST_SIZE, "index")
        index = parse_manifest(data, desc.media_type, source=f"{self.name}: index {desc.digest}")
        if not isinstance(index, Index):
            raise FormatError(f"{self.name}: {where}: {desc.digest} is not an index")
        child = choose_platform_manifest(index.manifests, self.platform)
        if child is None:
            have = sorted({str(c.platform) for c in index.manifests if c.platform})
            raise NotFound(
                f"{self.name}: index {desc.digest} has no image for "
                f"{self.platform} (it has {', '.join(have) or 'none'})"
            )
        return self._resolve(child, f"index {desc.digest}", depth + 1)

    def _image(self, desc: Descriptor, where: str) -> _Found:
        found = self.found.get(desc.digest)
        if found is None:
            data = self._blob_bytes(desc, MAX_MANIFEST_SIZE, "manifest")
            # Layer-less images (FROM scratch plus metadata) exist; Docker saves them too.
            manifest = parse_manifest(
                data,
                desc.media_type,
                source=f"{self.name}: manifest {desc.digest}",
                allow_empty_layers=True,
            )
            if not isinstance(manifest, Manifest):
                raise FormatError(f"{self.name}: {where}: {desc.digest} is not an image manifest")
            found = self.found[desc.digest] = _Found(desc.digest, manifest)
        return found

    def _from_docker(self, data: bytes, from_index: list[_Found]) -> list[_Found]:
        by_config = {f.manifest.config.digest: f for f in from_index}
        images: list[_Found] = []
        for i, entry in enumerate(parse_manifest_json(data, source=self.name)):
            where = f"{MANIFEST_JSON}[{i}]"
            config = self.members.blob(entry.config, what=f"{where} config", limit=MAX_CONFIG_SIZE)
            self.stored[config.digest] = config.size
            found = by_config.get(config.digest)
            if found is None:
                layers = []
                for j, path in enumerate(entry.layers):
                    stored = self.members.blob(path, what=f"{where} layer {j + 1}")
                    self.stored[stored.digest] = stored.size
                    media_type = layer_media_type(
                        self._compression(stored.digest), f"{self.name}: {where} layer {path}"
                    )
                    layers.append(Descriptor(media_type, stored.digest, stored.size))
                config_desc = Descriptor(OCI_CONFIG, config.digest, config.size)
                manifest, manifest_bytes = synthesise_manifest(config_desc, layers)
                digest = Digest.of(manifest_bytes)
                self.members.on_blob(digest)
                self.content.put_bytes(manifest_bytes, expected=digest)
                found = self.found.setdefault(digest, _Found(digest, manifest))
            found.names.extend(entry.repo_tags)
            if found not in images:
                images.append(found)
        return images

    def _blob(self, desc: Descriptor, what: str, limit: int | None = None) -> None:
        """Check that the blob ``desc`` names is in the archive, at its stated size."""
        if not desc.digest.storable:
            raise UnsupportedMediaType(
                f"{self.name}: {what} {desc.digest}: digest algorithm not supported"
            )
        size = self.stored.get(desc.digest)
        if size is None:
            member = blob_member(desc.digest)
            self.members.blob(member, what=what, expected=desc.digest, size=desc.size, limit=limit)
        elif size != desc.size:
            raise SizeMismatch(
                f"{self.name}: {what} {desc.digest}: {size} bytes in the archive, "
                f"but its descriptor says {desc.size}"
            )

    def _blob_bytes(self, desc: Descriptor, limit: int, what: str) -> bytes:
        if desc.size > limit:
            raise TooLarge(f"{self.name}: {what} {desc.digest}: {desc.size} bytes, over {limit}")
        self._blob(desc, what, limit)
        try:
            return self.content.read_bytes(desc.digest, limit=limit)
        except StrataError as err:
            raise type(err)(f"{self.name}: {what}: {err}") from None

    def _compression(self, digest: Digest) -> Compression:
        try:
            with self.content.open(digest) as f:
                return detect(f.read(_HEAD))
        except OSError as err:
            raise FormatError(f"{self.name}: blob {digest}: {err.strerror or err}") from None

    def _check(self, found: _Found) -> LoadedImage:
        manifest, label = found.manifest, found.label
        cdesc = manifest.config
        if cdesc.media_type not in _CONFIG_TYPES:
            raise UnsupportedMediaType(
                f"{self.name}: image {label}: config media type {cdesc.media_type!r} "
                "is not an image config"
            )
        config: ImageConfig = parse_config(
            self._blob_bytes(cdesc, MAX_CONFIG_SIZE, "config"),
            source=f"{self.name}: config {cdesc.digest}",
        )
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise FormatError(
                f"{self.name}: image {label}: the manifest has {len(manifest.layers)} layers "
                f"but the config lists {len(diff_ids)} diff IDs"
            )
        layers = []
        for n, (ldesc, want) in enumerate(zip(manifest.layers, diff_ids, strict=True), start=1):
            if ldesc.media_type not in LAYER_MEDIA_TYPES:
                raise UnsupportedMediaType(
                    f"{self.name}: image {label}: layer {n}: "
                    f"unknown layer media type {ldesc.media_type!r}"
                )
            self._blob(ldesc, f"layer {n}")
            diff_id, size = self._diff_id(ldesc, n)
            if diff_id != want:
                raise DigestMismatch(
                    f"{self.name}: layer {n}: diff ID {diff_id} does not match config {want} "
                    f"(image {label})"
                )
            layers.append(LoadedLayer(ldesc.digest, ldesc.media_type, diff_id, size))
        names = tuple(dict.fromkeys(found.names))
        return LoadedImage(names, found.digest, manifest, cdesc.digest, config, tuple(layers))

    def _diff_id(self, desc: Descriptor, n: int) -> tuple[Digest, int]:
        """The digest and size of a layer's uncompressed tar, decompressing when needed."""
        cached = self.diff_ids.get(desc.digest)
        if cached is not None:
            return cached
        declared = Compression(layer_compression(desc.media_type))
        where = f"{self.name}: layer {n} ({desc.digest})"
        try:
            with self.content.open(desc.digest) as f:
                actual = detect(f.read(_HEAD))
                f.seek(0)
                if actual != declared:
                    raise FormatError(
                        f"{where}: media type {desc.media_type} but the blob is "
                        f"{'uncompressed' if actual is Compression.NONE else actual.value}"
                    )
                worker = self.members.diff_id_worker(desc.digest)
                if declared is Compression.NONE:
                    result = (desc.digest, desc.size)
                elif worker is not None:
                    result = worker.wait()
                else:
                    result = hash_decompressed(f, where)
        except OSError as err:
            raise FormatError(f"{where}: {err.strerror or err}") from None
        self.diff_ids[desc.digest] = result
        return result
