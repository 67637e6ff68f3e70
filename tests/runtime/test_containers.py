"""Container records, and the image rules that depend on them (Docker's rmi conflicts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.errors import Conflict, InvalidArgument, NotFound
from strata.image.imports import import_rootfs
from strata.image.remove import ImageUser
from strata.image.root import StoreRoot
from strata.image.store import Image, ImageStore
from strata.oci.reference import parse_reference
from strata.runtime.config import ContainerConfig
from strata.runtime.containers import ContainerStore, State
from strata.runtime.imageusers import image_users
from tests.cli.tarballs import rootfs_tar
from tests.randomimage import random_image, record_image


@pytest.fixture
def images(store_root: Path) -> ImageStore:
    return ImageStore(StoreRoot(store_root))


@pytest.fixture
def image(images: ImageStore, tmp_path: Path) -> Image:
    tar = rootfs_tar(tmp_path / "a.tar")
    with tar.open("rb") as src:
        return import_rootfs(images, src, name=str(tar), names=[parse_reference("app:1")])


def _container(images: ImageStore, image: Image, name: str | None) -> str:
    store = ContainerStore(images.db)
    return store.create(
        name=name,
        image=str(image.manifest_digest),
        image_ref="app:1",
        snapshot="container-x",
        runtime="runc",
        config=ContainerConfig(args=("true",), cmd=("true",)),
    ).id


def test_names_ids_and_prefixes(images: ImageStore, image: Image) -> None:
    store = ContainerStore(images.db)
    cid = _container(images, image, "web")
    other = _container(images, image, None)
    assert store.get("web").id == cid
    assert store.get("/web").id == cid
    assert store.get(cid[:12]).id == cid
    assert "_" in store.get(other).name  # a made-up adjective_noun name
    with pytest.raises(Conflict, match='The container name "/web" is already in use'):
        _container(images, image, "web")
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        _container(images, image, "-bad")
    with pytest.raises(NotFound, match="No such container: nope"):
        store.get("nope")


def test_state_transitions(images: ImageStore, image: Image) -> None:
    store = ContainerStore(images.db)
    cid = _container(images, image, "c")
    assert store.get(cid).state is State.CREATED
    store.set_running(cid, 1234)
    assert (store.get(cid).state, store.get(cid).pid) == (State.RUNNING, 1234)
    store.set_exited(cid, 3)
    done = store.get(cid)
    assert (done.state, done.exit_code, done.pid) == (State.EXITED, 3, 0)
    store.delete(cid)
    assert store.lookup(cid) is None


def test_rmi_refuses_an_image_a_container_uses(images: ImageStore, image: Image) -> None:
    store = ContainerStore(images.db)
    cid = _container(images, image, "c")
    with pytest.raises(Conflict, match='unable to remove repository reference "app:1"'):
        images.remove("app:1", users=image_users)
    # -f takes the name away but keeps the image the container stands on.
    report = images.remove("app:1", users=image_users, force=True)
    assert report.untagged == ["app:1"] and report.deleted == []
    assert images.get(image.id.short)
    assert images.prune(users=image_users, dangling_only=False).deleted == []
    store.set_running(cid, 99)
    with pytest.raises(Conflict, match="cannot be forced"):
        images.remove(image.id.short, users=image_users, force=True)
    store.delete(cid)
    assert images.remove(image.id.short, users=image_users).deleted == [image.id]


def test_image_users_sees_every_manifest_of_an_image(images: ImageStore) -> None:
    # One config, two manifests (OCI and Docker schema 2): one image ID, as rmi sees it.
    oci = record_image(images, random_image(1, seed=1), names=[parse_reference("oci:1")])
    docker = record_image(images, random_image(1, seed=1, docker=True))
    assert oci.id == docker.id and oci.manifest_digest != docker.manifest_digest
    store = ContainerStore(images.db)
    first = _container(images, docker, "first")
    second = _container(images, oci, "second")
    store.set_running(second, 99)
    both = [str(oci.manifest_digest), str(docker.manifest_digest)]
    with images.db.read() as conn:
        assert image_users(conn, both) == [ImageUser(first, False), ImageUser(second, True)]
        assert image_users(conn, both[:1]) == [ImageUser(second, True)]
        assert image_users(conn, []) == []
    # A container on the Docker manifest holds the image that the OCI one is removed by.
    with pytest.raises(Conflict, match=f"being used by running container {second[:12]}"):
        images.remove(oci.id.short, users=image_users, force=True)
    store.delete(second)
    with pytest.raises(Conflict, match=f"being used by stopped container {first[:12]}"):
        images.remove(oci.id.short, users=image_users)
    store.delete(first)
    report = images.remove(oci.id.short, users=image_users, force=True)
    assert report.untagged == ["oci:1"] and report.deleted == [oci.id]
    assert images.all() == []


def test_a_record_in_todays_json_reads_typed(images: ImageStore, image: Image) -> None:
    from tests.runtime.test_config import TODAY

    store = ContainerStore(images.db)
    cid = _container(images, image, "old")
    with images.db.transaction() as conn:
        conn.execute("UPDATE containers SET config = ? WHERE id = ?", (TODAY, cid))
    config = store.get(cid).config
    assert (config.args, config.volumes, config.tty, config.tied) == (
        ("bash",),
        ("/srv:/data",),
        True,
        True,
    )
    # And a new record is written in the same form.
    other = store.create(
        name="new",
        image=str(image.manifest_digest),
        image_ref="app:1",
        snapshot="container-y",
        runtime="runc",
        config=config,
    )
    with images.db.read() as conn:
        row = conn.execute("SELECT config FROM containers WHERE id = ?", (other.id,)).fetchone()
    assert row["config"] == TODAY
