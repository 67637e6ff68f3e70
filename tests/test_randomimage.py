"""The `random_image` test factory: real, self-consistent images, the same for the same seed."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import NotFound
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.layer.compression import open_decompressed
from strata.layer.tarreader import TarReader
from strata.oci.config import parse_config
from strata.oci.manifest import Manifest, parse_manifest
from strata.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from strata.oci.reference import parse_reference
from tests.randomimage import random_image, record_image


def _sha256(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


def test_every_digest_is_the_hash_of_its_bytes() -> None:
    image = random_image(3, seed=1)
    assert len(image.layers()) == 3
    for layer in image.layers():
        assert layer.digest == _sha256(layer.blob) == _sha256(layer.compressed().read())
        assert layer.diff_id == _sha256(layer.tar) == _sha256(layer.uncompressed().read())
        assert gzip.decompress(layer.blob) == layer.tar
        assert layer.size == len(layer.blob)
        assert layer.media_type == OCI_LAYER_GZIP
    assert image.digest() == _sha256(image.raw_manifest())
    assert image.id == image.config_digest() == _sha256(image.raw_config())
    assert image.size == len(image.raw_manifest())


def test_manifest_and_config_parse_back_and_agree() -> None:
    image = random_image(2, seed=2)
    manifest = parse_manifest(image.raw_manifest(), source="random")
    assert isinstance(manifest, Manifest)
    assert manifest == image.manifest()
    assert manifest.to_json() == image.raw_manifest()  # canonical: re-serialising is stable
    assert image.media_type == OCI_MANIFEST
    assert manifest.config.media_type == OCI_CONFIG
    assert manifest.config.digest == image.config_digest()
    assert manifest.config.size == len(image.raw_config())
    assert [d.digest for d in manifest.layers] == [lay.digest for lay in image.layers()]
    assert [d.size for d in manifest.layers] == [lay.size for lay in image.layers()]
    config = parse_config(image.raw_config(), source="random")
    assert config.to_json() == image.raw_config()
    assert config.rootfs.diff_ids == tuple(lay.diff_id for lay in image.layers())
    assert len(config.history) == 2 and not any(h.empty_layer for h in config.history)
    assert config.history[0].created_by == "random layer 0 (seed 2)"


def test_docker_media_types() -> None:
    image = random_image(1, seed=3, docker=True)
    manifest = parse_manifest(image.raw_manifest(), source="random")
    assert isinstance(manifest, Manifest)
    assert image.media_type == manifest.media_type == DOCKER_MANIFEST
    assert manifest.config.media_type == DOCKER_CONFIG
    assert [d.media_type for d in manifest.layers] == [DOCKER_LAYER_GZIP]
    assert image.layers()[0].media_type == DOCKER_LAYER_GZIP


def test_the_same_seed_gives_the_same_image() -> None:
    first, again = random_image(3, seed=42), random_image(3, seed=42)
    assert first.digest() == again.digest() and first.raw_config() == again.raw_config()
    assert [lay.blob for lay in first.layers()] == [lay.blob for lay in again.layers()]
    others = {random_image(3, seed=s).digest() for s in range(5)}
    assert len(others) == 5
    # A different shape from the same seed is another image too.
    assert random_image(2, seed=42).digest() != first.digest()
    assert random_image(3, seed=42, size=65).digest() != first.digest()


def test_layers_are_real_tars_strata_reads() -> None:
    image = random_image(2, seed=5, files=4, size=100)
    for layer in image.layers():
        read: dict[str, bytes] = {}
        stream = open_decompressed(layer.compressed(), source="random layer")
        reader = TarReader(stream, source="random layer")
        for entry in reader:
            assert (entry.mode, entry.uid, entry.gid, entry.mtime) == (0o644, 0, 0, 0)
            read[entry.name.decode()] = b"".join(bytes(c) for c in reader.chunks())
        assert read == dict(layer.files)
        assert len(read) == 4 and all(len(data) == 100 for data in read.values())
    # Layers hold different files: applying them stacks, it does not overwrite.
    first, second = (set(lay.files) for lay in image.layers())
    assert not first & second


def test_layer_lookups() -> None:
    image = random_image(2, seed=6)
    top = image.layers()[1]
    assert image.layer_by_digest(top.digest) is top
    assert image.layer_by_diff_id(top.diff_id) is top
    with pytest.raises(NotFound):
        image.layer_by_digest(top.diff_id)
    with pytest.raises(NotFound):
        image.layer_by_diff_id(top.digest)


def test_an_empty_image() -> None:
    image = random_image(0, seed=7)
    assert image.layers() == () and image.manifest().layers == ()
    assert image.config().rootfs.diff_ids == ()


def test_record_image_stores_it_as_the_store_reads_it(tmp_path: Path) -> None:
    images = ImageStore(StoreRoot(tmp_path / "root"))
    image = random_image(2, seed=8)
    stored = record_image(images, image, names=[parse_reference("random:1")])
    assert stored.manifest_digest == image.digest() and stored.id == image.id
    found = images.get("random:1")
    assert found.manifest_digest == image.digest()
    assert images.content.read_bytes(image.digest(), limit=1 << 20) == image.raw_manifest()
    for layer in image.layers():
        assert images.content.read_bytes(layer.digest, limit=1 << 20) == layer.blob
