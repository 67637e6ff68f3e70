"""The OCI image layout: the ``oci-layout`` header and the ``index.json`` (image-layout.md)."""

from __future__ import annotations

from typing import Final

from strata.errors import FormatError
from strata.oci._fields import dumps, load_object, req_str, show
from strata.oci.manifest import Index, parse_index_object
from strata.oci.mediatypes import MAX_INDEX_JSON_SIZE

LAYOUT_FILE: Final = "oci-layout"
INDEX_FILE: Final = "index.json"
BLOBS_DIR: Final = "blobs"
LAYOUT_VERSION: Final = "1.0.0"
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"
_MAX_HEADER_SIZE: Final = 64 * 1024


def parse_layout_header(data: bytes, source: str) -> str:
    """Validate an ``oci-layout`` file and return its ``imageLayoutVersion`` (only 1.0.0 exists)."""
    doc = load_object(data, source=source, limit=_MAX_HEADER_SIZE, what="oci-layout files")
    version = req_str(doc, "imageLayoutVersion", source, "")
    if version != LAYOUT_VERSION:
        raise FormatError(
            f"{source}: imageLayoutVersion: unsupported version {show(version)}"
            f" (expected {LAYOUT_VERSION})"
        )
    return version


def layout_header() -> bytes:
    """The bytes of an ``oci-layout`` file strata writes."""
    return dumps({"imageLayoutVersion": LAYOUT_VERSION})


def parse_index(data: bytes, source: str) -> Index:
    """Parse a layout's ``index.json`` as an OCI image index (at most `MAX_INDEX_JSON_SIZE`).

    The document may omit ``mediaType``; a Docker manifest list type is refused. An entry's media
    type needs only to be a non-empty string here, so one odd entry does not hide the others: it
    fails when someone resolves it (as containers/image does).
    """
    doc = load_object(data, source=source, limit=MAX_INDEX_JSON_SIZE, what="index.json files")
    return parse_index_object(doc, source)
