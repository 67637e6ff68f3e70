"""Image manifests and indexes: OCI image-spec and Docker schema 2, parsed and serialised.

A manifest is stored as the bytes it came as (its digest is of those bytes); these values are
what strata reads out of them, and `to_json` is how strata writes its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from strata.errors import FormatError, UnsupportedMediaType
from strata.oci._fields import (
    check_media_type,
    dumps,
    fail,
    json_type,
    load_object,
    opt_str,
    opt_str_map,
    req_int,
    show,
)
from strata.oci.descriptor import Descriptor, descriptor_from_dict
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    INDEX_MEDIA_TYPES,
    LAYER_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_MEDIA_TYPES,
    is_known_layer_type,
)

# Content types registries and CDNs send when they do not know better: guess from the content,
# as containers/image does.
_GENERIC_TYPES: Final = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"}
)
# Layer families whose members are all registered: an unknown member is a mistake, not an artifact.
_LAYER_FAMILIES: Final = (
    "application/vnd.oci.image.layer.",
    "application/vnd.docker.image.rootfs.",
)
# Fields that mark another manifest format (containers/image ValidateUnambiguousManifestFormat).
_FOREIGN_FIELDS: Final = {
    "manifest": ("manifests", "fslayers", "history"),
    "index": ("config", "layers", "fslayers", "history"),
}


def _schema1(source: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"{source}: Docker schema 1 manifests are not supported")


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """An image manifest: a config and its ordered layers (OCI or Docker schema 2).

    ``media_type`` is the document's own ``mediaType`` field (None if it has none).
    """

    schema_version: int = 2
    media_type: str | None
    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        if self.annotations is not None and not self.annotations:
            object.__setattr__(self, "annotations", None)

    @property
    def effective_media_type(self) -> str:
        """``media_type``, or for a document without one, what its config says it is."""
        if self.media_type is not None:
            return self.media_type
        return DOCKER_MANIFEST if self.config.media_type == DOCKER_CONFIG else OCI_MANIFEST

    def to_json(self) -> bytes:
        """Compact JSON with image-spec's key order; None and empty optional fields omitted."""
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_dict()
        out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return dumps(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    """An image index (OCI) or manifest list (Docker): manifests, usually one per platform.

    ``media_type`` is the document's own ``mediaType`` field (None if it has none).
    """

    schema_version: int = 2
    media_type: str | None
    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        if self.annotations is not None and not self.annotations:
            object.__setattr__(self, "annotations", None)

    @property
    def effective_media_type(self) -> str:
        """``media_type``, or `OCI_INDEX` for a document without one."""
        return self.media_type if self.media_type is not None else OCI_INDEX

    def to_json(self) -> bytes:
        """Compact JSON with image-spec's key order; None and empty optional fields omitted."""
        out: dict[str, Any] = {"schemaVersion": self.schema_version}
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [m.to_dict() for m in self.manifests]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return dumps(out)


def parse_manifest(
    data: bytes,
    media_type: str | None = None,
    *,
    source: str,
    allow_empty_layers: bool = False,
) -> Manifest | Index:
    """Parse and validate a manifest or index; every error message starts with ``source``.

    ``media_type`` is what the registry or archive said the document is; None (or a generic
    type such as ``application/json``) means guess from the content, as containers/image's
    GuessMIMEType does. OCI and Docker schema 2 manifests, OCI indexes and Docker manifest lists
    are accepted. Docker schema 1 and unknown types raise `UnsupportedMediaType`; a document
    whose ``mediaType`` disagrees with ``media_type``, or that carries another format's fields,
    raises `FormatError`; over `MAX_MANIFEST_SIZE` raises `TooLarge`.

    An OCI manifest must list at least one layer, as image-spec's schema says; pass
    ``allow_empty_layers`` to read the layer-less images some builders write for ``FROM scratch``.
    """
    doc = load_object(data, source=source, limit=MAX_MANIFEST_SIZE, what="manifests")
    return parse_manifest_object(
        doc, media_type, source=source, allow_empty_layers=allow_empty_layers
    )


def parse_manifest_object(
    doc: dict[str, Any],
    media_type: str | None,
    *,
    source: str,
    allow_empty_layers: bool = False,
    loose_entries: bool = False,
) -> Manifest | Index:
    """`parse_manifest` on an already decoded JSON object.

    ``loose_entries`` lets an index entry carry any non-empty media type (OCI layouts, where a
    bad entry only fails when it is resolved).
    """
    said = _normalise(media_type)
    if said is not None:
        if said in SCHEMA1_MEDIA_TYPES:
            raise _schema1(source)
        if said not in MANIFEST_MEDIA_TYPES and said not in INDEX_MEDIA_TYPES:
            raise UnsupportedMediaType(f"{source}: unsupported manifest media type {show(said)}")
    declared = opt_str(doc, "mediaType", source, "")
    if declared is not None:
        if declared in SCHEMA1_MEDIA_TYPES:
            raise _schema1(source)
        if said is not None and declared != said:
            fail(source, "mediaType", f"the document says {show(declared)} but it came as {said}")
        if declared not in MANIFEST_MEDIA_TYPES and declared not in INDEX_MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"{source}: mediaType: unsupported manifest media type {show(declared)}"
            )
    kind = said or declared or _guess(doc, source)
    version = req_int(doc, "schemaVersion", source, "", minimum=-(2**63))
    if version == 1:
        raise _schema1(source)
    if version != 2:
        fail(source, "schemaVersion", f"must be 2, not {version}")
    is_index = kind in INDEX_MEDIA_TYPES
    foreign = [
        k
        for k, v in doc.items()
        if v is not None and k.lower() in _FOREIGN_FIELDS["index" if is_index else "manifest"]
    ]
    if foreign:
        fail(source, foreign[0], f"unexpected field in a {kind} (ambiguous manifest)")
    if is_index:
        return _index(doc, kind, declared, source, loose_entries)
    return _manifest(doc, kind, declared, source, allow_empty_layers)


def _normalise(media_type: str | None) -> str | None:
    if media_type is None:
        return None
    # A Content-Type header may carry parameters ("; charset=utf-8").
    bare = media_type.split(";", 1)[0].strip().lower()
    return None if bare in _GENERIC_TYPES else bare


def _guess(doc: dict[str, Any], source: str) -> str:
    """The manifest type of a document without a ``mediaType`` (containers/image's rules)."""
    version = doc.get("schemaVersion")
    if version == 1 and not isinstance(version, bool):
        raise _schema1(source)
    if version != 2 or isinstance(version, bool):
        raise UnsupportedMediaType(
            f"{source}: cannot tell what kind of manifest this is "
            f"(no mediaType, schemaVersion {show(version)})"
        )
    config = doc.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    if config_type == OCI_CONFIG:
        return OCI_MANIFEST
    if config_type == DOCKER_CONFIG:
        return DOCKER_MANIFEST
    if isinstance(doc.get("manifests"), list) and config is None and doc.get("layers") is None:
        return OCI_INDEX
    # Most likely an OCI artifact with its own config type.
    return OCI_MANIFEST


def _manifest(
    doc: dict[str, Any], kind: str, declared: str | None, source: str, allow_empty: bool
) -> Manifest:
    raw_config = doc.get("config")
    if raw_config is None:
        fail(source, "config", "missing")
    config = descriptor_from_dict(raw_config, source, "config")
    raw_layers = doc.get("layers")
    if raw_layers is None:
        fail(source, "layers", "missing")
    if not isinstance(raw_layers, list):
        fail(source, "layers", f"must be an array, not {json_type(raw_layers)}")
    layers = tuple(
        descriptor_from_dict(raw, source, f"layers[{i}]") for i, raw in enumerate(raw_layers)
    )
    for i, layer in enumerate(layers):
        _check_layer_type(layer.media_type, kind, source, f"layers[{i}].mediaType")
    if kind == OCI_MANIFEST and not layers and not allow_empty:
        fail(source, "layers", "must list at least one layer (image-spec manifest schema)")
    return Manifest(
        schema_version=2,
        media_type=declared,
        config=config,
        layers=layers,
        annotations=opt_str_map(doc, "annotations", source, ""),
        subject=_subject(doc, source),
        artifact_type=_artifact_type(doc, source),
    )


def _check_layer_type(media_type: str, kind: str, source: str, path: str) -> None:
    if kind == DOCKER_MANIFEST:
        # Schema 2 has no artifacts: every layer must be one we know.
        if media_type not in LAYER_MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"{source}: {path}: {show(media_type)} is not a Docker schema 2 layer type"
            )
        return
    if media_type.startswith(_LAYER_FAMILIES) and not is_known_layer_type(media_type):
        raise UnsupportedMediaType(f"{source}: {path}: unknown layer media type {show(media_type)}")


def _index(doc: dict[str, Any], kind: str, declared: str | None, source: str, loose: bool) -> Index:
    raw = doc.get("manifests")
    if raw is None:
        fail(source, "manifests", "missing")
    if not isinstance(raw, list):
        fail(source, "manifests", f"must be an array, not {json_type(raw)}")
    manifests = tuple(
        descriptor_from_dict(entry, source, f"manifests[{i}]", loose_media_type=loose)
        for i, entry in enumerate(raw)
    )
    return Index(
        schema_version=2,
        media_type=declared,
        manifests=manifests,
        annotations=opt_str_map(doc, "annotations", source, ""),
        subject=_subject(doc, source),
        artifact_type=_artifact_type(doc, source),
    )


def _subject(doc: dict[str, Any], source: str) -> Descriptor | None:
    raw = doc.get("subject")
    return None if raw is None else descriptor_from_dict(raw, source, "subject")


def _artifact_type(doc: dict[str, Any], source: str) -> str | None:
    value = opt_str(doc, "artifactType", source, "")
    return None if value is None else check_media_type(value, source, "artifactType")


def parse_index_object(doc: dict[str, Any], source: str) -> Index:
    """An OCI layout's ``index.json`` object as an `Index` (entries checked loosely)."""
    parsed = parse_manifest_object(doc, OCI_INDEX, source=source, loose_entries=True)
    if not isinstance(parsed, Index):  # pragma: no cover - OCI_INDEX always yields an Index
        raise FormatError(f"{source}: not an image index")
    return parsed
