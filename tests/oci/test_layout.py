"""OCI layout files and layer media types."""

from __future__ import annotations

import json

import pytest

from strata.digest import Digest
from strata.errors import FormatError, TooLarge, UnsupportedMediaType
from strata.oci.descriptor import Descriptor
from strata.oci.layout import layout_header, parse_index, parse_layout_header
from strata.oci.manifest import Index
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_FOREIGN,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST_LIST,
    LAYER_MEDIA_TYPES,
    MAX_INDEX_JSON_SIZE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    is_nondistributable,
    layer_compression,
)


def test_layout_header() -> None:
    assert layout_header() == b'{"imageLayoutVersion":"1.0.0"}'
    assert parse_layout_header(layout_header(), "oci-layout") == "1.0.0"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"imageLayoutVersion": "2.0.0"}', "imageLayoutVersion: unsupported version '2.0.0'"),
        (b'{"imageLayoutVersion": 1}', "imageLayoutVersion: must be a string, not number"),
        (b"{}", "imageLayoutVersion: missing"),
        (b"1.0.0", "not valid JSON"),
    ],
)
def test_bad_layout_header(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_layout_header(data, "dir/oci-layout")
    assert str(caught.value).startswith(f"dir/oci-layout: {reason}")


def test_index_json() -> None:
    entry = Descriptor(
        OCI_MANIFEST, Digest.of(b"m"), 3, annotations={"org.opencontainers.image.ref.name": "v1"}
    )
    index = Index(media_type=OCI_INDEX, manifests=(entry,))
    assert parse_index(index.to_json(), "index.json") == index
    # mediaType may be absent in a layout's index.json.
    assert parse_index(b'{"schemaVersion":2,"manifests":[]}', "index.json").manifests == ()


def test_index_json_must_be_an_oci_index() -> None:
    listed = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": []}
    ).encode()
    with pytest.raises(FormatError, match="^index.json: mediaType: the document says"):
        parse_index(listed, "index.json")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": OCI_CONFIG, "digest": str(Digest.of(b"")), "size": 0},
            "layers": [],
        }
    ).encode()
    with pytest.raises(FormatError, match="^index.json: config: unexpected field"):
        parse_index(manifest, "index.json")
    with pytest.raises(FormatError, match=r"^index.json: manifests\[0\]\.mediaType: must not be"):
        parse_index(
            b'{"schemaVersion":2,"manifests":[{"mediaType":"","digest":"sha256:'
            + b"0" * 64
            + b'","size":1}]}',
            "index.json",
        )


def test_index_json_size_bound() -> None:
    data = b'{"schemaVersion":2,"manifests":[],"x":"' + b"a" * MAX_INDEX_JSON_SIZE + b'"}'
    with pytest.raises(TooLarge, match="^index.json: "):
        parse_index(data, "index.json")


@pytest.mark.parametrize(
    ("media_type", "compression"),
    [
        (OCI_LAYER, "none"),
        (OCI_LAYER_GZIP, "gzip"),
        (OCI_LAYER_ZSTD, "zstd"),
        (OCI_LAYER_NONDIST_ZSTD, "zstd"),
        (DOCKER_LAYER, "none"),
        (DOCKER_LAYER_GZIP, "gzip"),
        (DOCKER_LAYER_FOREIGN, "gzip"),
    ],
)
def test_layer_compression(media_type: str, compression: str) -> None:
    assert media_type in LAYER_MEDIA_TYPES
    assert layer_compression(media_type) == compression


@pytest.mark.parametrize(
    ("media_type", "reason"),
    [
        (OCI_LAYER_GZIP + "+encrypted", "encrypted layers are not supported"),
        (OCI_LAYER + "+encrypted", "encrypted layers are not supported"),
        (OCI_CONFIG, "is not a layer type strata can unpack"),
        (DOCKER_CONFIG, "is not a layer type strata can unpack"),
        (OCI_LAYER + "+bzip2", "is not a layer type strata can unpack"),
    ],
)
def test_layer_compression_refuses(media_type: str, reason: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=reason):
        layer_compression(media_type)


def test_nondistributable() -> None:
    assert is_nondistributable(DOCKER_LAYER_FOREIGN)
    assert is_nondistributable(OCI_LAYER_NONDIST_ZSTD + "+encrypted")
    assert not is_nondistributable(OCI_LAYER_GZIP)
