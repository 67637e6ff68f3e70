"""containers/image's manifest fixtures and OCI layouts through the OCI model.

Valid Docker schema 2 and OCI manifests, indexes and lists parse both when the type is guessed
from the content and when it is given; schema 1 is refused as unsupported; garbage and unknown
versions are refused; real layouts' ``index.json``, ``oci-layout`` and JSON blobs all parse.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import FormatError, UnsupportedMediaType
from strata.oci.config import parse_config
from strata.oci.layout import parse_index, parse_layout_header
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_INDEX,
    OCI_MANIFEST,
    is_nondistributable,
    layer_compression,
)

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
FIXTURES = CONFORMANCE / "containers-image-fixtures"
LAYOUTS = FIXTURES / "oci-layouts"

# file -> the type it is (given to the parser as the "said" type)
VALID = {
    "manifests/oci1.index.everything.json": OCI_INDEX,
    "manifests/oci1.index.zstd-selection.json": OCI_INDEX,
    "manifests/oci1.index.zstd-selection2.json": OCI_INDEX,
    "manifests/oci1index.json": OCI_INDEX,
    "manifests/ocilist-variants.json": OCI_INDEX,
    "manifests/ociv1.image.index.json": OCI_INDEX,
    "manifests/ociv1.manifest.json": OCI_MANIFEST,
    "manifests/ociv1nomime.image.index.json": OCI_INDEX,
    "manifests/ociv1nomime.manifest.json": OCI_MANIFEST,
    "manifests/schema2list-variants.json": DOCKER_MANIFEST_LIST,
    "manifests/schema2list.json": DOCKER_MANIFEST_LIST,
    "manifests/v2list.everything.json": DOCKER_MANIFEST_LIST,
    "manifests/v2list.manifest.json": DOCKER_MANIFEST_LIST,
    "manifests/v2s2.manifest.json": DOCKER_MANIFEST,
    "manifests/v2s2nomime.manifest.json": DOCKER_MANIFEST,
    "manifests-extra/ociv1.encrypted.manifest.json": OCI_MANIFEST,
    "manifests-extra/ociv1.everything.json": OCI_MANIFEST,
    "manifests-extra/ociv1.nondistributable.gzip.manifest.json": OCI_MANIFEST,
    "manifests-extra/ociv1.nondistributable.manifest.json": OCI_MANIFEST,
    "manifests-extra/ociv1.nondistributable.zstd.manifest.json": OCI_MANIFEST,
    "manifests-extra/ociv1.uncompressed.manifest.json": OCI_MANIFEST,
    "manifests-extra/ociv1.zstd.manifest.json": OCI_MANIFEST,
    "manifests-extra/v2s2.everything.json": DOCKER_MANIFEST,
    "manifests-extra/v2s2.nondistributable.gzip.manifest.json": DOCKER_MANIFEST,
    "manifests-extra/v2s2.nondistributable.manifest.json": DOCKER_MANIFEST,
    "manifests-extra/v2s2.uncompressed.manifest.json": DOCKER_MANIFEST,
}
SCHEMA1 = [
    "manifests/schema2-to-schema1-by-docker.json",
    "manifests/v2s1-invalid-signatures.manifest.json",
    "manifests/v2s1-unsigned.manifest.json",
    "manifests/v2s1.manifest.json",
    "manifests-extra/v2s1.everything.json",
]
# file -> (error class, text the one-line message must contain)
INVALID = {
    "manifests/non-json.manifest.json": (FormatError, "not valid JSON"),
    "manifests/unknown-version.manifest.json": (UnsupportedMediaType, "schemaVersion 99999"),
    # The layer says it is an OCI layer, compressed with "unknown": no such OCI layer type.
    "manifests-extra/ociv1.invalid.mediatype.manifest.json": (
        UnsupportedMediaType,
        "layers[0].mediaType: unknown layer media type "
        "'application/vnd.oci.image.layer.v1.tar+unknown'",
    ),
    # containers/image uses these only to test type guessing: the config digest is "".
    "manifests/ociv1.artifact.json": (FormatError, "config.digest: invalid digest ''"),
    "manifests/ociv1nomime.artifact.json": (FormatError, "config.digest: invalid digest ''"),
}


def test_every_fixture_is_classified() -> None:
    files = {
        str(p.relative_to(FIXTURES))
        for d in ("manifests", "manifests-extra")
        for p in (FIXTURES / d).iterdir()
    }
    assert files == set(VALID) | set(SCHEMA1) | set(INVALID)


@pytest.mark.parametrize("file", sorted(VALID))
def test_valid_manifests_parse_guessed_and_declared(file: str) -> None:
    data = (FIXTURES / file).read_bytes()
    kind = VALID[file]
    guessed = parse_manifest(data, source=file)
    declared = parse_manifest(data, kind, source=file)
    assert guessed == declared
    assert guessed.effective_media_type == kind
    expected_class = Index if kind in (OCI_INDEX, DOCKER_MANIFEST_LIST) else Manifest
    assert isinstance(guessed, expected_class)
    # What we write parses back to the same value.
    assert parse_manifest(guessed.to_json(), source=file) == guessed


@pytest.mark.parametrize("file", SCHEMA1)
@pytest.mark.parametrize("said", [None, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, DOCKER_MANIFEST])
def test_schema1_is_unsupported(file: str, said: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_manifest((FIXTURES / file).read_bytes(), said, source=file)
    assert str(caught.value) == f"{file}: Docker schema 1 manifests are not supported"


@pytest.mark.parametrize("file", sorted(INVALID))
def test_invalid_manifests_are_refused_with_a_reason(file: str) -> None:
    error, reason = INVALID[file]
    with pytest.raises(error) as caught:
        parse_manifest((FIXTURES / file).read_bytes(), source=file)
    message = str(caught.value)
    assert message.startswith(f"{file}: ") and reason in message and "\n" not in message


def test_invalid_mediatype_fixture_differs_from_a_valid_one_only_by_that_layer() -> None:
    # The same document with a real layer type parses: the rejection is about the media type.
    data = (FIXTURES / "manifests-extra/ociv1.invalid.mediatype.manifest.json").read_bytes()
    fixed = data.replace(b"tar+unknown", b"tar+gzip")
    assert isinstance(parse_manifest(fixed, source="fixed"), Manifest)


def test_unknown_version_is_refused_when_declared_too() -> None:
    data = (FIXTURES / "manifests/unknown-version.manifest.json").read_bytes()
    with pytest.raises(FormatError, match=r"^x: schemaVersion: must be 2, not 99999$"):
        parse_manifest(data, OCI_MANIFEST, source="x")


def test_encrypted_layers_parse_but_cannot_be_unpacked() -> None:
    file = "manifests-extra/ociv1.encrypted.manifest.json"
    manifest = parse_manifest((FIXTURES / file).read_bytes(), source=file)
    assert isinstance(manifest, Manifest)
    assert len(manifest.layers) == 3
    for layer in manifest.layers:
        with pytest.raises(UnsupportedMediaType, match="encrypted layers are not supported"):
            layer_compression(layer.media_type)


@pytest.mark.parametrize(
    ("file", "compression"),
    [
        ("manifests-extra/ociv1.nondistributable.manifest.json", "none"),
        ("manifests-extra/ociv1.nondistributable.gzip.manifest.json", "gzip"),
        ("manifests-extra/ociv1.nondistributable.zstd.manifest.json", "zstd"),
        ("manifests-extra/v2s2.nondistributable.manifest.json", "none"),
        ("manifests-extra/v2s2.nondistributable.gzip.manifest.json", "gzip"),
    ],
)
def test_nondistributable_layers(file: str, compression: str) -> None:
    manifest = parse_manifest((FIXTURES / file).read_bytes(), source=file)
    assert isinstance(manifest, Manifest)
    (layer,) = manifest.layers
    assert is_nondistributable(layer.media_type)
    assert layer_compression(layer.media_type) == compression


def test_everything_fixture_keeps_every_field() -> None:
    file = "manifests-extra/ociv1.everything.json"
    m = parse_manifest((FIXTURES / file).read_bytes(), source=file)
    assert isinstance(m, Manifest)
    assert m.artifact_type == "application/our-artifact"
    assert m.config.urls == ("https://some.example/config",)
    assert m.config.data == b"a"
    assert m.layers[0].annotations == {"layer": "2"}
    assert m.subject is not None and m.subject.platform is not None
    assert m.subject.platform.os_features == ("d",)
    assert m.subject.artifact_type == "application/our-subject"
    assert m.annotations == {"top": "0"}


LAYOUT_DIRS = sorted(p for p in LAYOUTS.iterdir() if (p / "index.json").exists())


@pytest.mark.parametrize("layout", LAYOUT_DIRS, ids=[p.name for p in LAYOUT_DIRS])
def test_layout_index_and_header_parse(layout: Path) -> None:
    index = parse_index((layout / "index.json").read_bytes(), f"{layout.name}/index.json")
    assert index.manifests
    header = layout / "oci-layout"
    if header.exists():
        assert parse_layout_header(header.read_bytes(), f"{layout.name}/oci-layout") == "1.0.0"


def test_layout_index_tolerates_an_odd_entry_that_a_strict_parse_refuses() -> None:
    data = (LAYOUTS / "name_lookups" / "index.json").read_bytes()
    index = parse_index(data, "name_lookups/index.json")
    assert [d.media_type for d in index.manifests][-1] == "x-completely-unknown"
    with pytest.raises(FormatError, match=r"manifests\[4\]\.mediaType: .* not a valid media type"):
        parse_manifest(data, OCI_INDEX, source="name_lookups/index.json")


BLOBS = sorted(LAYOUTS.glob("*/**/sha256/*"))


def test_layout_blobs_parse_as_manifests_indexes_or_configs() -> None:
    kinds: dict[str, int] = {}
    for blob in BLOBS:
        data = blob.read_bytes()
        assert Digest.of(data).hex == blob.name
        if not data.startswith(b"{"):
            kinds["layer"] = kinds.get("layer", 0) + 1
            continue
        if b'"schemaVersion"' in data:
            value = parse_manifest(data, source=blob.name)
            kind = type(value).__name__
            assert parse_manifest(value.to_json(), source=blob.name) == value
        else:
            config = parse_config(data, source=blob.name)
            assert parse_config(config.to_json(), source=blob.name) == config
            kind = "config"
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds.keys() == {"Manifest", "Index", "config", "layer"}


def test_legacy_docker_archive_config() -> None:
    with tarfile.open(FIXTURES / "docker-archive-almostempty.tar") as tar:
        member = tar.getmember(
            "9d7f147c0d0c4d4538a04c7ef385809e56eb1aac7bf800fbe976612188025b68.json"
        )
        extracted = tar.extractfile(member)
        assert extracted is not None
        data = extracted.read()
    assert Digest.of(data).hex == member.name.removesuffix(".json")
    config = parse_config(data, source="almostempty")
    assert config.config.env == (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    assert config.config.cmd is None and config.config.labels == {}
    assert config.config.extra["Hostname"] == "2bc2ec52e2d6"
    assert config.extra["docker_version"] == "1.10.3"
    assert "Cmd" in config.extra["container_config"]
    assert config.history[0].created_by is not None
    assert parse_config(config.to_json(), source="again") == config
