"""Builds racing ``image prune -af``, ``builder prune -af`` and ``rmi -f`` (issue 10).

A build holds everything it depends on with its lease (`strata.builder.hold`): its base image's
blobs and layer snapshots, the cache images it reuses, the stage images it copies from, the
layers and snapshots it makes. So while other commands remove images and the build cache in a
loop, every build either succeeds, and the image it made is complete (every blob there, its
digest right) and runs, or fails with a clean one-line error because its base was removed
before it started. The store checks clean afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from tests.conftest import Strata, debian_rootfs_tar
from tests.system.conftest import assert_clean

pytestmark = [pytest.mark.root, pytest.mark.peers, pytest.mark.slow]

BASE = "race/base"
RACE_SECONDS = 45.0
BUILDERS = 2
BASE_GONE = f"Error: FROM {BASE}: No such image: {BASE} "


@dataclass
class Outcomes:
    built: list[tuple[str, str]] = field(default_factory=list)  # (tag, image ID)
    base_gone: int = 0
    failures: list[str] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)


def _base(strata: Strata, ctx: Path) -> None:
    """Make sure ``race/base`` exists (built again after a prune or rmi took it)."""
    if strata("image", "inspect", BASE, check=False).returncode == 0:
        return
    proc = strata("build", "-q", "-t", BASE, str(ctx), check=False)
    assert proc.returncode == 0, f"building the base failed: {proc.stderr}"


def _dockerfile(ctx: Path, variant: int, n: int) -> None:
    """Two stages: RUN, COPY from the context and from the first stage, metadata around them.
    A few variants, so builds both hit and miss the cache."""
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "file.txt").write_text(f"file {n % 2}\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE} AS src\n"
        f"RUN echo variant {variant} > /variant\n"
        f"FROM {BASE}\n"
        "ENV A=1\n"
        "COPY file.txt /file.txt\n"
        "COPY --from=src /variant /variant\n"
        f"LABEL variant={variant}\n"
        "RUN cat /variant /file.txt > /both\n"
        "ENV B=2\n"
        'CMD ["cat", "/both"]\n'
    )


def _builder(strata: Strata, index: int, work: Path, stop: threading.Event, out: Outcomes) -> None:
    rng = random.Random(index)
    n = 0
    while not stop.is_set():
        ctx = work / f"ctx-{index}-{n}"
        _dockerfile(ctx, rng.randrange(3), n)
        tag = f"race/out{index}:{n}"
        proc = strata("build", "-q", "-t", tag, str(ctx), check=False)
        if proc.returncode == 0:
            out.built.append((tag, proc.stdout.strip()))
        elif proc.stderr.startswith(BASE_GONE) and proc.stderr.count("\n") == 1:
            out.base_gone += 1
        else:
            out.failures.append(f"build {tag}: exit {proc.returncode}\n{proc.stderr}")
        n += 1


def _remover(
    strata: Strata, base_ctx: Path, keep: str, stop: threading.Event, out: Outcomes
) -> None:
    try:
        _remove(strata, base_ctx, keep, stop, out)
    except AssertionError as err:
        out.failures.append(f"the remover stopped: {err}")


def _remove(
    strata: Strata, base_ctx: Path, keep: str, stop: threading.Event, out: Outcomes
) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        choice = rng.choice(["image prune", "builder prune", "rmi base", "rmi intermediate"])
        if choice == "image prune":
            args: tuple[str, ...] = ("image", "prune", "-af")
        elif choice == "builder prune":
            args = ("builder", "prune", "-af")
        elif choice == "rmi base":
            args = ("rmi", "-f", BASE)
        else:
            # Not debian itself: -f would untag it (a container stands on it), and the base
            # could not be built again.
            ids = [i for i in strata("images", "-aq", check=False).stdout.split() if i != keep]
            if not ids:
                continue
            args = ("rmi", "-f", rng.choice(ids))
        proc = strata(*args, check=False)
        out.removals.append(choice)
        # rmi of an image a container stands on, or of one removed meanwhile, is refused.
        refused = "No such image" in proc.stderr or "conflict" in proc.stderr
        if proc.returncode != 0 and not refused:
            out.failures.append(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
        _base(strata, base_ctx)
        time.sleep(rng.uniform(0.0, 0.4))


def _assert_complete(root: Path, reference: str) -> None:
    """Every blob of the image's manifest is there and its digest is right."""
    with StoreRoot(root) as store:
        images = ImageStore(store)
        image = images.get(reference)
        manifest = images.manifest(image)
        store.content.verify(image.manifest_digest)
        for desc in (manifest.config, *manifest.layers):
            store.content.verify(desc.digest)
        images.config(image)


def test_builds_survive_prunes_and_rmi(strata: Strata, tmp_path: Path) -> None:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    # A container keeps debian itself (prune -a spares what a container uses); the base built
    # on it, with a layer of its own, is what the prunes and rmi take away.
    strata("create", "--name", "anchor", "debian:bookworm", "true")
    base_ctx = tmp_path / "base"
    base_ctx.mkdir()
    (base_ctx / "Dockerfile").write_text(
        "FROM debian:bookworm\nRUN echo base > /base.txt\nLABEL role=base\n"
    )
    _base(strata, base_ctx)
    out = Outcomes()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_builder, args=(strata, i, tmp_path, stop, out))
        for i in range(BUILDERS)
    ]
    debian = strata("images", "-q", "debian:bookworm").stdout.strip()
    remover = threading.Thread(target=_remover, args=(strata, base_ctx, debian, stop, out))
    threads.append(remover)
    for thread in threads:
        thread.start()
    time.sleep(RACE_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    print(f"built {len(out.built)}, base gone {out.base_gone}, removals {len(out.removals)}")
    assert not out.failures, "\n".join(out.failures)
    assert out.built, f"no build succeeded ({out.base_gone} found their base gone)"
    assert {"image prune", "builder prune", "rmi base"} <= set(out.removals), out.removals

    # Each image that survived the prunes is whole and runs; then one more build of each
    # builder's last Dockerfile, on what the race left of the cache, is whole and runs too.
    survivors = [
        tag for tag, _ in out.built if strata("image", "inspect", tag, check=False).returncode == 0
    ]
    for tag in survivors:
        _assert_complete(strata.root, tag)
    for tag in survivors[-2:]:
        assert strata("run", "--rm", tag).stdout.startswith("variant ")
    _base(strata, base_ctx)
    for index in range(BUILDERS):
        ctx = tmp_path / f"final-{index}"
        _dockerfile(ctx, index, index)
        image = strata("build", "-q", "-t", f"race/final{index}", str(ctx)).stdout.strip()
        _assert_complete(strata.root, image)
        both = strata("run", "--rm", image).stdout
        assert both == f"variant {index}\nfile {index % 2}\n"
    strata("rm", "-f", "anchor")
    strata("image", "prune", "-af")
    strata("builder", "prune", "-af")
    assert_clean(strata)
