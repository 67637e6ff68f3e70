"""The image model: a stored image read lazily, an archive's image, in-memory images and
layers made on demand."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.image import mutate, record
from strata.image.archive import read_archive
from strata.image.archive.formats import ArchiveFormat
from strata.image.archive.save import save_images
from strata.image.model import (
    ContentImage,
    Image,
    Layer,
    MemoryImage,
    SnapshotLayer,
    archive_image,
)
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.layer.stats import LayerStats
from strata.oci.mediatypes import OCI_LAYER, OCI_MANIFEST
from tests.image.modelimages import imported, tar_layer


@pytest.fixture
def images(store_root: Path) -> ImageStore:
    return ImageStore(StoreRoot(store_root))


class _CountingContent(LocalContentStore):
    """A content store that counts the blobs opened (every read opens one)."""

    reads = 0

    def open(self, digest: Digest) -> BinaryIO:
        self.reads += 1
        return super().open(digest)


def _sha(stream: BinaryIO) -> Digest:
    return Digest("sha256", hashlib.sha256(stream.read()).hexdigest())


def test_a_stored_image_reads_nothing_until_asked(images: ImageStore, tmp_path: Path) -> None:
    stored = imported(images, tmp_path)
    content = _CountingContent(images.root.path)
    image = ContentImage(
        content, stored.manifest_digest, stored.media_type, config_digest=stored.config_digest
    )
    assert (image.digest(), image.config_digest()) == (stored.manifest_digest, stored.id)
    assert image.media_type == OCI_MANIFEST
    assert content.reads == 0
    assert image.manifest().config.digest == stored.id
    assert content.reads == 1


def test_a_stored_image_is_its_blobs(images: ImageStore, tmp_path: Path) -> None:
    stored = imported(images, tmp_path)
    image = images.open(stored)
    assert isinstance(image, Image)
    assert Digest.of(image.raw_manifest()) == stored.manifest_digest
    assert Digest.of(image.raw_config()) == stored.id
    assert image.config() == images.config(stored)
    (layer,) = image.layers()
    assert isinstance(layer, Layer)
    (recorded,) = images.layers(stored)
    assert (layer.digest, layer.diff_id, layer.media_type) == (
        recorded.blob,
        recorded.diff_id,
        recorded.media_type,
    )
    assert (layer.uncompressed_size, layer.content_size) == (recorded.size, recorded.content_size)
    assert layer.size == images.content.info(layer.digest).size
    with layer.compressed() as f:
        assert _sha(f) == layer.digest
    with layer.uncompressed() as f:
        assert _sha(f) == layer.diff_id == image.config().rootfs.diff_ids[0]


def test_a_layer_from_a_snapshot_is_made_once_when_first_asked(tmp_path: Path) -> None:
    made = []
    layer = tar_layer(tmp_path, {"./etc/app": b"app\n"})
    inner = layer._write_tar
    layer._write_tar = lambda out: made.append(1) or inner(out)  # type: ignore[func-returns-value]
    assert made == []
    assert layer.media_type == OCI_LAYER  # strata keeps its layers uncompressed
    assert layer.digest == layer.diff_id
    with layer.compressed() as f:
        data = f.read()
    assert (Digest.of(data), len(data)) == (layer.digest, layer.size)
    assert layer.uncompressed_size == layer.size and layer.content_size
    assert made == [1]
    layer.close()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_layer_from_a_snapshot_can_be_made_straight_into_a_store(
    images: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a commit makes its layer: the tar is the blob, written and hashed in one pass, leased
    before the write commits it; writing an image with it copies nothing."""
    held: list[tuple[Digest, bool]] = []
    tar = tar_layer(tmp_path, {"./etc/app": b"app\n"})._write_tar
    layer = SnapshotLayer(
        tar,
        content=images.content,
        hold=lambda digest: held.append((digest, images.content.exists(digest))),
        ingest="commit",
    )
    stats = layer.make()
    assert held == [(stats.diff_id, False)]  # leased while not yet visible to a gc
    assert layer.digest == layer.diff_id == stats.diff_id
    assert images.content.info(layer.digest).size == layer.size == stats.size
    assert images.content.ingests() == []
    with layer.compressed() as f:
        assert _sha(f) == layer.digest

    def copied(*_: object) -> None:
        raise AssertionError("the layer's blob was copied")

    monkeypatch.setattr(record, "_copy_layer", copied)
    base = images.open(imported(images, tmp_path))
    stored = images.write(mutate.append_layer(base, layer))
    assert [la.blob for la in images.layers(stored)][-1] == layer.digest
    layer.close()  # the blob is the store's now
    assert images.content.exists(layer.digest)


def test_a_snapshot_layer_whose_tar_fails_leaves_nothing_in_the_store(
    images: ImageStore, tmp_path: Path
) -> None:
    def broken(out: BinaryIO) -> LayerStats:
        out.write(b"half a tar")
        raise OSError("the snapshot went away")

    before = {b.digest for b in images.content.walk()}
    layer = SnapshotLayer(broken, content=images.content)
    with pytest.raises(OSError, match="went away"):
        layer.make()
    assert {b.digest for b in images.content.walk()} == before
    assert images.content.ingests() == []


def test_a_memory_image_encodes_its_manifest(images: ImageStore, tmp_path: Path) -> None:
    base = images.open(imported(images, tmp_path))
    image = MemoryImage(base.config(), base.layers())
    # The same config and layers encode to the same blobs strata wrote when importing.
    assert image.raw_config() == base.raw_config()
    assert image.raw_manifest() == base.raw_manifest()
    assert image.digest() == base.digest()
    assert [d.digest for d in image.manifest().layers] == [la.digest for la in base.layers()]


def test_an_archive_image_is_the_image_saved(images: ImageStore, tmp_path: Path) -> None:
    stored = imported(images, tmp_path)
    tar = tmp_path / "saved.tar"
    save_images(images, ["base:1"], lambda: tar.open("wb"), format=ArchiveFormat.DOCKER)
    other = ImageStore(StoreRoot(tmp_path / "other"))
    (loaded,) = read_archive(tar, other.content, name=str(tar))
    image = archive_image(other.content, loaded)
    assert image.config_digest() == stored.id
    assert [la.diff_id for la in image.layers()] == [la.diff_id for la in images.layers(stored)]
    assert image.layers()[0].uncompressed_size == images.layers(stored)[0].size
    written = other.write(image)
    assert (written.id, written.size) == (stored.id, stored.size)
