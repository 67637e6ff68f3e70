"""What strata writes, skopeo and umoci read; what skopeo writes, strata reads."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.image.archive import ArchiveFormat, LoadedImage, read_archive, write_archive
from strata.oci.mediatypes import OCI_LAYER_ZSTD
from tests.image.archive.builders import Built, build_image, random_files, untar

pytestmark = pytest.mark.peers


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def src(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "src")


@pytest.fixture
def images(src: LocalContentStore, tmp_path: Path) -> list[Built]:
    base = random_files(11)
    return [
        build_image(src, tmp_path, names=["debian:bookworm"], layers=[base, random_files(12)]),
        build_image(src, tmp_path, names=["example.com/app:2"], layers=[base], cmd=("/app",)),
    ]


def save(images: list[Built], src: LocalContentStore, fmt: ArchiveFormat, path: Path) -> Path:
    with open(path, "wb") as out:
        write_archive(out, [b.save for b in images], src, format=fmt)
    return path


def check(loaded: LoadedImage, built: Built, names: tuple[str, ...]) -> None:
    assert loaded.names == names
    assert tuple(layer.diff_id for layer in loaded.layers) == built.diff_ids
    assert loaded.config.config == built.save.config.config
    assert loaded.config.rootfs == built.save.config.rootfs


def test_skopeo_reads_our_docker_archive(
    images: list[Built], src: LocalContentStore, tmp_path: Path
) -> None:
    archive = save(images, src, ArchiveFormat.DOCKER, tmp_path / "d.tar")
    for built, name in zip(images, ["debian:bookworm", "example.com/app:2"], strict=True):
        doc = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}:{name}"))
        assert doc["Layers"] == [str(d) for d in built.diff_ids]
        config = json.loads(
            run("skopeo", "inspect", "--config", f"docker-archive:{archive}:{name}")
        )
        assert config["rootfs"]["diff_ids"] == [str(d) for d in built.diff_ids]
    # A single-image archive needs no name to pick the image.
    single = save(images[:1], src, ArchiveFormat.DOCKER, tmp_path / "single.tar")
    doc = json.loads(run("skopeo", "inspect", f"docker-archive:{single}"))
    assert doc["Layers"] == [str(d) for d in images[0].diff_ids]
    out = tmp_path / "oci-out"
    run("skopeo", "copy", f"docker-archive:{single}", f"oci:{out}:x")
    (loaded,) = read_archive(out, LocalContentStore(tmp_path / "dst"), name=str(out))
    check(loaded, images[0], ())


def test_skopeo_reads_our_oci_archive(
    images: list[Built], src: LocalContentStore, tmp_path: Path
) -> None:
    archive = save(images, src, ArchiveFormat.OCI, tmp_path / "o.tar")
    for built in images:
        ref = f"oci-archive:{archive}:{built.save.names[0]}"
        doc = json.loads(run("skopeo", "inspect", "--raw", ref))
        assert doc == json.loads(src.read_bytes(built.save.manifest_digest, limit=1 << 20))
        run("skopeo", "inspect", ref)
    out = tmp_path / "dir-out"
    run("skopeo", "copy", f"oci-archive:{archive}:{images[1].save.names[0]}", f"dir:{out}")
    raw = (out / "manifest.json").read_bytes()
    assert raw == src.read_bytes(images[1].save.manifest_digest, limit=1 << 20)
    for layer in images[1].save.manifest.layers:
        assert (out / layer.digest.hex).stat().st_size == layer.size


@pytest.mark.root
def test_umoci_unpacks_our_oci_archive(
    images: list[Built], src: LocalContentStore, tmp_path: Path
) -> None:
    archive = save(images, src, ArchiveFormat.OCI, tmp_path / "o.tar")
    layout = untar(archive.read_bytes(), tmp_path / "layout")
    bundle = tmp_path / "bundle"
    built = images[0]
    run("umoci", "unpack", "--image", f"{layout}:{built.save.names[0]}", str(bundle))
    for files in built.layer_files:
        for name, data in files.items():
            assert (bundle / "rootfs" / name).read_bytes() == data
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/sh"]


@pytest.fixture
def our_layout(images: list[Built], src: LocalContentStore, tmp_path: Path) -> Path:
    return untar(
        save(images, src, ArchiveFormat.OCI, tmp_path / "o.tar").read_bytes(), tmp_path / "ours"
    )


def test_we_read_skopeos_docker_archive(
    images: list[Built], our_layout: Path, tmp_path: Path
) -> None:
    # skopeo's docker-archive always holds uncompressed layers (--dest-compress is ignored).
    built = images[0]
    archive = tmp_path / "s.tar"
    run(
        "skopeo",
        "copy",
        f"oci:{our_layout}:{built.save.names[0]}",
        f"docker-archive:{archive}:mine:v1",
    )
    dst = LocalContentStore(tmp_path / "dst")
    (loaded,) = read_archive(archive, dst, name=str(archive))
    check(loaded, built, ("docker.io/library/mine:v1",))
    # The same archive read as a one-pass stream.
    with open(archive, "rb") as f:
        (again,) = read_archive(io.BufferedReader(io.FileIO(os.dup(f.fileno()))), dst, name="-")
    assert again.manifest_digest == loaded.manifest_digest


@pytest.mark.parametrize(
    "compress",
    [[], ["--dest-compress-format", "zstd"], ["--dest-compress-format", "gzip"]],
    ids=["as-is", "zstd", "gzip"],
)
def test_we_read_skopeos_oci_archive(
    compress: list[str], images: list[Built], our_layout: Path, tmp_path: Path
) -> None:
    built = images[1]
    archive = tmp_path / "s.tar"
    run(
        "skopeo",
        "copy",
        *compress,
        f"oci:{our_layout}:{built.save.names[0]}",
        f"oci-archive:{archive}:quay.io/x/y:3",
    )
    (loaded,) = read_archive(archive, LocalContentStore(tmp_path / "dst"), name=str(archive))
    check(loaded, built, ("quay.io/x/y:3",))
    if "zstd" in compress:
        assert {layer.media_type for layer in loaded.layers} == {OCI_LAYER_ZSTD}


def test_we_read_skopeos_oci_layout_directory(
    images: list[Built], our_layout: Path, tmp_path: Path
) -> None:
    out = tmp_path / "layout2"
    for built, tag in zip(images, ["one", "two:2"], strict=True):
        run("skopeo", "copy", f"oci:{our_layout}:{built.save.names[0]}", f"oci:{out}:{tag}")
    first, second = read_archive(out, LocalContentStore(tmp_path / "dst"), name=str(out))
    # "one" is a bare tag: no name; "two:2" is a full reference.
    check(first, images[0], ())
    check(second, images[1], ("docker.io/library/two:2",))
