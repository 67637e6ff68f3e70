"""Media types of OCI and Docker images, the layer types strata can unpack, and size bounds."""

from __future__ import annotations

from typing import Final, Literal

from strata.errors import UnsupportedMediaType

OCI_DESCRIPTOR: Final = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER: Final = "application/vnd.oci.layout.header.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD: Final = OCI_LAYER + "+zstd"
# Deprecated by image-spec 1.1 but still found in Windows base images; kept so they can be read.
OCI_LAYER_NONDIST: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP: Final = OCI_LAYER_NONDIST + "+gzip"
OCI_LAYER_NONDIST_ZSTD: Final = OCI_LAYER_NONDIST + "+zstd"
# containers/ocicrypt: an encrypted layer is its plain type plus "+encrypted".
ENCRYPTED_SUFFIX: Final = "+encrypted"

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_UNCOMPRESSED: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar"
# Recognised only to be rejected with a clear reason.
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_MEDIA_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_MEDIA_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1_MEDIA_TYPES: Final = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

Compression = Literal["none", "gzip", "zstd"]

_COMPRESSION: Final[dict[str, Compression]] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "none",
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_FOREIGN: "gzip",
    DOCKER_LAYER_FOREIGN_UNCOMPRESSED: "none",
}

LAYER_MEDIA_TYPES: Final = frozenset(_COMPRESSION)
"""Every layer media type strata can unpack."""

NONDISTRIBUTABLE_MEDIA_TYPES: Final = frozenset(
    {
        OCI_LAYER_NONDIST,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER_FOREIGN,
        DOCKER_LAYER_FOREIGN_UNCOMPRESSED,
    }
)
"""Layers a registry may not be given (their ``urls`` say where they live)."""

ENCRYPTED_LAYER_MEDIA_TYPES: Final = frozenset(
    t + ENCRYPTED_SUFFIX for t in LAYER_MEDIA_TYPES if t.startswith("application/vnd.oci.")
)
"""ocicrypt layer types: valid in a manifest, but strata cannot unpack them."""

MAX_MANIFEST_SIZE: Final = 4 * 1024 * 1024
MAX_CONFIG_SIZE: Final = 8 * 1024 * 1024
MAX_INDEX_JSON_SIZE: Final = 4 * 1024 * 1024


def layer_compression(media_type: str) -> Compression:
    """How a layer of ``media_type`` is compressed: ``"none"``, ``"gzip"`` or ``"zstd"``.

    Raises `UnsupportedMediaType` for encrypted layers and for anything that is not a layer.
    """
    found = _COMPRESSION.get(media_type)
    if found is not None:
        return found
    if media_type in ENCRYPTED_LAYER_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"layer media type {media_type!r}: encrypted layers are not supported"
        )
    raise UnsupportedMediaType(f"media type {media_type!r} is not a layer type strata can unpack")


def is_known_layer_type(media_type: str) -> bool:
    """True for every layer type a manifest may carry: unpackable ones and encrypted ones."""
    return media_type in LAYER_MEDIA_TYPES or media_type in ENCRYPTED_LAYER_MEDIA_TYPES


def is_nondistributable(media_type: str) -> bool:
    """True for foreign / non-distributable layers, which are never pushed to a registry."""
    return media_type.removesuffix(ENCRYPTED_SUFFIX) in NONDISTRIBUTABLE_MEDIA_TYPES
