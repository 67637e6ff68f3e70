"""The remote image: the image model over a registry, read lazily, stored by `ImageStore.write`
with the same IDs and rows a pull records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import DigestMismatch
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.descriptor import Platform
from strata.oci.reference import parse_reference
from strata.registry.client import RegistryClient
from strata.registry.remote import RemoteImage
from tests.conftest import store_state
from tests.registry.fakes import FakeRegistry, corrupt_hook, fake_registry, make_image, sha
from tests.registry.test_pull import APP, BASE, do_pull


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as reg:
        yield reg


def _store(path: Path) -> ImageStore:
    return ImageStore(StoreRoot(path))


def test_a_remote_image_fetches_only_what_is_asked(fake: FakeRegistry) -> None:
    image = make_image([BASE, APP])
    fake.add_image("app", "1", image)
    with RegistryClient(fake.host, retries=1, backoff=0) as client:
        remote = RemoteImage(client, "app", "1", platform=Platform("amd64", "linux"))
        assert fake.requests == []
        assert str(remote.digest()) == image.digest
        assert fake.blob_gets() == []
        assert str(remote.config_digest()) == sha(image.config)
        assert [str(d) for d in remote.config().rootfs.diff_ids] == image.diff_ids
        assert len(fake.blob_gets()) == 1  # the config, not a layer
        layers = remote.layers()
        assert [str(la.digest) for la in layers] == [sha(b) for b in image.layers]
        with layers[1].compressed() as f:
            assert f.read() == image.layers[1]
        assert len(fake.blob_gets()) == 2


def test_writing_a_remote_image_stores_what_a_pull_does(fake: FakeRegistry, tmp_path: Path) -> None:
    image = make_image([BASE, APP])
    fake.add_image("app", "1", image)
    pulled = _store(tmp_path / "pulled")
    by_pull = do_pull(pulled, fake, "app:1").image
    written = _store(tmp_path / "written")
    with RegistryClient(fake.host, retries=1, backoff=0) as client:
        remote = RemoteImage(client, "app", "1", platform=Platform("amd64", "linux"))
        stored = written.write(remote, names=[parse_reference(f"{fake.host}/app:1")])
    assert (stored.id, stored.manifest_digest, stored.size, stored.tags) == (
        by_pull.id,
        by_pull.manifest_digest,
        by_pull.size,
        by_pull.tags,
    )
    assert written.layers(stored) == pulled.layers(by_pull)


def test_a_corrupt_remote_layer_leaves_the_store_as_it_was(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    image = make_image([BASE, APP])
    fake.add_image("bad", "1", image)
    fake.hooks[sha(image.layers[1])] = corrupt_hook
    images = _store(tmp_path / "store")
    images.db  # noqa: B018 - create the store before taking its state
    before = store_state(images.root.path)
    with RegistryClient(fake.host, retries=1, backoff=0) as client:
        remote = RemoteImage(client, "bad", "1", platform=Platform("amd64", "linux"))
        with pytest.raises(DigestMismatch):
            images.write(remote)
    assert store_state(images.root.path) == before
    assert not images.content.exists(Digest.parse(sha(image.layers[0])))
