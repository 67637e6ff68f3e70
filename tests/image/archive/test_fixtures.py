"""The containers/image fixtures: a legacy docker-archive, and OCI layouts made for GC tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import FormatError, SizeMismatch, StrataError
from strata.image.archive import read_archive
from strata.oci.descriptor import Platform
from strata.oci.manifest import parse_manifest
from strata.oci.mediatypes import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST
from tests.image.archive.builders import FIXTURES

LAYOUTS = FIXTURES / "oci-layouts"


@pytest.fixture
def dst(tmp_path: Path) -> LocalContentStore:
    return LocalContentStore(tmp_path / "dst")


def test_legacy_docker_archive_loads(dst: LocalContentStore) -> None:
    path = FIXTURES / "docker-archive-almostempty.tar"
    (image,) = read_archive(path, dst, name=str(path))
    assert image.names == ("docker.io/library/emptyimage:latest",)
    config_hex = "9d7f147c0d0c4d4538a04c7ef385809e56eb1aac7bf800fbe976612188025b68"
    assert image.config_digest == Digest.from_hex(config_hex)
    diff_id = Digest.from_hex("0b916d257bd406111a3fced53f81b47de9a30f7c7d514a89769b3483aaddca7e")
    (layer,) = image.layers
    assert (layer.blob, layer.diff_id, layer.size, layer.media_type) == (
        diff_id,
        diff_id,
        1536,
        OCI_LAYER,
    )
    # The synthesised manifest is stored, and is the OCI manifest of this config and layer.
    stored = parse_manifest(dst.read_bytes(image.manifest_digest, limit=1 << 20), source="m")
    assert stored == image.manifest
    assert image.manifest.media_type == OCI_MANIFEST
    assert image.manifest.config.media_type == OCI_CONFIG
    assert image.config.history[0].created_by is not None
    for digest in (image.manifest_digest, image.config_digest, layer.blob):
        dst.verify(digest)


def test_legacy_docker_archive_from_a_directory(dst: LocalContentStore, tmp_path: Path) -> None:
    root = tmp_path / "extracted"
    root.mkdir()
    # GNU tar, not tarfile: extraction filters arrived in Python 3.11.4, after Debian 12's 3.11.2.
    subprocess.run(
        ["tar", "-C", str(root), "-xf", str(FIXTURES / "docker-archive-almostempty.tar")],
        check=True,
    )
    (image,) = read_archive(root, dst, name=str(root))
    assert image.names == ("docker.io/library/emptyimage:latest",)


# Which fixtures load: none of them have real layers ("insert binary content here" stands in for
# gzip data), so each must fail, and fail for its own reason.
CASES = {
    # The index for linux/amd64 leads to a "gzip" layer that is not gzip.
    "delete_image_multiple_images": (FormatError, "uncompressed"),
    # The manifest says the config is 585 bytes; the blob is 740.
    "delete_image_only_one_image": (SizeMismatch, "585"),
    # The manifest lives in shared_blobs/, outside the layout's blobs/.
    "delete_image_shared_blobs_dir": (FormatError, "missing"),
    "delete_image_two_identical_references": (FormatError, "uncompressed"),
    # index.json only: no blobs at all.
    "manifest": (FormatError, "missing"),
    "name_lookups": (FormatError, "missing"),
    "two_images_manifest": (FormatError, "missing"),
    # Not a layout.
    "files": (FormatError, "not a docker-archive or OCI archive"),
}


def test_every_layout_fixture_is_covered() -> None:
    assert {p.name for p in LAYOUTS.iterdir()} == set(CASES)


@pytest.mark.parametrize("layout", sorted(CASES))
def test_layout_fixture(layout: str, dst: LocalContentStore) -> None:
    if Platform.current().architecture != "amd64" and layout == "delete_image_multiple_images":
        pytest.skip("the fixture's index has amd64 and 386 only")
    kind, word = CASES[layout]
    path = LAYOUTS / layout
    with pytest.raises(StrataError) as caught:
        read_archive(path, dst, name=str(path))
    assert type(caught.value) is kind, caught.value
    message = str(caught.value)
    assert message.startswith(str(path)) and word in message, message
    assert "\n" not in message
