"""pull against a registry that serves crafted answers: the happy path, resume, and bad input."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.diff.chain import chain_ids, layer_key
from strata.digest import Digest
from strata.errors import (
    AuthenticationRequired,
    DigestMismatch,
    FormatError,
    NotFound,
    RegistryNotFound,
    RegistryUnreachable,
    SizeMismatch,
    StrataError,
    TooLarge,
)
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.descriptor import Platform
from strata.oci.reference import parse_reference
from strata.registry.client import RegistryClient
from strata.registry.progress import ALREADY_EXISTS, PULL_COMPLETE
from strata.registry.pull import PullResult, pull
from tests.registry.fakes import (
    OCI_MANIFEST,
    FakeRegistry,
    _Handler,
    corrupt_hook,
    fake_registry,
    make_image,
    make_index,
    sha,
    truncate_hook,
)

BASE = {"bin/hello": b"#!/bin/sh\necho hello\n", "etc/os-release": b'ID="test"\n'}
APP = {"app/data.bin": random.Random(5).randbytes(300_000), "app/run": b"run\n"}


class Recorder:
    """Collects transfer events (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finals: dict[str, str] = {}
        self.headers: list[str] = []

    def header(self, text: str) -> None:
        self.headers.append(text)

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        if final:
            with self.lock:
                self.finals[layer] = text

    def start(self, layer: str, text: str, total: int | None) -> None:
        return

    def advance(self, layer: str, count: int) -> None:
        return


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageStore]:
    root = StoreRoot(tmp_path / "store")
    yield ImageStore(root)
    root.close()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as reg:
        yield reg


def do_pull(
    images: ImageStore,
    reg: FakeRegistry,
    name: str,
    *,
    unpack: bool = False,
    platform: Platform | None = None,
    events: Recorder | None = None,
) -> PullResult:
    with RegistryClient(reg.host, retries=1, backoff=0) as client:
        return pull(
            images,
            client,
            parse_reference(f"{reg.host}/{name}"),
            unpack=unpack,
            platform=platform or Platform("amd64", "linux"),
            events=events,
        )


def pull_error(
    images: ImageStore, reg: FakeRegistry, name: str, *, unpack: bool = False
) -> StrataError:
    with pytest.raises(StrataError) as info:
        do_pull(images, reg, name, unpack=unpack)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"pull {reg.host}/{name}: "), message
    assert images.all() == [], "nothing half-pulled may appear as an image"
    return info.value


@pytest.mark.root
def test_pull_stores_verifies_unpacks_and_names(images: ImageStore, fake: FakeRegistry) -> None:
    image = make_image([BASE, APP])
    fake.add_image("app", "1", image)
    events = Recorder()
    result = do_pull(images, fake, "app:1", unpack=True, events=events)
    assert not result.up_to_date
    assert str(result.digest) == image.digest
    stored = result.image
    assert str(stored.manifest_digest) == image.digest
    assert str(stored.config_digest) == sha(image.config)
    assert [str(t) for t in stored.tags] == [f"{fake.host}/app:1"]
    assert stored.repo_digests == (f"{fake.host}/app@{image.digest}",)
    layers = images.layers(stored)
    assert [str(layer.diff_id) for layer in layers] == image.diff_ids
    assert [str(layer.blob) for layer in layers] == [sha(b) for b in image.layers]
    assert all(images.content.exists(layer.blob) for layer in layers)
    # Extracted as part of the pull, under the keys `strata run` looks for.
    from strata.snapshot.select import default_snapshotter

    snapshotter = default_snapshotter(images.root.path, images.db)
    for chain in chain_ids([Digest.parse(d) for d in image.diff_ids]):
        snapshotter.stat(layer_key(chain))
    top = layer_key(chain_ids([Digest.parse(d) for d in image.diff_ids])[-1])
    assert (snapshotter.upper(top) / "app" / "run").read_bytes() == b"run\n"
    assert events.headers == ["1: Pulling from app"]
    assert set(events.finals.values()) == {PULL_COMPLETE}
    # Pulling again changes nothing and asks for no blob.
    before = len(fake.blob_gets())
    again = do_pull(images, fake, "app:1", unpack=True)
    assert again.up_to_date and again.image.manifest_digest == stored.manifest_digest
    assert len(fake.blob_gets()) == before


def test_layers_already_present_are_skipped(images: ImageStore, fake: FakeRegistry) -> None:
    first = make_image([BASE])
    second = make_image([BASE, APP])
    fake.add_image("one", "latest", first)
    fake.add_image("two", "latest", second)
    do_pull(images, fake, "one")
    gets = len(fake.blob_gets())
    events = Recorder()
    do_pull(images, fake, "two", events=events)
    base, app = (Digest.parse(sha(b)).short for b in second.layers)
    assert events.finals == {base: ALREADY_EXISTS, app: PULL_COMPLETE}
    # Only the new layer and the new config were fetched.
    assert len(fake.blob_gets()) == gets + 2


def test_docker_schema2_and_index_pick_this_platform(
    images: ImageStore, fake: FakeRegistry
) -> None:
    amd = make_image([BASE], architecture="amd64", docker=True)
    arm = make_image([APP], architecture="arm64")
    for image in (amd, arm):
        fake.add_manifest("multi", image.digest, image.media_type, image.manifest)
        fake.blobs.update(image.blobs)
    index = make_index(
        [
            (arm, {"os": "linux", "architecture": "arm64"}),
            (amd, {"os": "linux", "architecture": "amd64"}),
        ]
    )
    fake.add_manifest("multi", "latest", "application/vnd.oci.image.index.v1+json", index)
    result = do_pull(images, fake, "multi")
    assert str(result.image.manifest_digest) == amd.digest
    assert str(result.digest) == sha(index)  # the repo digest is what the tag names
    # ... and it is what `image ls --digests` shows, as Docker shows the index's.
    assert [d.split("@")[1] for d in result.image.repo_digests] == [sha(index)]
    assert result.image.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    other = do_pull(images, fake, "multi", platform=Platform("arm64", "linux"))
    assert str(other.image.manifest_digest) == arm.digest


def test_index_without_this_platform(images: ImageStore, fake: FakeRegistry) -> None:
    arm = make_image([APP], architecture="arm64")
    fake.add_manifest("armonly", arm.digest, arm.media_type, arm.manifest)
    fake.blobs.update(arm.blobs)
    index = make_index([(arm, {"os": "linux", "architecture": "arm64"})])
    fake.add_manifest("armonly", "latest", "application/vnd.oci.image.index.v1+json", index)
    err = pull_error(images, fake, "armonly:latest")
    assert isinstance(err, NotFound)
    assert "no matching manifest for linux/amd64 in the manifest list entries" in str(err)
    assert "linux/arm64" in str(err)


def test_blob_digest_mismatch(images: ImageStore, fake: FakeRegistry) -> None:
    image = make_image([BASE, APP])
    fake.add_image("bad", "1", image)
    wrong = sha(image.layers[1])
    fake.hooks[wrong] = corrupt_hook
    err = pull_error(images, fake, "bad:1")
    assert isinstance(err, DigestMismatch)
    assert f"blob {wrong}: digest mismatch (got sha256:" in str(err)
    assert not images.content.exists(Digest.parse(wrong))
    # What was verified stays for the next attempt.
    assert images.content.exists(Digest.parse(sha(image.layers[0])))
    assert images.content.exists(Digest.parse(sha(image.config)))


def test_truncated_blob_is_kept_and_resumed(images: ImageStore, fake: FakeRegistry) -> None:
    big = {"app/big.bin": random.Random(7).randbytes(3 << 20)}
    image = make_image([big])
    fake.add_image("cut", "1", image)
    digest = sha(image.layers[0])
    # Every answer stops after 2 MiB, resumed ones too: the client gives up.
    fake.hooks[digest] = truncate_hook(2 << 20, always=True)
    err = pull_error(images, fake, "cut:1")
    assert isinstance(err, RegistryUnreachable)
    assert f"blob {digest}: connection lost after " in str(err), str(err)
    (kept,) = [i.offset for i in images.content.ingests()]
    assert 0 < kept <= 2 << 20
    # The registry behaves again: the next pull asks only for the rest.
    del fake.hooks[digest]
    do_pull(images, fake, "cut:1")
    ranges = [h.get("Range") for m, p, h in fake.requests if p.endswith(digest) and m == "GET"]
    assert ranges[-1] == f"bytes={kept}-"
    assert images.content.ingests() == []
    assert images.lookup(f"{fake.host}/cut:1") is not None


def test_blob_shorter_than_the_manifest_says(images: ImageStore, fake: FakeRegistry) -> None:
    image = make_image([APP])
    fake.add_image("short", "1", image)
    digest = sha(image.layers[0])

    def short(handler: _Handler, data: bytes) -> bool:
        handler.send_blob(data[:1000])
        return True

    fake.hooks[digest] = short
    err = pull_error(images, fake, "short:1")
    assert isinstance(err, SizeMismatch)
    size = len(image.layers[0])
    assert f"blob {digest}: the registry sends 1000 bytes, the manifest says {size}" in str(err)


def test_connection_dropped_mid_blob_is_resumed_by_range(
    images: ImageStore, fake: FakeRegistry
) -> None:
    image = make_image([{"app/big.bin": random.Random(8).randbytes(3 << 20)}])
    fake.add_image("drop", "1", image)
    digest = sha(image.layers[0])
    fake.hooks[digest] = truncate_hook(2 << 20)
    result = do_pull(images, fake, "drop:1")
    assert str(result.image.manifest_digest) == image.digest
    ranges = [h.get("Range") for m, p, h in fake.requests if p.endswith(digest) and m == "GET"]
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1] is not None and ranges[1] != "bytes=0-"


def test_manifest_over_4_mib(images: ImageStore, fake: FakeRegistry) -> None:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "padding": "x" * (4 << 20)}
    fake.add_manifest("huge", "1", OCI_MANIFEST, json.dumps(doc).encode())
    assert isinstance(pull_error(images, fake, "huge:1"), TooLarge)


def test_manifest_media_type_disagreeing_with_content(
    images: ImageStore, fake: FakeRegistry
) -> None:
    image = make_image([BASE])
    fake.add_manifest("liar", "1", "application/vnd.oci.image.index.v1+json", image.manifest)
    fake.blobs.update(image.blobs)
    err = pull_error(images, fake, "liar:1")
    assert isinstance(err, FormatError)
    assert "mediaType" in str(err)


@pytest.mark.parametrize("unpack", [False, pytest.param(True, marks=pytest.mark.root)])
def test_diff_id_not_what_the_config_says(
    images: ImageStore, fake: FakeRegistry, unpack: bool
) -> None:
    image = make_image([BASE], diff_ids=["sha256:" + "ab" * 32])
    fake.add_image("lies", "1", image)
    err = pull_error(images, fake, "lies:1", unpack=unpack)
    assert isinstance(err, DigestMismatch)
    assert "sha256:" + "ab" * 32 in str(err)
    assert no_snapshots(images)
    # The blob itself was what the manifest said: it stays.
    assert images.content.exists(Digest.parse(sha(image.layers[0])))


@pytest.mark.root
def test_layer_extracted_while_downloading_with_wrong_bytes(
    images: ImageStore, fake: FakeRegistry
) -> None:
    image = make_image([APP, BASE])
    fake.add_image("badstream", "1", image)
    wrong = sha(image.layers[0])  # the lowest layer: extracted from the download stream
    fake.hooks[wrong] = corrupt_hook
    err = pull_error(images, fake, "badstream:1", unpack=True)
    assert isinstance(err, DigestMismatch)
    assert f"blob {wrong}: digest mismatch (got sha256:" in str(err)
    assert not images.content.exists(Digest.parse(wrong))
    assert no_snapshots(images)


def no_snapshots(images: ImageStore) -> bool:
    """No snapshot was committed or left half-made (only a store that never unpacked, or
    whose snapshotter holds nothing)."""
    if not (images.root.path / "snapshots").is_dir():
        return True
    from strata.snapshot.select import default_snapshotter

    return list(default_snapshotter(images.root.path, images.db).walk()) == []


def test_401_without_credentials(images: ImageStore, fake: FakeRegistry) -> None:
    fake.require_auth = True
    fake.add_image("private", "1", make_image([BASE]))
    err = pull_error(images, fake, "private:1")
    assert isinstance(err, AuthenticationRequired)
    assert "strata login" in str(err)


def test_unknown_name_and_unknown_tag(images: ImageStore, fake: FakeRegistry) -> None:
    fake.add_image("known", "1", make_image([BASE]))
    err = pull_error(images, fake, "nothere:1")
    assert isinstance(err, RegistryNotFound)
    assert "NAME_UNKNOWN" in str(err)
    err = pull_error(images, fake, "known:2")
    assert isinstance(err, RegistryNotFound)
    assert "MANIFEST_UNKNOWN" in str(err)


def test_registry_down(images: ImageStore) -> None:
    reg = FakeRegistry(port=1)  # nothing listens on port 1
    err = pull_error(images, reg, "app:1")
    assert isinstance(err, RegistryUnreachable)


def test_platform_asked_for_must_match_a_single_image(
    images: ImageStore, fake: FakeRegistry
) -> None:
    fake.add_image("amdonly", "1", make_image([BASE]))
    with pytest.raises(NotFound, match="does not match the specified platform: wanted linux/arm64"):
        do_pull(images, fake, "amdonly:1", platform=Platform("arm64", "linux"))
    assert images.all() == []
