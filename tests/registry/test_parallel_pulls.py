"""Pulls in parallel processes against a real docker-registry (issue 10).

Eight ``strata pull`` processes at once, of images that share big layers and of one that lists a
layer twice, all succeed and leave every image whole and runnable (hence root): a second writer
of a blob waits for the first and uses its result. And a pull racing ``rmi`` + ``image prune`` of
the same image under another name never leaves an image whose blobs were collected: pull leases
before it looks.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.image.gc import collect
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.reference import parse_reference
from strata.registry.client import RegistryClient
from strata.registry.progress import ALREADY_EXISTS
from strata.registry.pull import pull
from strata.runtime.imageusers import image_users
from tests.conftest import Strata, debian_rootfs_tar
from tests.registry.conftest import Registry

BIG = 24 << 20
pytestmark = [pytest.mark.root, pytest.mark.slow]  # Debian layers are pushed: ~1.5 min


@dataclass(frozen=True)
class Published:
    one: str  # base + COPY a
    two: str  # base + COPY b: shares the big base layer with ``one``
    twice: str  # base + COPY big2 + COPY big2: lists one (4 MB) layer twice
    alias: str  # the same image as ``one`` under another repository


@pytest.fixture(scope="module")
def published(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Images built by strata on Debian plus a big random layer, pushed to the registry."""
    work = tmp_path_factory.mktemp("parallel-pulls")
    strata = Strata(work / "store")
    strata("image", "import", str(debian_rootfs_tar()), "debian:bookworm")
    base = work / "base"
    base.mkdir()
    (base / "big").write_bytes(os.urandom(BIG))
    (base / "Dockerfile").write_text("FROM debian:bookworm\nCOPY big /big\n")
    strata("build", "-t", "base:1", str(base))
    builds = {
        "one": "COPY a /a\n",
        "two": "COPY b /b\n",
        "twice": "COPY big2 /x\nCOPY big2 /x\n",
    }
    prefix = f"{registry.address}/par-{secrets.token_hex(4)}"
    for name, steps in builds.items():
        ctx = work / name
        ctx.mkdir()
        (ctx / "a").write_text("a\n")
        (ctx / "b").write_text("b\n")
        (ctx / "big2").write_bytes(os.urandom(4 << 20))
        (ctx / "Dockerfile").write_text("FROM base:1\n" + steps)
        strata("build", "-t", f"{prefix}-{name}:1", str(ctx))
        strata("push", f"{prefix}-{name}:1")
    strata("tag", f"{prefix}-one:1", f"{prefix}-alias:1")
    strata("push", f"{prefix}-alias:1")
    return Published(*(f"{prefix}-{n}:1" for n in ("one", "two", "twice", "alias")))


def spawn(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "strata", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STRATA_ROOT": str(root)},
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store"


def incomplete(root: Path) -> list[str]:
    """Every listed image's missing or corrupt blobs, checked one by one (empty if all whole)."""
    problems = []
    content = LocalContentStore(root)
    with StoreRoot(root) as sroot:
        images = ImageStore(sroot)
        for image in images.all():
            blobs = [image.manifest_digest, image.config_digest]
            try:
                blobs += [layer.digest for layer in images.manifest(image).layers]
            except Exception as err:  # a broken manifest is what we look for
                problems.append(f"{image.tags}: {err}")
            for digest in blobs:
                try:
                    content.verify(digest)
                except Exception as err:
                    problems.append(f"{image.tags}: {err}")
    return problems


def test_eight_parallel_pulls_sharing_layers_all_succeed(published: Published, store: Path) -> None:
    names = [published.one, published.two, published.twice] * 3
    procs = [spawn(store, "pull", name) for name in names[:8]]
    results = [finish(p) for p in procs]
    assert [code for code, _ in results] == [0] * 8, [err for _, err in results]
    strata = Strata(store)
    listed = strata("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(listed) == sorted([published.one, published.two, published.twice])
    assert incomplete(store) == []
    # And each runs from the layers the parallel pulls extracted.
    for name, path in ((published.one, "/a"), (published.two, "/b"), (published.twice, "/x")):
        out = strata("run", "--rm", name, "sh", "-c", f"test -s /big && wc -c < {path}").stdout
        assert int(out) == (4 << 20 if path == "/x" else 2)
    assert [i for i in (store / "ingest").iterdir()] == []


def test_an_image_listing_one_layer_twice_is_pulled_alone(
    published: Published, store: Path
) -> None:
    code, err = finish(spawn(store, "pull", published.twice))
    assert code == 0, err
    assert incomplete(store) == []


def test_pull_racing_rmi_and_prune_of_the_same_image_never_loses_blobs(
    published: Published, store: Path
) -> None:
    strata = Strata(store)
    for round_ in range(6):
        strata("pull", published.alias)
        # Pull A (finds every blob present: they belong to B) while B is removed and pruned.
        pull = spawn(store, "pull", published.one)
        strata("rmi", published.alias)
        strata("image", "prune", "-f")
        code, err = finish(pull)
        assert code == 0, err
        assert incomplete(store) == [], f"round {round_}"
        strata("rmi", published.one)
        strata("image", "prune", "-f")


class _RemoveOnFirstLook:
    """Pull events that, once the pull has found a layer present, run another command's
    ``rmi`` + ``image prune`` of the image under its other name: the race, made certain."""

    def __init__(self, root: Path, alias: str) -> None:
        self.root, self.alias, self.done = root, alias, False

    def header(self, text: str) -> None:
        return

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        if text == ALREADY_EXISTS and not self.done:
            self.done = True
            with StoreRoot(self.root) as other_root:
                other = ImageStore(other_root)
                other.remove(self.alias, users=image_users)
                other.prune(users=image_users)
                collect(other)

    def start(self, layer: str, text: str, total: int | None) -> None:
        return

    def advance(self, layer: str, count: int) -> None:
        return


def test_pull_leases_what_it_finds_before_it_looks(
    published: Published, registry: Registry, store: Path
) -> None:
    Strata(store)("pull", published.alias)
    events = _RemoveOnFirstLook(store, published.alias)
    with StoreRoot(store) as root, RegistryClient(registry.address) as client:
        ref = parse_reference(published.one)
        pull(ImageStore(root), client, ref, unpack=False, events=events)
    assert events.done
    assert incomplete(store) == []
