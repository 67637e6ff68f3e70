"""`strata.image.mutate`: pure changes that return new images and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import StrataError
from strata.image import mutate
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.config import History
from tests.conftest import store_state
from tests.image.modelimages import imported, tar_layer


@pytest.fixture
def images(store_root: Path) -> ImageStore:
    return ImageStore(StoreRoot(store_root))


def test_append_layer_writes_nothing_and_digests_what_it_made(
    images: ImageStore, tmp_path: Path
) -> None:
    base = images.open(imported(images, tmp_path))
    before = store_state(images.root.path)
    layer = tar_layer(tmp_path, {"./etc/app": b"app\n"})
    new = mutate.append_layer(base, layer, history=History(created_by="COPY app /etc/app"))
    config = new.config()
    assert config.rootfs.diff_ids == (*base.config().rootfs.diff_ids, layer.diff_id)
    assert config.history[-1] == History(created_by="COPY app /etc/app")
    assert [la.digest for la in new.layers()] == [
        *(la.digest for la in base.layers()),
        layer.digest,
    ]
    assert new.config_digest() == Digest.of(new.raw_config()) == new.manifest().config.digest
    assert new.digest() == Digest.of(new.raw_manifest())
    assert new.manifest().layers[-1].size == layer.size
    assert store_state(images.root.path) == before


def test_apply_changes_and_set_config(images: ImageStore, tmp_path: Path) -> None:
    base = images.open(imported(images, tmp_path))
    before = store_state(images.root.path)
    changed = mutate.apply_changes(base, ["ENV A=1", 'CMD ["sh"]'])
    assert changed.config().config.env[-1] == "A=1"
    assert changed.config().config.cmd == ("sh",)
    assert changed.layers() == tuple(base.layers())
    assert changed.config_digest() != base.config_digest()
    with pytest.raises(StrataError):
        mutate.apply_changes(base, ["BOGUS x"])
    same = mutate.set_config(base, base.config())
    assert (same.digest(), same.config_digest()) == (base.digest(), base.config_digest())
    noted = mutate.append_history(base, History(created_by="ENV A=1"))
    assert noted.config().history[-1].empty_layer
    assert store_state(images.root.path) == before


def test_a_stored_image_written_into_another_store_keeps_its_ids(
    images: ImageStore, tmp_path: Path
) -> None:
    base = images.open(imported(images, tmp_path))
    new = mutate.append_layer(base, tar_layer(tmp_path, {"./a": b"a"}), history=History())
    first = images.write(new)
    other = ImageStore(StoreRoot(tmp_path / "other"))
    copied = other.write(images.open(first))
    assert (copied.id, copied.manifest_digest, copied.size) == (
        first.id,
        first.manifest_digest,
        first.size,
    )
    assert other.layers(copied) == images.layers(first)
    # Exactly the image's blobs were copied (not the base image's config and manifest).
    wanted = {first.manifest_digest, first.id, *(la.blob for la in images.layers(first))}
    assert {b.digest for b in other.content.walk()} == wanted
