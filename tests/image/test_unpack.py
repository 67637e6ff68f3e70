"""Unpack: each layer extracted once, keyed by chain ID, shared; lying images rejected."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from strata.diff.chain import layer_key
from strata.digest import Digest
from strata.errors import DigestMismatch
from strata.image.create import store_image
from strata.image.imports import base_config, import_rootfs, write_rootfs_layer
from strata.image.root import StoreRoot
from strata.image.store import ImageLayer, ImageStore
from strata.image.unpack import unpack
from strata.oci.config import RootFS
from strata.oci.reference import parse_reference
from strata.runtime.imageusers import image_users
from strata.snapshot import Kind
from strata.snapshot.select import default_snapshotter
from tests.cli.tarballs import rootfs_tar

pytestmark = pytest.mark.root


def _two_layer_image(images: ImageStore, tmp_path: Path, name: str, top: bytes) -> None:
    from datetime import UTC, datetime

    base = rootfs_tar(tmp_path / "base.tar")
    extra = rootfs_tar(tmp_path / f"{name}.tar", {"./srv/top": top})
    with images.operation() as lease:
        with base.open("rb") as a, extra.open("rb") as b:
            one = write_rootfs_layer(images, lease, a, name="base")
            two = write_rootfs_layer(images, lease, b, name=name)
        config = replace(
            base_config(datetime.now(UTC)), rootfs=RootFS("layers", (one.diff_id, two.diff_id))
        )
        store_image(images, lease, config=config, layers=[one, two], names=[parse_reference(name)])


def test_layers_are_extracted_once_and_shared(store_root: Path, tmp_path: Path) -> None:
    root = StoreRoot(store_root)
    images = ImageStore(root)
    snapshotter = default_snapshotter(root.path, root.db)
    _two_layer_image(images, tmp_path, "one", b"1")
    _two_layer_image(images, tmp_path, "two", b"2")
    top_one = unpack(images, snapshotter, images.get("one"))
    top_two = unpack(images, snapshotter, images.get("two"))
    assert top_one != top_two
    committed = [s for s in snapshotter.walk() if s.kind is Kind.COMMITTED]
    assert len(committed) == 3  # the shared base once, and each top
    assert snapshotter.stat(top_one).parent == snapshotter.stat(top_two).parent
    assert unpack(images, snapshotter, images.get("one")) == top_one  # idempotent
    assert (snapshotter.upper(top_one) / "srv" / "top").read_bytes() == b"1"


def test_a_layer_that_lies_about_its_diff_id_is_refused(store_root: Path, tmp_path: Path) -> None:
    root = StoreRoot(store_root)
    images = ImageStore(root)
    snapshotter = default_snapshotter(root.path, root.db)
    tar = rootfs_tar(tmp_path / "a.tar")
    with tar.open("rb") as src:
        real = import_rootfs(images, src, name="a", names=[parse_reference("real")])
    layer = images.layers(real)[0]
    forged = Digest.of(b"not this layer")
    from datetime import UTC, datetime

    with images.operation() as lease:
        config = replace(base_config(datetime.now(UTC)), rootfs=RootFS("layers", (forged,)))
        store_image(
            images,
            lease,
            config=config,
            layers=[ImageLayer(layer.blob, layer.media_type, forged, layer.size)],
            names=[parse_reference("liar")],
        )
    with pytest.raises(DigestMismatch):
        unpack(images, snapshotter, images.get("liar"))
    assert [s.key for s in snapshotter.walk()] == []
    assert layer_key(forged) not in {s.key for s in snapshotter.walk()}


def test_gc_removes_the_layers_of_removed_images_only(store_root: Path, tmp_path: Path) -> None:
    root = StoreRoot(store_root)
    images = ImageStore(root)
    snapshotter = default_snapshotter(root.path, root.db)
    _two_layer_image(images, tmp_path, "one", b"1")
    _two_layer_image(images, tmp_path, "two", b"2")
    top_one = unpack(images, snapshotter, images.get("one"))
    top_two = unpack(images, snapshotter, images.get("two"))
    base = snapshotter.stat(top_one).parent
    images.remove("one", users=image_users)
    keys = {s.key for s in snapshotter.walk()}
    assert top_one not in keys and {top_two, base} <= keys  # the shared base stays
    assert images.remove("two", users=image_users).deleted
    assert list(snapshotter.walk()) == []
