"""Manifests and indexes: serialisation, type guessing and the ways a document is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strata.digest import Digest
from strata.errors import FormatError, TooLarge, UnsupportedMediaType
from strata.oci.descriptor import Descriptor, Platform
from strata.oci.manifest import Index, Manifest, parse_manifest
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)

A = Digest.of(b"a")
B = Digest.of(b"b")
C = Digest.of(b"c")


def desc(media_type: str, digest: Digest = A, size: int = 1, **kw: Any) -> Descriptor:
    return Descriptor(media_type, digest, size, **kw)


def oci_manifest(**kw: Any) -> Manifest:
    fields: dict[str, Any] = {
        "media_type": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, A, 10),
        "layers": (desc(OCI_LAYER_GZIP, B, 20), desc(OCI_LAYER_ZSTD, C, 30)),
    }
    fields.update(kw)
    return Manifest(**fields)


def doc(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def raw_manifest(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(oci_manifest().to_json())
    out.update(kw)
    return {k: v for k, v in out.items() if v is not ...}


FULL = oci_manifest(
    artifact_type="application/vnd.example+type",
    annotations={"b": "2", "a": "1"},
    subject=desc(OCI_MANIFEST, C, 5, annotations={"k": "v"}),
    layers=(
        desc(
            OCI_LAYER_GZIP,
            B,
            20,
            urls=("https://example.com/x",),
            annotations={"x": "y"},
            data=b"ab",
            platform=Platform("arm", "linux", "v7", "1", ("f",), ()),
            artifact_type="application/x-y",
        ),
    ),
)


def test_manifest_json_is_compact_with_a_fixed_key_order() -> None:
    out = FULL.to_json()
    assert b" " not in out and b"\n" not in out
    assert list(json.loads(out)) == [
        "schemaVersion",
        "mediaType",
        "artifactType",
        "config",
        "layers",
        "subject",
        "annotations",
    ]
    layer = json.loads(out)["layers"][0]
    assert list(layer) == [
        "mediaType",
        "digest",
        "size",
        "urls",
        "annotations",
        "data",
        "platform",
        "artifactType",
    ]
    assert layer["data"] == "YWI="
    assert list(layer["platform"]) == ["architecture", "os", "os.version", "os.features", "variant"]
    assert list(json.loads(out)["annotations"]) == ["a", "b"]


def test_minimal_manifest_json() -> None:
    m = Manifest(media_type=OCI_MANIFEST, config=desc(OCI_CONFIG), layers=(desc(OCI_LAYER_GZIP),))
    assert m.to_json() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'
        + str(A).encode()
        + b'","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",'
        b'"digest":"' + str(A).encode() + b'","size":1}]}'
    )


@pytest.mark.parametrize(
    "value",
    [
        FULL,
        oci_manifest(),
        oci_manifest(media_type=None),
        Manifest(
            media_type=DOCKER_MANIFEST,
            config=desc(DOCKER_CONFIG),
            layers=(desc(DOCKER_LAYER_GZIP, B, 3),),
        ),
        Manifest(media_type=None, config=desc(DOCKER_CONFIG), layers=()),
        Index(media_type=OCI_INDEX, manifests=()),
        Index(
            media_type=OCI_INDEX,
            manifests=(
                desc(OCI_MANIFEST, A, 1, platform=Platform("amd64", "linux")),
                desc(OCI_INDEX, B, 2, annotations={"org.opencontainers.image.ref.name": "1"}),
            ),
            annotations={"a": "b"},
            subject=desc(OCI_MANIFEST, C, 3),
            artifact_type="application/vnd.example+type",
        ),
        Index(media_type=None, manifests=(desc(OCI_MANIFEST),)),
        Index(media_type=DOCKER_MANIFEST_LIST, manifests=(desc(DOCKER_MANIFEST),)),
    ],
)
def test_round_trip(value: Manifest | Index) -> None:
    assert parse_manifest(value.to_json(), source="x") == value
    assert parse_manifest(value.to_json(), value.effective_media_type, source="x") == value


def test_empty_annotations_are_none() -> None:
    assert oci_manifest(annotations={}) == oci_manifest()
    assert desc(OCI_CONFIG, annotations={}).annotations is None


def test_effective_media_type() -> None:
    assert oci_manifest(media_type=None).effective_media_type == OCI_MANIFEST
    docker = Manifest(media_type=None, config=desc(DOCKER_CONFIG))
    assert docker.effective_media_type == DOCKER_MANIFEST
    assert Index(media_type=None).effective_media_type == OCI_INDEX


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (raw_manifest(mediaType=...), Manifest),
        (
            raw_manifest(
                mediaType=...,
                config={"mediaType": "application/x.custom", "digest": str(A), "size": 1},
            ),
            Manifest,
        ),
        ({"schemaVersion": 2, "manifests": []}, Index),
        (
            {
                "schemaVersion": 2,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": str(A), "size": 1}],
            },
            Index,
        ),
    ],
)
def test_guessing(value: dict[str, Any], kind: type) -> None:
    assert isinstance(parse_manifest(doc(value), source="x"), kind)


@pytest.mark.parametrize(
    "generic", ["application/json", "text/plain", "application/octet-stream", ""]
)
def test_generic_content_types_mean_guess(generic: str) -> None:
    assert parse_manifest(oci_manifest().to_json(), generic, source="x") == oci_manifest()


def test_content_type_parameters_are_ignored() -> None:
    said = OCI_MANIFEST + "; charset=utf-8"
    assert parse_manifest(oci_manifest().to_json(), said, source="x") == oci_manifest()


def refused(
    data: bytes, said: str | None = None, error: type[Exception] = FormatError, **kw: Any
) -> str:
    with pytest.raises(error) as caught:
        parse_manifest(data, said, source="manifest sha256:ab12", **kw)
    message = str(caught.value)
    assert message.startswith("manifest sha256:ab12: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("value", "said", "reason"),
    [
        (raw_manifest(schemaVersion=3), None, "schemaVersion: must be 2, not 3"),
        (raw_manifest(schemaVersion="2"), None, "schemaVersion: must be an integer, not string"),
        (raw_manifest(schemaVersion=...), None, "schemaVersion: missing"),
        (raw_manifest(config=...), None, "config: missing"),
        (raw_manifest(config=None), None, "config: missing"),
        (raw_manifest(layers=...), None, "layers: missing"),
        (raw_manifest(layers={}), None, "layers: must be an array, not object"),
        (raw_manifest(layers=[]), None, "layers: must list at least one layer"),
        (raw_manifest(layers=[1]), None, "layers[0]: must be an object, not number"),
        (
            raw_manifest(annotations={"a": 1}),
            None,
            "annotations['a']: must be a string, not number",
        ),
        (raw_manifest(annotations=[]), None, "annotations: must be an object, not array"),
        (raw_manifest(artifactType="nope"), None, "artifactType: 'nope' is not a valid media type"),
        (raw_manifest(subject={"mediaType": OCI_MANIFEST}), None, "subject.digest: missing"),
        (raw_manifest(mediaType=OCI_INDEX), OCI_MANIFEST, "mediaType: the document says"),
        (raw_manifest(mediaType=1), None, "mediaType: must be a string, not number"),
        (raw_manifest(manifests=[]), None, "manifests: unexpected field in a"),
        (raw_manifest(mediaType=..., Manifests=[]), OCI_MANIFEST, "Manifests: unexpected field"),
        (raw_manifest(mediaType=..., fsLayers=[]), OCI_MANIFEST, "fsLayers: unexpected field"),
        (
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "layers": []},
            None,
            "layers: unexpected field",
        ),
        ({"schemaVersion": 2, "mediaType": OCI_INDEX}, None, "manifests: missing"),
        (
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}},
            None,
            "manifests: must be an array",
        ),
        (
            raw_manifest(config={"mediaType": OCI_CONFIG, "digest": str(A), "size": 1.0}),
            None,
            "config.size: must be an integer, not number",
        ),
        (
            raw_manifest(config={"mediaType": OCI_CONFIG, "digest": str(A), "size": True}),
            None,
            "config.size: must be an integer, not boolean",
        ),
        (
            raw_manifest(config={"mediaType": OCI_CONFIG, "digest": str(A), "size": 2**63}),
            None,
            "config.size: must be a non-negative integer",
        ),
        (
            raw_manifest(config={"mediaType": OCI_CONFIG, "digest": "sha256:abc", "size": 1}),
            None,
            "config.digest: invalid digest 'sha256:abc'",
        ),
    ],
)
def test_refused(value: dict[str, Any], said: str | None, reason: str) -> None:
    assert reason in refused(doc(value), said)


def test_the_message_names_source_and_field_path() -> None:
    value = raw_manifest()
    value["layers"][1]["size"] = -1
    message = refused(doc(value))
    assert message == "manifest sha256:ab12: layers[1].size: must be a non-negative integer"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON: Expecting value (line 1 column 1)"),
        (b"[]", "must be a JSON object, not array"),
        (b"\xff\xfe{}", "not valid JSON: not UTF-8 at byte 0"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_bad_json(data: bytes, reason: str) -> None:
    assert reason in refused(data)


def test_too_large() -> None:
    data = oci_manifest().to_json()
    padded = data[:-1] + b"," + b'"x":"' + b"a" * MAX_MANIFEST_SIZE + b'"}'
    message = refused(padded, error=TooLarge)
    assert f"over the {MAX_MANIFEST_SIZE}-byte limit" in message


@pytest.mark.parametrize(
    ("said", "error", "reason"),
    [
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            UnsupportedMediaType,
            "Docker schema 1 manifests are not supported",
        ),
        (
            "application/vnd.example+json",
            UnsupportedMediaType,
            "unsupported manifest media type 'application/vnd.example+json'",
        ),
        (DOCKER_MANIFEST, FormatError, "mediaType: the document says"),
    ],
)
def test_said_media_type(said: str, error: type[Exception], reason: str) -> None:
    assert reason in refused(oci_manifest().to_json(), said, error)


def test_unknown_declared_media_type() -> None:
    data = doc(raw_manifest(mediaType="application/vnd.example.manifest+json"))
    assert "mediaType: unsupported manifest media type" in refused(data, error=UnsupportedMediaType)


def test_a_document_without_type_or_version_cannot_be_guessed() -> None:
    message = refused(b"{}", error=UnsupportedMediaType)
    assert "cannot tell what kind of manifest this is" in message
    assert "schemaVersion: missing" in refused(b"{}", OCI_MANIFEST)


def test_empty_layers() -> None:
    data = oci_manifest(layers=()).to_json()
    refused(data)
    parsed = parse_manifest(data, source="x", allow_empty_layers=True)
    assert isinstance(parsed, Manifest) and parsed.layers == ()
    # Docker schema 2 has no such rule: FROM scratch images have no layers.
    docker = Manifest(media_type=DOCKER_MANIFEST, config=desc(DOCKER_CONFIG), layers=())
    assert parse_manifest(docker.to_json(), source="x") == docker


def test_layer_media_types() -> None:
    # OCI manifests may carry artifacts of any type...
    artifact = oci_manifest(
        layers=(desc("application/vnd.example.data+type"),), config=desc(OCI_EMPTY)
    )
    assert parse_manifest(artifact.to_json(), source="x") == artifact
    # ...but an unregistered member of a layer family is a mistake.
    for bad in (
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "application/vnd.docker.image.rootfs.diff.tar.xz",
    ):
        data = oci_manifest(layers=(desc(bad),)).to_json()
        assert "layers[0].mediaType: unknown layer media type" in refused(
            data, error=UnsupportedMediaType
        )
    # Docker schema 2 has no artifacts at all.
    docker = Manifest(
        media_type=DOCKER_MANIFEST, config=desc(DOCKER_CONFIG), layers=(desc("application/x.y"),)
    )
    message = refused(docker.to_json(), error=UnsupportedMediaType)
    assert "layers[0].mediaType: 'application/x.y' is not a Docker schema 2 layer type" in message


def test_unknown_fields_are_ignored() -> None:
    data = doc(raw_manifest(futureField={"x": 1}))
    assert parse_manifest(data, source="x") == oci_manifest()


def test_null_optional_fields_count_as_absent() -> None:
    data = doc(raw_manifest(annotations=None, subject=None, artifactType=None))
    assert parse_manifest(data, source="x") == oci_manifest()
