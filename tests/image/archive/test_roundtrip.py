"""save -> load in both formats, from files, directories, compressed files and one-way streams."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.image.archive import ArchiveFormat, LoadedImage, read_archive, write_archive
from strata.image.archive.diffid import MIN_THREADED_SIZE
from strata.layer.compression import Compression
from strata.oci.mediatypes import OCI_LAYER
from tests.image.archive.builders import (
    Built,
    OneWayStream,
    build_image,
    compress,
    random_files,
    tar_members,
    untar,
)

FORMATS = [ArchiveFormat.DOCKER, ArchiveFormat.OCI]


@pytest.fixture
def src(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "src")


@pytest.fixture
def dst(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "dst")


@pytest.fixture
def two_images(src: LocalContentStore, tmp_path: Path) -> list[Built]:
    """Two images sharing their base layer, one with two names."""
    base = random_files(1)
    a = build_image(src, tmp_path, names=["debian:bookworm"], layers=[base, random_files(2)])
    b = build_image(
        src,
        tmp_path,
        names=["localhost:5000/team/app:v1", "example.com/app"],
        layers=[base, random_files(3)],
        compression=Compression.GZIP,
        cmd=("/app",),
    )
    return [a, b]


def save(images: list[Built], content: LocalContentStore, fmt: ArchiveFormat) -> bytes:
    out = io.BytesIO()
    write_archive(out, [b.save for b in images], content, format=fmt)
    return out.getvalue()


def check_loaded(loaded: list[LoadedImage], images: list[Built], dst: LocalContentStore) -> None:
    assert [img.manifest_digest for img in loaded] == [b.save.manifest_digest for b in images]
    for img, built in zip(loaded, images, strict=True):
        assert img.names == built.save.names
        assert img.config_digest == built.config_digest
        assert img.config == built.save.config
        assert img.manifest == built.save.manifest
        assert tuple(layer.diff_id for layer in img.layers) == built.diff_ids
        assert [layer.blob for layer in img.layers] == [
            d.digest for d in built.save.manifest.layers
        ]
        for layer, files in zip(img.layers, built.layer_files, strict=True):
            # A deterministic tar of the files: data plus headers, so more than the data alone.
            assert layer.size > sum(len(d) for d in files.values())
        for digest in built.blobs:
            dst.verify(digest)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_images_names_and_shares_layers(
    fmt: ArchiveFormat, src: LocalContentStore, dst: LocalContentStore, two_images: list[Built]
) -> None:
    data = save(two_images, src, fmt)
    members = tar_members(data)
    blobs = [m for m in members if m.startswith("blobs/sha256/") and len(m) > 20]
    # 2 manifests + 2 configs + 3 distinct layers: the shared base layer is written once.
    assert len(blobs) == len(set(blobs)) == 7
    expected_meta = {"oci-layout", "index.json"}
    if fmt is ArchiveFormat.DOCKER:
        expected_meta |= {"manifest.json", "repositories"}
    assert expected_meta <= set(members)
    assert {m for m in members if not m.startswith("blobs")} == expected_meta
    loaded = read_archive(io.BytesIO(data), dst, name="test.tar")
    check_loaded(loaded, two_images, dst)


def test_docker_archive_metadata_is_what_docker_writes(
    src: LocalContentStore, tmp_path: Path, two_images: list[Built]
) -> None:
    root = untar(save(two_images, src, ArchiveFormat.DOCKER), tmp_path / "x")
    manifest = json.loads((root / "manifest.json").read_text())
    a, b = two_images
    assert manifest[0] == {
        "Config": f"blobs/sha256/{a.config_digest.hex}",
        "RepoTags": ["debian:bookworm"],
        "Layers": [f"blobs/sha256/{d.digest.hex}" for d in a.save.manifest.layers],
    }
    assert manifest[1]["RepoTags"] == ["localhost:5000/team/app:v1", "example.com/app:latest"]
    repos = json.loads((root / "repositories").read_text())
    top = a.save.manifest.layers[-1].digest.hex
    assert repos["debian"] == {"bookworm": top}
    index = json.loads((root / "index.json").read_text())
    first = index["manifests"][0]
    assert first["digest"] == str(a.save.manifest_digest)
    assert first["annotations"] == {
        "io.containerd.image.name": "docker.io/library/debian:bookworm",
        "org.opencontainers.image.ref.name": "bookworm",
    }
    assert len(index["manifests"]) == 3  # one per name
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_unnamed_image_gets_one_plain_descriptor(
    src: LocalContentStore, dst: LocalContentStore, tmp_path: Path
) -> None:
    image = build_image(src, tmp_path, layers=[random_files(5)])
    data = save([image], src, ArchiveFormat.OCI)
    index = json.loads(untar(data, tmp_path / "x").joinpath("index.json").read_text())
    assert len(index["manifests"]) == 1
    assert "annotations" not in index["manifests"][0]
    loaded = read_archive(io.BytesIO(data), dst, name="x.tar")
    assert loaded[0].names == ()


def test_archive_bytes_are_deterministic(src: LocalContentStore, two_images: list[Built]) -> None:
    for fmt in FORMATS:
        assert save(two_images, src, fmt) == save(two_images, src, fmt)
    data = save(two_images, src, ArchiveFormat.DOCKER)
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
            assert info.mode == (0o755 if info.isdir() else 0o644)


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD, Compression.XZ])
def test_compressed_archive_loads(
    compression: Compression,
    src: LocalContentStore,
    dst: LocalContentStore,
    tmp_path: Path,
    two_images: list[Built],
) -> None:
    path = tmp_path / "archive.tar.x"
    path.write_bytes(compress(save(two_images, src, ArchiveFormat.OCI), compression))
    check_loaded(read_archive(path, dst, name=str(path)), two_images, dst)


def test_one_way_stream_loads(
    src: LocalContentStore, dst: LocalContentStore, two_images: list[Built]
) -> None:
    data = compress(save(two_images, src, ArchiveFormat.DOCKER), Compression.GZIP)
    stream = io.BufferedReader(OneWayStream(data))
    check_loaded(read_archive(stream, dst, name="-"), two_images, dst)


@pytest.mark.parametrize("fmt", FORMATS)
def test_directory_loads(
    fmt: ArchiveFormat,
    src: LocalContentStore,
    dst: LocalContentStore,
    tmp_path: Path,
    two_images: list[Built],
) -> None:
    root = untar(save(two_images, src, fmt), tmp_path / "layout")
    check_loaded(read_archive(root, dst, name=str(root)), two_images, dst)


def test_uncompressed_layers_round_trip(
    src: LocalContentStore, dst: LocalContentStore, tmp_path: Path
) -> None:
    image = build_image(
        src, tmp_path, names=["plain:1"], layers=[random_files(7)], compression=Compression.NONE
    )
    loaded = read_archive(io.BytesIO(save([image], src, ArchiveFormat.DOCKER)), dst, name="p")
    (layer,) = loaded[0].layers
    assert layer.media_type == OCI_LAYER
    assert layer.diff_id == layer.blob == image.diff_ids[0]


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_big_compressed_layers_get_diff_ids_while_streaming(
    compression: Compression, src: LocalContentStore, dst: LocalContentStore, tmp_path: Path
) -> None:
    # Over MIN_THREADED_SIZE compressed, so the diff ID is computed on the worker thread.
    big = random_files(20, count=2, size=MIN_THREADED_SIZE)
    images = [
        build_image(
            src, tmp_path, names=[f"big:{i}"], layers=[big], compression=compression, cmd=(str(i),)
        )
        for i in range(2)
    ]
    for fmt in FORMATS:
        data = save(images, src, fmt)
        check_loaded(read_archive(io.BytesIO(data), dst, name="big.tar"), images, dst)
        root = untar(data, tmp_path / f"dir-{fmt.value}")
        check_loaded(read_archive(root, dst, name="big"), images, dst)


def test_on_blob_comes_before_each_blob_is_stored(
    src: LocalContentStore, dst: LocalContentStore, two_images: list[Built]
) -> None:
    data = save(two_images, src, ArchiveFormat.OCI)
    seen: list[tuple[Digest, bool]] = []
    read_archive(io.BytesIO(data), dst, name="t", on_blob=lambda d: seen.append((d, dst.exists(d))))
    registered = {d for d, _ in seen}
    assert all(not present for _, present in seen)
    assert set().union(*(b.blobs for b in two_images)) <= registered
    # A second load finds every blob present, and still registers each before using it.
    again: list[Digest] = []
    inodes = {d: dst.path(d).stat().st_ino for d in registered}
    read_archive(io.BytesIO(data), dst, name="t", on_blob=again.append)
    assert registered <= set(again)
    assert {d: dst.path(d).stat().st_ino for d in registered} == inodes  # not rewritten


def test_empty_image_list_round_trips(src: LocalContentStore, dst: LocalContentStore) -> None:
    for fmt in FORMATS:
        assert read_archive(io.BytesIO(save([], src, fmt)), dst, name="e") == []
