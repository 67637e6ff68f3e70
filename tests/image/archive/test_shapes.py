"""The archive shapes in the wild, image names from annotations, and platform selection."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import NotFound
from strata.image.archive import ArchiveFormat, read_archive, write_archive
from strata.image.archive.ocilayout import choose_platform_manifest, names_from_annotations
from strata.layer.compression import Compression
from strata.oci.config import ImageConfig, RootFS
from strata.oci.descriptor import Descriptor, Platform
from strata.oci.mediatypes import OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from tests.image.archive.builders import (
    Built,
    build_image,
    compress,
    link,
    random_files,
    tar_bytes,
)


@pytest.fixture
def dst(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "dst")


def config_json(diff_ids: list[Digest]) -> bytes:
    here = Platform.current()
    return ImageConfig(
        here.architecture, here.os, rootfs=RootFS("layers", tuple(diff_ids))
    ).to_json()


def test_legacy_layout_with_symlinked_duplicate_layers(dst: LocalContentStore) -> None:
    l1, l2, l3 = (tar_bytes([(f"f{i}", bytes([i]) * 700)]) for i in range(3))
    d1, d2, d3 = (Digest.of(x) for x in (l1, l2, l3))
    ca, cb = config_json([d1, d2]), config_json([d1, d3])
    manifest = [
        {
            "Config": f"{Digest.of(ca).hex}.json",
            "RepoTags": ["a:1"],
            "Layers": ["i1/layer.tar", "i2/layer.tar"],
        },
        {
            "Config": f"{Digest.of(cb).hex}.json",
            "RepoTags": ["b:1", "b:2"],
            "Layers": ["i3/layer.tar", "i4/layer.tar"],
        },
    ]
    members: list[tuple[str, bytes | tarfile.TarInfo]] = [
        ("i1/VERSION", b"1.0"),
        ("i1/json", b'{"id":"i1"}'),
        ("i1/layer.tar", l1),
        ("i2/layer.tar", l2),
        link("i3/layer.tar", "../i1/layer.tar"),
        ("i4/layer.tar", l3),
        (f"{Digest.of(ca).hex}.json", ca),
        (f"{Digest.of(cb).hex}.json", cb),
        ("manifest.json", json.dumps(manifest).encode()),
        ("repositories", b'{"a":{"1":"i2"}}'),
    ]
    a, b = read_archive(io.BytesIO(tar_bytes(members)), dst, name="legacy.tar")
    assert a.names == ("docker.io/library/a:1",)
    assert b.names == ("docker.io/library/b:1", "docker.io/library/b:2")
    assert [x.diff_id for x in a.layers] == [d1, d2]
    assert [x.blob for x in b.layers] == [d1, d3]
    assert all(x.media_type == OCI_LAYER for x in a.layers + b.layers)
    assert a.config_digest == Digest.of(ca)
    assert {i.digest for i in dst.walk()} >= {d1, d2, d3, a.manifest_digest, b.manifest_digest}


def test_skopeo_layout_with_compressed_layer(dst: LocalContentStore) -> None:
    layer = tar_bytes([("hello", b"hello world\n" * 100)])
    blob = compress(layer, Compression.GZIP)
    config = config_json([Digest.of(layer)])
    manifest = [
        {
            "Config": f"{Digest.of(config).hex}.json",
            "RepoTags": ["docker.io/library/hello:v1"],
            "Layers": [f"{Digest.of(blob).hex}.tar"],
        }
    ]
    members = [
        (f"{Digest.of(blob).hex}.tar", blob),
        (f"{Digest.of(config).hex}.json", config),
        ("manifest.json", json.dumps(manifest).encode()),
    ]
    (image,) = read_archive(io.BytesIO(tar_bytes(members)), dst, name="skopeo.tar")
    assert image.names == ("docker.io/library/hello:v1",)
    (loaded,) = image.layers
    assert loaded.media_type == OCI_LAYER_GZIP
    assert (loaded.blob, loaded.diff_id, loaded.size) == (
        Digest.of(blob),
        Digest.of(layer),
        len(layer),
    )


def layout_members(images: list[Built], src: LocalContentStore) -> dict[str, bytes]:
    out: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    for built in images:
        for digest in built.blobs:
            out[f"blobs/sha256/{digest.hex}"] = src.read_bytes(digest, limit=1 << 30)
    return out


@pytest.fixture
def built(tmp_path: Path) -> tuple[Built, LocalContentStore]:
    src = LocalContentStore(tmp_path / "src")
    return build_image(src, tmp_path, layers=[random_files(4)]), src


def test_docker_25_archive_merges_names_of_index_and_manifest_json(
    built: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    image, src = built
    out = io.BytesIO()
    write_archive(out, [image.save], src, format=ArchiveFormat.DOCKER)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {i.name: tar.extractfile(i).read() for i in tar if i.isreg()}  # type: ignore[union-attr]
    entry = json.loads(members["manifest.json"])
    entry[0]["RepoTags"] = ["extra:1"]
    members["manifest.json"] = json.dumps(entry).encode()
    index = json.loads(members["index.json"])
    index["manifests"][0]["annotations"] = {"io.containerd.image.name": "docker.io/library/x:1"}
    members["index.json"] = json.dumps(index).encode()
    (loaded,) = read_archive(io.BytesIO(tar_bytes(members.items())), dst, name="d25.tar")
    # The OCI manifest the index points to is used as is, not a synthesised one.
    assert loaded.manifest_digest == image.save.manifest_digest
    assert loaded.names == ("docker.io/library/x:1", "docker.io/library/extra:1")


def nested(
    image: Built, platforms: list[Platform], annotations: dict[str, str] | None = None
) -> tuple[bytes, dict[str, bytes]]:
    """An index listing ``image`` under each platform, and an index.json pointing at it."""
    children = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": str(
                image.save.manifest_digest if i == len(platforms) - 1 else Digest.of(b"%d" % i)
            ),
            "size": len(image.save.manifest.to_json()) if i == len(platforms) - 1 else 2,
            "platform": p.to_dict(),
        }
        for i, p in enumerate(platforms)
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    top = {"mediaType": OCI_INDEX, "digest": str(Digest.of(index)), "size": len(index)}
    if annotations:
        top["annotations"] = annotations
    index_json = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
    return index_json, {f"blobs/sha256/{Digest.of(index).hex}": index}


def test_nested_index_gives_this_platforms_manifest(
    built: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    image, src = built
    other = Platform("s390x", "linux")
    index_json, extra = nested(
        image, [other, Platform.current()], {"org.opencontainers.image.ref.name": "multi:1"}
    )
    members = {**layout_members([image], src), **extra, "index.json": index_json}
    (loaded,) = read_archive(io.BytesIO(tar_bytes(members.items())), dst, name="multi.tar")
    assert loaded.manifest_digest == image.save.manifest_digest
    assert loaded.names == ("docker.io/library/multi:1",)


def test_nested_index_without_this_platform(
    built: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    image, src = built
    index_json, extra = nested(image, [Platform("s390x", "linux"), Platform("riscv64", "linux")])
    members = {**layout_members([image], src), **extra, "index.json": index_json}
    with pytest.raises(NotFound) as caught:
        read_archive(io.BytesIO(tar_bytes(members.items())), dst, name="multi.tar")
    message = str(caught.value)
    assert message.startswith("multi.tar:")
    assert "linux/s390x" in message and "linux/riscv64" in message
    assert str(Platform.current()) in message


def test_top_level_descriptor_for_another_platform_is_skipped(
    built: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    image, src = built
    desc = {
        "mediaType": OCI_MANIFEST,
        "digest": str(image.save.manifest_digest),
        "size": len(src.read_bytes(image.save.manifest_digest, limit=1 << 20)),
    }
    foreign = {
        **desc,
        "digest": str(Digest.of(b"x")),
        "platform": {"architecture": "s390x", "os": "linux"},
    }
    mine = {**desc, "annotations": {"org.opencontainers.image.ref.name": "example.com/ok"}}
    index_json = json.dumps({"schemaVersion": 2, "manifests": [foreign, mine]}).encode()
    members = {**layout_members([image], src), "index.json": index_json}
    (loaded,) = read_archive(io.BytesIO(tar_bytes(members.items())), dst, name="t.tar")
    assert loaded.names == ("example.com/ok:latest",)
    only_foreign = json.dumps({"schemaVersion": 2, "manifests": [foreign]}).encode()
    members["index.json"] = only_foreign
    with pytest.raises(NotFound, match="linux/s390x"):
        read_archive(io.BytesIO(tar_bytes(members.items())), dst, name="t.tar")


@pytest.mark.parametrize(
    ("annotations", "names"),
    [
        (None, ()),
        ({"org.opencontainers.image.ref.name": "latest"}, ()),
        ({"org.opencontainers.image.ref.name": "3.18"}, ()),
        (
            {"org.opencontainers.image.ref.name": "debian:bookworm"},
            ("docker.io/library/debian:bookworm",),
        ),
        ({"org.opencontainers.image.ref.name": "quay.io/a/b"}, ("quay.io/a/b:latest",)),
        ({"org.opencontainers.image.ref.name": "localhost:5000/x"}, ("localhost:5000/x:latest",)),
        ({"org.opencontainers.image.ref.name": "Bad:Name:x"}, ()),
        ({"org.opencontainers.image.ref.name": "a@sha256:" + "0" * 64}, ()),
        (
            {"org.opencontainers.image.ref.name": "a:1@sha256:" + "0" * 64},
            ("docker.io/library/a:1",),
        ),
        (
            {
                "io.containerd.image.name": "docker.io/library/debian:bookworm",
                "org.opencontainers.image.ref.name": "bookworm",
            },
            ("docker.io/library/debian:bookworm",),
        ),
        (
            {
                "io.containerd.image.name": "not a name",
                "org.opencontainers.image.ref.name": "x/y:2",
            },
            ("docker.io/x/y:2",),
        ),
    ],
)
def test_names_from_annotations(annotations: dict[str, str] | None, names: tuple[str, ...]) -> None:
    assert names_from_annotations(annotations) == names


def test_choose_platform_manifest() -> None:
    d = Digest.of(b"")
    arm7 = Descriptor(OCI_MANIFEST, d, 1, platform=Platform("arm", "linux", "v7"))
    arm6 = Descriptor(OCI_MANIFEST, d, 2, platform=Platform("arm", "linux", "v6"))
    bare = Descriptor(OCI_MANIFEST, d, 3)
    arm64 = Descriptor(OCI_MANIFEST, d, 4, platform=Platform("arm64", "linux", "v8"))
    assert choose_platform_manifest((arm6, arm7), Platform("arm", "linux", "v7")) is arm7
    assert choose_platform_manifest((bare, arm64), Platform("arm64", "linux")) is arm64
    assert choose_platform_manifest((bare, arm6), Platform("arm64", "linux")) is bare
    assert choose_platform_manifest((arm6,), Platform("amd64", "linux")) is None
