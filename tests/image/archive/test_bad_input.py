"""Hostile and broken archives: each is refused with one line naming the input and the reason."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    SizeMismatch,
    StrataError,
    TooLarge,
    UnsafePath,
    UnsupportedMediaType,
)
from strata.image.archive import ArchiveFormat, read_archive, write_archive
from strata.image.archive.diffid import MIN_THREADED_SIZE
from strata.layer.compression import Compression
from strata.oci.manifest import Manifest, parse_manifest
from tests.image.archive.builders import (
    Built,
    build_image,
    compress,
    link,
    random_files,
    tar_bytes,
    untar,
)

NAME = "bad.tar"


@pytest.fixture
def dst(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "dst")


@pytest.fixture
def image(tmp_path: Path) -> tuple[Built, LocalContentStore]:
    src = LocalContentStore(tmp_path / "src")
    return build_image(src, tmp_path, names=["bad:1"], layers=[random_files(9)]), src


def archive(image: tuple[Built, LocalContentStore], fmt: ArchiveFormat) -> dict[str, bytes]:
    """The regular-file members of a good archive, to be spoiled by a test."""
    out = io.BytesIO()
    write_archive(out, [image[0].save], image[1], format=fmt)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        return {
            info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
            for info in tar
            if info.isreg()
        }


def refuse(data: bytes | Path, dst: LocalContentStore, kind: type[StrataError], *words: str) -> str:
    """Load ``data``; it must fail with ``kind``, one line, naming the input and ``words``."""
    source: io.BytesIO | Path = data if isinstance(data, Path) else io.BytesIO(data)
    name = str(data) if isinstance(data, Path) else NAME
    with pytest.raises(kind) as caught:
        read_archive(source, dst, name=name)
    message = str(caught.value)
    assert message.startswith(name), message
    assert message.count(f"{name}: ") == 1, message  # named once, not once per layer of code
    assert "\n" not in message
    for word in words:
        assert word in message, message
    # What stayed behind is whole, verified content; no half-written ingest is left.
    for info in dst.walk():
        dst.verify(info.digest)
    assert dst.ingests() == []
    return message


def blob_name(digest: Digest) -> str:
    return f"blobs/sha256/{digest.hex}"


def test_truncated_archive(image: tuple[Built, LocalContentStore], dst: LocalContentStore) -> None:
    data = tar_bytes(archive(image, ArchiveFormat.DOCKER).items())
    refuse(data[: len(data) // 2 + 100], dst, FormatError)


def test_corrupt_gzip(image: tuple[Built, LocalContentStore], dst: LocalContentStore) -> None:
    data = bytearray(
        compress(tar_bytes(archive(image, ArchiveFormat.OCI).items()), Compression.GZIP)
    )
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)
    refuse(bytes(data), dst, FormatError)


def test_blob_with_wrong_digest(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    layer = image[0].save.manifest.layers[0].digest
    members[blob_name(layer)] = members[blob_name(layer)][:-1] + b"!"
    refuse(tar_bytes(members.items()), dst, DigestMismatch, blob_name(layer))


def test_descriptor_with_wrong_size(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    index = json.loads(members["index.json"])
    index["manifests"][0]["size"] += 1
    members["index.json"] = json.dumps(index).encode()
    refuse(tar_bytes(members.items()), dst, SizeMismatch, image[0].save.manifest_digest.hex)


def test_layer_whose_diff_id_does_not_match_the_config(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.DOCKER)
    built = image[0]
    bogus = Digest.of(b"another layer")
    config = json.loads(members[blob_name(built.config_digest)])
    config["rootfs"]["diff_ids"] = [str(bogus)]
    config_bytes = json.dumps(config).encode()
    config_digest = Digest.of(config_bytes)
    members[blob_name(config_digest)] = config_bytes
    entry = json.loads(members["manifest.json"])
    entry[0]["Config"] = blob_name(config_digest)
    members["manifest.json"] = json.dumps(entry).encode()
    del members["index.json"], members["oci-layout"]
    message = refuse(tar_bytes(members.items()), dst, DigestMismatch, "layer 1: diff ID")
    assert f"does not match config {bogus}" in message


def test_big_layer_that_is_not_valid_gzip(tmp_path: Path, dst: LocalContentStore) -> None:
    src = LocalContentStore(tmp_path / "src")
    big = build_image(
        src, tmp_path, names=["big:1"], layers=[random_files(3, count=1, size=MIN_THREADED_SIZE)]
    )
    members = archive((big, src), ArchiveFormat.OCI)
    layer = big.save.manifest.layers[0]
    blob = bytearray(members.pop(blob_name(layer.digest)))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    # A consistent archive (names and sizes match) whose layer is not a valid gzip stream.
    digest = Digest.of(bytes(blob))
    members[blob_name(digest)] = bytes(blob)
    doc = json.loads(members[blob_name(big.save.manifest_digest)])
    doc["layers"][0]["digest"] = str(digest)
    raw = json.dumps(doc).encode()
    members[blob_name(Digest.of(raw))] = raw
    index = json.loads(members["index.json"])
    index["manifests"][0].update(digest=str(Digest.of(raw)), size=len(raw))
    members["index.json"] = json.dumps(index).encode()
    refuse(tar_bytes(members.items()), dst, FormatError, "gzip")


@pytest.mark.parametrize("member", ["../escape", "blobs/../../escape", "/etc/passwd"])
def test_unsafe_member_names(
    member: str, image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    refuse(tar_bytes([(member, b"x"), *members.items()]), dst, UnsafePath, member)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (link("manifest.json", "../../etc/passwd"), UnsafePath),
        (link("manifest.json", "/etc/passwd"), UnsafePath),
        (link("x/manifest.json", "../../manifest.json"), UnsafePath),
        (link("manifest.json", "../outside", hard=True), UnsafePath),
        (link("manifest.json", "nowhere.json"), FormatError),
        (link("manifest.json", "nowhere.json", hard=True), FormatError),
    ],
)
def test_links_that_escape_or_dangle(
    entry: tuple[str, tarfile.TarInfo], kind: type[StrataError], dst: LocalContentStore
) -> None:
    refuse(tar_bytes([entry]), dst, kind, entry[0])


def test_symlink_loop(dst: LocalContentStore) -> None:
    data = tar_bytes([link("manifest.json", "a.json"), link("a.json", "manifest.json")])
    refuse(data, dst, FormatError, "manifest.json")


def test_directory_symlink_escape(tmp_path: Path, dst: LocalContentStore) -> None:
    root = tmp_path / "layout"
    root.mkdir()
    (tmp_path / "secret.json").write_text("[]")
    os.symlink(tmp_path / "secret.json", root / "manifest.json")
    refuse(root, dst, UnsafePath, "manifest.json")


def test_unknown_layer_media_type(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    built = image[0]
    doc = json.loads(members[blob_name(built.save.manifest_digest)])
    doc["layers"][0]["mediaType"] = "application/x-mystery"
    raw = json.dumps(doc).encode()
    digest = Digest.of(raw)
    assert isinstance(parse_manifest(raw, source="t"), Manifest)
    members[blob_name(digest)] = raw
    index = json.loads(members["index.json"])
    index["manifests"][0].update(digest=str(digest), size=len(raw))
    members["index.json"] = json.dumps(index).encode()
    refuse(tar_bytes(members.items()), dst, UnsupportedMediaType, "application/x-mystery")


def test_unknown_index_entry_media_type(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    index = json.loads(members["index.json"])
    index["manifests"][0]["mediaType"] = "x-completely-unknown"
    members["index.json"] = json.dumps(index).encode()
    refuse(tar_bytes(members.items()), dst, UnsupportedMediaType, "x-completely-unknown")


def test_oversized_manifest_json(dst: LocalContentStore) -> None:
    big = b"[" + b" " * (4 << 20) + b"]"
    refuse(tar_bytes([("manifest.json", big)]), dst, TooLarge, "manifest.json")


def test_oversized_config(image: tuple[Built, LocalContentStore], dst: LocalContentStore) -> None:
    members = archive(image, ArchiveFormat.DOCKER)
    entry = json.loads(members["manifest.json"])
    entry[0]["Config"] = "big.json"
    members = {
        "manifest.json": json.dumps(entry).encode(),
        "big.json": b"{" + b" " * (8 << 20) + b"}",
    }
    refuse(tar_bytes(members.items()), dst, TooLarge, "big.json")


def test_missing_blob(image: tuple[Built, LocalContentStore], dst: LocalContentStore) -> None:
    members = archive(image, ArchiveFormat.OCI)
    layer = image[0].save.manifest.layers[0].digest
    del members[blob_name(layer)]
    refuse(tar_bytes(members.items()), dst, FormatError, str(layer.hex), "missing")


def test_missing_docker_layer(dst: LocalContentStore) -> None:
    entry = [{"Config": "c.json", "RepoTags": ["a:b"], "Layers": ["x/layer.tar"]}]
    members = [("manifest.json", json.dumps(entry).encode()), ("c.json", b"{}")]
    refuse(tar_bytes(members), dst, FormatError, "x/layer.tar", "missing")


def test_bad_repo_tag(dst: LocalContentStore) -> None:
    entry = [{"Config": "c.json", "RepoTags": ["Not/Valid:tag"], "Layers": []}]
    refuse(tar_bytes([("manifest.json", json.dumps(entry).encode())]), dst, FormatError, "RepoTags")


@pytest.mark.parametrize(
    "data",
    [b"", os.urandom(5000), b"{}" * 300, bytes(10240)],
    ids=["empty", "random", "json", "zeros"],
)
def test_not_an_archive(data: bytes, dst: LocalContentStore, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    refuse(path, dst, FormatError)
    refuse(data, dst, FormatError)


def test_tar_without_image_metadata(dst: LocalContentStore) -> None:
    message = refuse(tar_bytes([("hello.txt", b"hi")]), dst, FormatError)
    assert "not a docker-archive or OCI archive" in message


def test_legacy_archive_without_manifest_json(dst: LocalContentStore) -> None:
    refuse(tar_bytes([("repositories", b"{}")]), dst, FormatError, "not a docker-archive")


def test_missing_file(tmp_path: Path, dst: LocalContentStore) -> None:
    with pytest.raises(StrataError, match="no such file"):
        read_archive(tmp_path / "absent.tar", dst, name="absent.tar")


def test_duplicate_member(image: tuple[Built, LocalContentStore], dst: LocalContentStore) -> None:
    members = archive(image, ArchiveFormat.OCI)
    items = [*members.items(), ("index.json", members["index.json"])]
    refuse(tar_bytes(items), dst, FormatError, "index.json")


def test_directory_blob_of_the_wrong_size_is_not_copied(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore, tmp_path: Path
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    root = untar(tar_bytes(members.items()), tmp_path / "dir")
    layer = image[0].save.manifest.layers[0]
    path = root / blob_name(layer.digest)
    path.chmod(0o644)
    with open(path, "ab") as f:
        f.write(bytes(1 << 20))
    refuse(root, dst, SizeMismatch, layer.digest.hex)
    assert not dst.exists(layer.digest)


def test_directory_round_trip_rejects_tampered_blob(
    image: tuple[Built, LocalContentStore], dst: LocalContentStore, tmp_path: Path
) -> None:
    members = archive(image, ArchiveFormat.OCI)
    root = untar(tar_bytes(members.items()), tmp_path / "dir")
    config = root / blob_name(image[0].config_digest)
    config.chmod(0o644)
    config.write_bytes(config.read_bytes().replace(b"/bin/sh", b"/bin/xx"))
    refuse(root, dst, DigestMismatch, image[0].config_digest.hex)
