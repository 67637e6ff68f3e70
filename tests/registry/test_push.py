"""push to a real registry (Debian's docker-registry), and pull back what was pushed."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import ImageNotFound, InvalidArgument, StrataError
from strata.image.create import store_image
from strata.image.gc import collect
from strata.image.imports import base_config, write_rootfs_layer
from strata.image.root import StoreRoot
from strata.image.store import Image, ImageStore
from strata.oci.config import History, RootFS
from strata.oci.descriptor import Platform
from strata.oci.reference import parse_reference
from strata.registry.client import RegistryClient
from strata.registry.compress import recorded_compressed
from strata.registry.progress import LAYER_EXISTS, PUSHED
from strata.registry.pull import MANIFEST_ACCEPT, pull
from strata.registry.push import ManifestFormat, PushResult, push
from strata.runtime.imageusers import image_users
from tests.registry.conftest import Registry
from tests.registry.fakes import layer_tar

OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BASE = {"bin/hello": b"#!/bin/sh\necho hello\n", "etc/os-release": b'ID="test"\n'}


class Finals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finals: dict[str, str] = {}

    def header(self, text: str) -> None:
        return

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        if final:
            with self.lock:
                self.finals[layer] = text

    def start(self, layer: str, text: str, total: int | None) -> None:
        return

    def advance(self, layer: str, count: int) -> None:
        return


def open_store(path: Path) -> ImageStore:
    return ImageStore(StoreRoot(path))


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageStore]:
    store = open_store(tmp_path / "store")
    yield store
    store.root.close()


def local_image(images: ImageStore, name: str, layers: list[dict[str, bytes]]) -> Image:
    """An image as strata builds them: uncompressed layers, OCI manifest."""
    with images.operation() as lease:
        stored = []
        for i, files in enumerate(layers):
            tar = Path(images.root.path) / f"layer{i}.tar"
            tar.write_bytes(layer_tar(files))
            with tar.open("rb") as src:
                stored.append(write_rootfs_layer(images, lease, src, name=str(tar)))
            tar.unlink()
        config = replace(
            base_config(datetime(2024, 1, 1, tzinfo=UTC)),
            rootfs=RootFS("layers", tuple(layer.diff_id for layer in stored)),
            history=tuple(History(created_by=f"layer {i}") for i in range(len(stored))),
        )
        return store_image(
            images, lease, config=config, layers=stored, names=[parse_reference(name)]
        )


def app_layers(seed: int = 1) -> list[dict[str, bytes]]:
    return [BASE, {"app/data.bin": random.Random(seed).randbytes(200_000)}]


def do_push(
    images: ImageStore,
    registry: Registry,
    name: str,
    *,
    source: str | None = None,
    fmt: ManifestFormat | None = None,
    compression: str = "gzip",
    events: Finals | None = None,
) -> PushResult:
    ref = parse_reference(f"{registry.address}/{name}")
    with RegistryClient(registry.address, retries=1, backoff=0) as client:
        return push(
            images,
            client,
            ref,
            source=source,
            manifest_format=fmt,
            compression="zstd" if compression == "zstd" else "gzip",
            events=events,
        )


def remote_manifest(registry: Registry, repo: str, ref: str) -> tuple[str, dict[str, object]]:
    with RegistryClient(registry.address) as client:
        got = client.get_manifest(repo, ref, MANIFEST_ACCEPT)
    return got.media_type, json.loads(got.data)


def test_push_then_pull_gives_the_same_image(
    images: ImageStore, registry: Registry, tmp_path: Path
) -> None:
    image = local_image(images, f"{registry.address}/round/app:1", app_layers())
    events = Finals()
    result = do_push(images, registry, "round/app:1", events=events)
    assert set(events.finals.values()) == {PUSHED}
    assert sorted(events.finals) == sorted(lay.diff_id.short for lay in images.layers(image))
    media_type, doc = remote_manifest(registry, "round/app", "1")
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    with RegistryClient(registry.address) as client:
        assert client.get_manifest("round/app", "1", MANIFEST_ACCEPT).digest == result.digest
    layers = doc["layers"]
    assert isinstance(layers, list)
    assert [entry["mediaType"] for entry in layers] == [OCI_LAYER_GZIP] * 2
    config = doc["config"]
    assert isinstance(config, dict) and config["digest"] == str(image.config_digest)
    # A fresh store pulls it back: same image ID, same layers.
    other = open_store(tmp_path / "other")
    with RegistryClient(registry.address) as client:
        pulled = pull(
            other,
            client,
            parse_reference(f"{registry.address}/round/app:1"),
            unpack=False,
            platform=Platform.current(),
        )
    assert pulled.image.id == image.id
    assert pulled.digest == result.digest
    assert [lay.diff_id for lay in other.layers(pulled.image)] == [
        lay.diff_id for lay in images.layers(image)
    ]
    other.root.close()


def test_second_push_keeps_the_digest_and_does_not_compress(
    images: ImageStore, registry: Registry
) -> None:
    image = local_image(images, f"{registry.address}/again/app:1", app_layers(2))
    first = do_push(images, registry, "again/app:1")
    made = [recorded_compressed(images.db, lay.diff_id, "gzip") for lay in images.layers(image)]
    assert all(m is not None and images.content.exists(m.digest) for m in made)
    # Drop the compressed blobs: a push that compressed again would have to make them.
    for m in made:
        assert m is not None
        images.content.delete(m.digest)
    events = Finals()
    second = do_push(images, registry, "again/app:1", events=events)
    assert second.digest == first.digest
    assert set(events.finals.values()) == {LAYER_EXISTS}
    assert not any(m is not None and images.content.exists(m.digest) for m in made)


def test_blobs_in_another_repository_are_mounted(images: ImageStore, registry: Registry) -> None:
    local_image(images, f"{registry.address}/mount/src:1", app_layers(3))
    do_push(images, registry, "mount/src:1")
    events = Finals()
    result = do_push(
        images, registry, "mount/dst:1", source=f"{registry.address}/mount/src:1", events=events
    )
    assert set(events.finals.values()) == {"Mounted from mount/src"}
    _, doc = remote_manifest(registry, "mount/dst", str(result.digest))
    assert doc["schemaVersion"] == 2


def test_compressed_blob_collected_since_is_made_again_identically(
    images: ImageStore, registry: Registry
) -> None:
    image = local_image(images, f"{registry.address}/remake/a:1", app_layers(4))
    first = do_push(images, registry, "remake/a:1")
    for lay in images.layers(image):
        made = recorded_compressed(images.db, lay.diff_id, "gzip")
        assert made is not None
        images.content.delete(made.digest)
    with images.db.transaction() as conn:
        conn.execute("DELETE FROM blob_sources")  # no mount: the bytes must be sent
    events = Finals()
    second = do_push(images, registry, "remake/b:1", source=f"{registry.address}/remake/a:1",
                     events=events)  # fmt: skip
    assert set(events.finals.values()) == {PUSHED}
    assert second.digest == first.digest


def test_docker_format_and_zstd(images: ImageStore, registry: Registry) -> None:
    local_image(images, f"{registry.address}/fmt/app:1", app_layers(5))
    source = f"{registry.address}/fmt/app:1"
    docker = do_push(images, registry, "fmt/docker:1", source=source, fmt="docker")
    media_type, doc = remote_manifest(registry, "fmt/docker", "1")
    assert media_type == docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"  # type: ignore[index]
    assert {lay["mediaType"] for lay in doc["layers"]} == {  # type: ignore[attr-defined]
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    zstd = do_push(images, registry, "fmt/zstd:1", source=source, compression="zstd")
    _, doc = remote_manifest(registry, "fmt/zstd", "1")
    assert {lay["mediaType"] for lay in doc["layers"]} == {  # type: ignore[attr-defined]
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    assert zstd.digest != docker.digest
    with pytest.raises(InvalidArgument, match="Docker schema 2 has no zstd"):
        do_push(images, registry, "fmt/bad:1", source=source, fmt="docker", compression="zstd")


def test_pulled_image_pushed_elsewhere_keeps_its_digest(
    images: ImageStore, registry: Registry, tmp_path: Path
) -> None:
    local_image(images, f"{registry.address}/keep/orig:1", app_layers(6))
    original = do_push(images, registry, "keep/orig:1", fmt="docker")
    other = open_store(tmp_path / "other")
    with RegistryClient(registry.address) as client:
        pull(other, client, parse_reference(f"{registry.address}/keep/orig:1"), unpack=False)
    events = Finals()
    copy = do_push(other, registry, "keep/copy:1", source=f"{registry.address}/keep/orig:1",
                   events=events)  # fmt: skip
    assert copy.digest == original.digest
    assert copy.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    # The pull recorded where the blobs came from: they are mounted, not sent.
    assert set(events.finals.values()) == {"Mounted from keep/orig"}
    other.root.close()


def test_push_of_an_unknown_image(images: ImageStore, registry: Registry) -> None:
    with pytest.raises(ImageNotFound) as info:
        do_push(images, registry, "nothing:1")
    assert str(info.value) == f"push {registry.address}/nothing:1: No such image: " + (
        f"{registry.address}/nothing:1"
    )


def test_push_refuses_a_digest_reference(images: ImageStore, registry: Registry) -> None:
    digest = Digest.of(b"x")
    with pytest.raises(StrataError, match="cannot push to a digest reference"):
        do_push(images, registry, f"app@{digest}")


def test_gc_keeps_the_compressed_blobs_of_live_layers(
    images: ImageStore, registry: Registry
) -> None:
    image = local_image(images, f"{registry.address}/keep/a:1", app_layers(3))
    do_push(images, registry, "keep/a:1")
    made = [recorded_compressed(images.db, lay.diff_id, "gzip") for lay in images.layers(image)]
    assert all(m is not None and images.content.exists(m.digest) for m in made)
    collect(images)
    # Still there: the next push sends them as they are.
    assert all(m is not None and images.content.exists(m.digest) for m in made)
    # The layers' last image goes: so do they.
    images.remove(str(image.id), users=image_users, force=True)
    assert not any(m is not None and images.content.exists(m.digest) for m in made)
