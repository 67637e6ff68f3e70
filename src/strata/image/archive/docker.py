"""docker-archive specifics: ``manifest.json`` and ``repositories``, both ways.

``manifest.json`` is a list of ``{"Config": path, "RepoTags": [...], "Layers": [paths]}``; the
paths are members of the archive. Docker <= 24 put layers at ``<id>/layer.tar`` (duplicates as
symlinks) and configs at ``<config hex>.json``; skopeo writes ``<hex>.tar`` and ``<hex>.json``;
Docker >= 25 points into an OCI layout's ``blobs/sha256/``. None of these carries an image
manifest, so reading one synthesises an OCI manifest for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata import jsonload
from strata.digest import Digest
from strata.errors import FormatError, InvalidReference, UnsupportedMediaType
from strata.image.archive.formats import MAX_JSON_MEMBER, blob_member, clean_member_name
from strata.layer.compression import Compression
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from strata.oci.reference import Reference, parse_reference

__all__ = [
    "DockerEntry",
    "layer_media_type",
    "manifest_json",
    "parse_manifest_json",
    "repositories_json",
    "synthesise_manifest",
]

_LAYER_TYPES = {
    Compression.NONE: OCI_LAYER,
    Compression.GZIP: OCI_LAYER_GZIP,
    Compression.ZSTD: OCI_LAYER_ZSTD,
}


@dataclass(frozen=True, slots=True)
class DockerEntry:
    """One image of ``manifest.json``: member paths, and names as full normalised references."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def _repo_tag(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise FormatError(f"{where}: not a string")
    try:
        ref = parse_reference(text)
    except InvalidReference as err:
        raise FormatError(f"{where}: {err}") from None
    # Docker refuses the load too: a RepoTag must be exactly name:tag.
    if ref.tag is None or ref.digest is not None:
        raise FormatError(f"{where}: {text!r} is not a name:tag reference")
    return str(ref)


def _member(value: object, where: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise FormatError(f"{where}: missing or not a string")
    return clean_member_name(value, source=source, what=where)


def parse_manifest_json(data: bytes, *, source: str) -> list[DockerEntry]:
    """The entries of a ``manifest.json``; `FormatError` naming the field at fault."""
    doc: Any = jsonload.loads(data, source=f"{source}: manifest.json", limit=MAX_JSON_MEMBER)
    if not isinstance(doc, list):
        raise FormatError(f"{source}: manifest.json: not a JSON list")
    entries = []
    for i, item in enumerate(doc):
        where = f"{source}: manifest.json[{i}]"
        if not isinstance(item, dict):
            raise FormatError(f"{where}: not a JSON object")
        config = _member(item.get("Config"), f"{where}.Config", source)
        tags = item.get("RepoTags") or []
        layers = item.get("Layers")
        if not isinstance(tags, list):
            raise FormatError(f"{where}.RepoTags: not a list")
        if not isinstance(layers, list):
            raise FormatError(f"{where}.Layers: missing or not a list")
        entries.append(
            DockerEntry(
                config=config,
                repo_tags=tuple(_repo_tag(t, f"{where}.RepoTags[{j}]") for j, t in enumerate(tags)),
                layers=tuple(
                    _member(p, f"{where}.Layers[{j}]", source) for j, p in enumerate(layers)
                ),
            )
        )
    return entries


def layer_media_type(compression: Compression, where: str) -> str:
    """The OCI layer media type for a layer file compressed with ``compression``."""
    try:
        return _LAYER_TYPES[compression]
    except KeyError:
        raise UnsupportedMediaType(
            f"{where}: {compression.value}-compressed layers have no OCI media type; "
            "only uncompressed, gzip and zstd layers are supported"
        ) from None


def synthesise_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> tuple[Manifest, bytes]:
    """An OCI image manifest for a docker-archive image, and its serialised bytes."""
    manifest = Manifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config.digest, config.size),
        layers=tuple(layers),
        annotations=None,
        subject=None,
        artifact_type=None,
    )
    return manifest, manifest.to_json()


def manifest_json(
    entries: Sequence[tuple[Manifest, Sequence[Reference]]],
) -> bytes:
    """``manifest.json`` for images in an archive whose blobs sit at ``blobs/<alg>/<hex>``.

    RepoTags are familiar (``debian:bookworm``) as ``docker save`` writes them; both Docker and
    containers/image normalise them back when reading. A RepoTag is always ``name:tag`` (Docker
    refuses anything else), so names without a tag are left out and a digest is dropped.
    """
    doc = [
        {
            "Config": blob_member(manifest.config.digest),
            "RepoTags": [f"{ref.familiar_name}:{ref.tag}" for ref in refs if ref.tag],
            "Layers": [blob_member(layer.digest) for layer in manifest.layers],
        }
        for manifest, refs in entries
    ]
    return json.dumps(doc, separators=(",", ":")).encode()


def repositories_json(entries: Sequence[tuple[Manifest, Sequence[Reference]]]) -> bytes:
    """The legacy ``repositories`` file: familiar name -> tag -> hex of the image's top layer."""
    repos: dict[str, dict[str, str]] = {}
    for manifest, refs in entries:
        if not manifest.layers:
            continue
        top: Digest = manifest.layers[-1].digest
        for ref in refs:
            if ref.tag is not None:
                repos.setdefault(ref.familiar_name, {})[ref.tag] = top.encoded
    return json.dumps(repos, separators=(",", ":"), sort_keys=True).encode()
