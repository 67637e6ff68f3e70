"""The image store: names, removal rules, gc and leases, through the library API."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import Conflict, ImageNotFound, StrataError
from strata.image.gc import collect
from strata.image.imports import import_rootfs
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.reference import parse_reference
from strata.runtime.imageusers import image_users
from tests.cli.tarballs import rootfs_tar
from tests.conftest import store_state


@pytest.fixture
def images(store_root: Path) -> ImageStore:
    return ImageStore(StoreRoot(store_root))


def _import(images: ImageStore, tar: Path, name: str | None) -> Digest:
    names = [parse_reference(name)] if name else []
    with tar.open("rb") as src:
        return import_rootfs(images, src, name=str(tar), names=names).id


def test_store_root_is_private(store_root: Path) -> None:
    StoreRoot(store_root)
    assert store_root.stat().st_mode & 0o777 == 0o700


def test_lookup_by_name_id_prefix_and_digest(images: ImageStore, tmp_path: Path) -> None:
    image_id = _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    image = images.get("a:1")
    assert images.get(image_id.short).id == image_id
    assert images.get(str(image_id)).id == image_id
    assert images.get(f"a@{image.manifest_digest}").id == image_id
    assert images.lookup("a:2") is None
    # Not hex: a short hex name could also be a prefix of the (random) image ID, as in Docker.
    with pytest.raises(ImageNotFound, match="No such image: zed"):
        images.get("zed")


def test_ambiguous_prefix_is_refused(images: ImageStore, tmp_path: Path) -> None:
    ids = [
        _import(images, rootfs_tar(tmp_path / f"{i}.tar", {f"./f{i}": b"x"}), f"i:{i}")
        for i in range(40)
    ]
    # With 40 images two of them share a first hex digit; a one-digit prefix is then ambiguous.
    first = [i.hex[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    with pytest.raises(Conflict, match="ambiguous"):
        images.get(shared)


def test_lookup_by_manifest_prefix_and_bare_algorithm(images: ImageStore, tmp_path: Path) -> None:
    image_id = _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    image = images.get("a:1")
    # A manifest digest prefix names the image too, and a found image comes with its names.
    assert images.get(image.manifest_digest.hex[:7]).id == image_id
    assert images.get(f"sha256:{image_id.hex[:5]}").tags == (parse_reference("a:1"),)
    # ``sha256:`` with no hex is the empty prefix: the one image, then ambiguous with two.
    assert images.get("sha256:").id == image_id
    _import(images, rootfs_tar(tmp_path / "b.tar", {"./b": b"b"}), "b:1")
    with pytest.raises(Conflict, match="'sha256:' is ambiguous: it matches 2 images"):
        images.get("sha256:")


def test_lookups_search_indexes_never_scan(images: ImageStore, tmp_path: Path) -> None:
    """Every lookup form is served by an index, so it costs the same in a store of thousands."""
    image_id = _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    manifest = images.get("a:1").manifest_digest
    statements: list[str] = []
    with images.db.read() as conn:
        conn.set_trace_callback(statements.append)
    try:
        for text in ("a:1", "a", str(image_id), image_id.hex, image_id.short, f"a@{manifest}"):
            images.lookup(text)
    finally:
        with images.db.read() as conn:
            conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    with images.db.read() as conn:
        for sql in selects:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [p for p in plan if p.startswith("SCAN") and "json_each" not in p]
            assert not scans, (sql, plan)


def test_retag_leaves_old_image_dangling(images: ImageStore, tmp_path: Path) -> None:
    old = _import(images, rootfs_tar(tmp_path / "a.tar"), "app")
    new = _import(images, rootfs_tar(tmp_path / "b.tar", {"./new": b"1"}), "app")
    assert old != new
    dangling = [i for i in images.all() if not i.tags]
    assert [i.id for i in dangling] == [old]


def test_remove_by_id_with_two_names_needs_force(images: ImageStore, tmp_path: Path) -> None:
    image_id = _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    images.tag(images.get("a:1"), parse_reference("a:2"))
    with pytest.raises(Conflict, match="must be forced"):
        images.remove(image_id.short, users=image_users)
    report = images.remove(image_id.short, users=image_users, force=True)
    assert sorted(report.untagged) == ["a:1", "a:2"]
    assert report.deleted == [image_id]
    assert report.reclaimed > 0
    assert list(images.content.walk()) == []


def test_gc_keeps_what_images_and_leases_hold(images: ImageStore, tmp_path: Path) -> None:
    _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    before = {b.digest for b in images.content.walk()}
    orphan = images.content.put_bytes(b"nobody refers to me")
    leased = b"a write in progress elsewhere"
    with images.root.lease() as lease:
        lease.add("blob", str(Digest.of(leased)))
        images.content.put_bytes(leased)
        report = collect(images)
        assert report.blobs == 1
        assert not images.content.exists(orphan)
        assert images.content.exists(Digest.of(leased))
    assert before <= {b.digest for b in images.content.walk()}
    collect(images)
    assert {b.digest for b in images.content.walk()} == before


def test_failed_operation_leaves_store_as_before(images: ImageStore, tmp_path: Path) -> None:
    _import(images, rootfs_tar(tmp_path / "a.tar"), "a:1")
    state = store_state(images.root.path)
    with pytest.raises(RuntimeError), images.operation() as lease:
        data = b"half of an operation"
        lease.add("blob", str(Digest.of(data)))
        images.content.put_bytes(data)
        with images.content.writer("never-finished") as writer:
            writer.write(b"partial")
        raise RuntimeError("crash in the middle")
    assert store_state(images.root.path) == state


def _import_in_process(root: str, tar: str, name: str) -> None:
    images = ImageStore(StoreRoot(Path(root)))
    with open(tar, "rb") as src:
        import_rootfs(images, src, name=tar, names=[parse_reference(name)])


def _gc_in_process(root: str, rounds: int) -> None:
    images = ImageStore(StoreRoot(Path(root)))
    for _ in range(rounds):
        collect(images)


def test_concurrent_imports_and_gc_lose_nothing(store_root: Path, tmp_path: Path) -> None:
    tars = [rootfs_tar(tmp_path / f"{i}.tar", {f"./f{i}": bytes(1000 * i)}) for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    gc = ctx.Process(target=_gc_in_process, args=(str(store_root), 30))
    workers = [
        ctx.Process(target=_import_in_process, args=(str(store_root), str(t), f"c:{i}"))
        for i, t in enumerate(tars)
    ]
    gc.start()
    for w in workers:
        w.start()
    for p in [gc, *workers]:
        p.join(120)
        assert p.exitcode == 0
    images = ImageStore(StoreRoot(store_root))
    assert len(images.all()) == 6
    for image in images.all():
        manifest = images.manifest(image)
        for desc in (manifest.config, *manifest.layers):
            images.content.verify(desc.digest)


def test_unknown_schema_is_refused(store_root: Path) -> None:
    import sqlite3

    StoreRoot(store_root).db.close()
    conn = sqlite3.connect(store_root / "strata.db")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StrataError, match="newer"):
        ImageStore(StoreRoot(store_root))


def test_layer_sizes_are_dockers_file_bytes(images: ImageStore, tmp_path: Path) -> None:
    import tarfile

    tar = rootfs_tar(tmp_path / "a.tar", {"./srv/data": bytes(5000)})
    with tarfile.open(tar) as archive:
        file_bytes = sum(m.size for m in archive.getmembers() if m.isfile())
    _import(images, tar, "a:1")
    image = images.get("a:1")
    (layer,) = images.layers(image)
    assert layer.content_size == file_bytes
    assert image.size == file_bytes < layer.size  # the tar adds headers and padding
