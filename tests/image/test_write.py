"""`ImageStore.write`: the one way in copies only the blobs the store lacks, records an image
with all its names in one transaction, and leaves nothing behind when it fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from strata.image import mutate
from strata.image.model import Layer, MemoryImage
from strata.image.record import WriteRequest
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.config import History
from strata.oci.reference import parse_reference
from tests.conftest import Strata, store_state
from tests.image.modelimages import FailingLayer, imported, tar_layer


@pytest.fixture
def images(store_root: Path) -> ImageStore:
    return ImageStore(StoreRoot(store_root))


class _Counted:
    """A layer that counts how often its blob is read."""

    def __init__(self, layer: Layer) -> None:
        self.inner = layer
        self.reads = 0
        self.digest, self.diff_id, self.media_type = layer.digest, layer.diff_id, layer.media_type
        self.size = layer.size
        self.uncompressed_size, self.content_size = layer.uncompressed_size, layer.content_size

    @contextlib.contextmanager
    def compressed(self) -> Iterator[BinaryIO]:
        self.reads += 1
        with self.inner.compressed() as f:
            yield f

    def uncompressed(self) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.inner.uncompressed()


def test_write_copies_only_missing_blobs(images: ImageStore, tmp_path: Path) -> None:
    base = images.open(imported(images, tmp_path))
    (old,) = base.layers()
    new_layer = tar_layer(tmp_path, {"./new": b"new"})
    counted_old, counted_new = _Counted(old), _Counted(new_layer)
    image = mutate.append_layer(MemoryImage(base.config(), [counted_old]), counted_new)
    written = images.write(image, names=[parse_reference("app:1")])
    assert (counted_old.reads, counted_new.reads) == (0, 1)
    assert [la.blob for la in images.layers(written)] == [old.digest, new_layer.digest]
    assert images.get("app:1").id == written.id == image.config_digest()
    before = store_state(images.root.path)
    again = images.write(image)
    assert (counted_old.reads, counted_new.reads) == (0, 1)  # all present: nothing copied
    assert again.id == written.id
    assert store_state(images.root.path)["files"] == before["files"]


def test_names_move_to_the_image_written(images: ImageStore, tmp_path: Path) -> None:
    base = images.open(imported(images, tmp_path, "app:1"))
    first = images.get("app:1")
    changed = mutate.apply_changes(base, ["ENV V=2"])
    second = images.write(changed, names=[parse_reference("app:1"), parse_reference("app:2")])
    assert [str(t) for t in second.tags] == ["docker.io/library/app:1", "docker.io/library/app:2"]
    assert images.get(str(first.id)).tags == ()  # dangling, as Docker leaves it


def test_write_many_records_every_image_in_one_transaction(
    images: ImageStore, tmp_path: Path
) -> None:
    base = images.open(imported(images, tmp_path))
    steps = [mutate.apply_changes(base, [f"ENV STEP={i}"]) for i in range(3)]
    done = images.write_many(
        [
            WriteRequest(s, (parse_reference(f"step:{i}"),), intermediate=True)
            for i, s in enumerate(steps)
        ]
    )
    assert [d.id for d in done] == [s.config_digest() for s in steps]
    assert all(images.get(f"step:{i}").intermediate for i in range(3))


def test_a_failed_write_leaves_nothing(images: ImageStore, tmp_path: Path, strata: Strata) -> None:
    base = images.open(imported(images, tmp_path))
    before = store_state(images.root.path)
    good = tar_layer(tmp_path, {"./good": b"good"})
    image = mutate.append_layer(base, good, history=History())
    broken = mutate.append_layer(image, FailingLayer(b"x" * 5000, size=10000))
    with pytest.raises(Exception, match="half way"):
        images.write(broken, names=[parse_reference("broken:1")])
    assert store_state(images.root.path) == before
    assert images.lookup("broken:1") is None
    proc = strata("system", "check")
    assert proc.stdout.splitlines() == ["no problems found"]
