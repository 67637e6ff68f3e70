"""`strata push` / `strata pull` against `docker push`/`pull` and `skopeo copy`, ~450 MB image.

    python bench/bench_registry.py [--runs 5] [--workdir /var/tmp/strata-bench/registry]

The image is bench_archive.py's: the Debian minbase layer and a ~290 MB layer of incompressible
files, stored by strata uncompressed (as it builds layers) and loaded into Docker.

push: every tool pushes into a registry of its own that has never seen the image (a fresh
docker-registry on 127.0.0.1 each time, so no tool can skip or mount a blob). strata "cold"
has no compressed blob kept from an earlier push (they are collected first, so it compresses
again); "warm" is the next push, which sends the compressed blobs it kept. skopeo copies from an
OCI layout holding the same uncompressed layers; Docker pushes from its own store. Every tool
gzips.

pull: from anchors.sh's registry (127.0.0.1:5000), where strata pushed it, counted until the
image can run: Docker and strata extract the layers as they pull, skopeo copies into
containers-storage (Podman's store, layers extracted). Each round pulls a variant of the image
that no tool has yet (both layers carry one more small file), so no tool deletes its previous
copy first: on this host's ext4, creating files soon after ~10,000 were deleted costs 2-3x
(the inode allocator's recently_deleted scan), which would measure the deletion, not the pull.
Everything pulled is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_archive import IMAGE, make_image
from common import STRATA, drop_file, markdown_table, median, peers_env, run

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_registry(work: Path) -> Iterator[str]:
    """A docker-registry with empty storage on a free loopback port, for one push."""
    base = work / "fresh-registry"
    drop_file(base)
    base.mkdir(parents=True)
    port = free_port()
    (base / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(base / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()
        drop_file(base)


def quiet(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env=env, capture_output=True, check=False)


def settle() -> None:
    """Let the disk catch up with what the last command wrote or deleted, so that no tool
    pays for another's writeback (ext4 journal commits flush every file's pending data)."""
    os.sync()
    time.sleep(1)


def push_round(
    env: dict[str, str], work: Path, layout: Path, times: dict[str, list[float]]
) -> None:
    # Cold: no compressed blob left from an earlier push (gc collects them: no image uses them).
    run([*STRATA, "image", "prune", "-f"], env)
    for label in ("strata push (cold)", "strata push (warm)"):
        with fresh_registry(work) as reg:
            target = f"{reg}/bench/registry:450mb"
            run([*STRATA, "tag", IMAGE, target], env)
            settle()
            times[label].append(run([*STRATA, "push", target], env))
            run([*STRATA, "rmi", "--no-prune", target], env)
    with fresh_registry(work) as reg:
        target = f"{reg}/bench/registry:450mb"
        run(["docker", "tag", IMAGE, target], env)
        settle()
        times["docker push"].append(run(["docker", "push", target], env))
        run(["docker", "rmi", target], env)
    with fresh_registry(work) as reg:
        target = f"docker://{reg}/bench/registry:450mb"
        argv = ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}", target]
        settle()
        times["skopeo copy (push)"].append(run(argv, env))


def make_variant(env: dict[str, str], work: Path, number: int) -> str:
    """The bench image with one more file in each layer, pushed; returns its reference."""
    import tarfile
    import uuid
    from dataclasses import replace

    from strata.image.create import store_image
    from strata.image.imports import base_config, write_rootfs_layer
    from strata.image.root import StoreRoot
    from strata.image.store import ImageLayer, ImageStore
    from strata.layer.generate import write_tar_from_dir
    from strata.oci.config import History, RootFS
    from strata.oci.mediatypes import OCI_LAYER
    from strata.oci.reference import parse_reference

    marker = f"variant {number} {uuid.uuid4().hex}\n".encode()
    base = work / "variant-base.tar"
    shutil.copyfile(env["ANCHOR_BASE_TAR"], base)
    with tarfile.open(base, "a") as tar:
        info = tarfile.TarInfo("./etc/bench-variant")
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    payload = work / "payload"
    (payload / "variant").write_bytes(marker)
    name = f"{env['ANCHOR_REGISTRY']}/bench/registry:v{number}"
    root = StoreRoot(Path(env["STRATA_ROOT"]))
    images = ImageStore(root)
    try:
        with images.operation() as lease, base.open("rb") as src:
            layer1 = write_rootfs_layer(images, lease, src, name=str(base))
            with images.content.writer(f"bench-{uuid.uuid4().hex}") as writer:
                stats = write_tar_from_dir(payload, writer)
                lease.add("blob", str(stats.diff_id))
                digest = writer.commit(expected=stats.diff_id)
            layer2 = ImageLayer(digest, OCI_LAYER, digest, stats.size)
            config = replace(
                base_config(datetime.now(UTC)),
                rootfs=RootFS("layers", (layer1.diff_id, layer2.diff_id)),
                history=(History(comment="base"), History(comment="payload")),
            )
            store_image(
                images, lease, config=config, layers=[layer1, layer2], names=[parse_reference(name)]
            )
    finally:
        root.close()
        (payload / "variant").unlink()
        base.unlink()
    run([*STRATA, "push", name], env)
    return name


def pull_round(
    env: dict[str, str], work: Path, source: str, number: int, times: dict[str, list[float]]
) -> None:
    pull_env = {**env, "STRATA_ROOT": str(work / f"pull-store-{number}")}
    settle()
    times["strata pull"].append(run([*STRATA, "pull", source], pull_env))
    run([*STRATA, "run", "--rm", source, "true"], pull_env)  # it runs, with nothing to extract
    settle()
    times["docker pull"].append(run(["docker", "pull", source], env))
    argv = ["skopeo", "copy", "--src-tls-verify=false", f"docker://{source}",
            f"containers-storage:{source}"]  # fmt: skip
    settle()
    times["skopeo copy (pull)"].append(run(argv, env))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/registry"))
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    env["STRATA_ROOT"] = str(work / "store")
    drop_file(work / "store")
    make_image(env, work)

    # skopeo's source: an OCI layout with the same uncompressed layers strata keeps.
    archive, layout = work / "image.tar", work / "layout"
    drop_file(layout)
    run([*STRATA, "save", "--format", "oci-archive", "-o", str(archive), IMAGE], env)
    layout.mkdir(parents=True)
    run(["tar", "-xf", str(archive), "-C", str(layout)], env)
    drop_file(archive)

    times: dict[str, list[float]] = {
        k: []
        for k in (
            "strata push (cold)",
            "strata push (warm)",
            "docker push",
            "skopeo copy (push)",
            "strata pull",
            "docker pull",
            "skopeo copy (pull)",
        )
    }
    for _ in range(args.runs):
        push_round(env, work, layout, times)

    # The pull sources: one variant per round, pushed by strata, held by no tool.
    sources = [make_variant(env, work, n) for n in range(args.runs)]
    for n, source in enumerate(sources):
        pull_round(env, work, source, n, times)
    for n, source in enumerate(sources):
        quiet(["docker", "rmi", "-f", source], env)
        quiet(["podman", "rmi", "-f", source], env)
        drop_file(work / f"pull-store-{n}")

    m = {k: median(v) for k, v in times.items()}
    rows = [
        ["push (cold)", f"{m['docker push']:.2f} s", f"{m['skopeo copy (push)']:.2f} s",
         f"{m['strata push (cold)']:.2f} s", f"{m['strata push (cold)'] / m['docker push']:.2f}",
         f"{m['strata push (cold)'] / m['skopeo copy (push)']:.2f}"],
        ["push (warm)", f"{m['docker push']:.2f} s", f"{m['skopeo copy (push)']:.2f} s",
         f"{m['strata push (warm)']:.2f} s", f"{m['strata push (warm)'] / m['docker push']:.2f}",
         f"{m['strata push (warm)'] / m['skopeo copy (push)']:.2f}"],
        ["pull", f"{m['docker pull']:.2f} s", f"{m['skopeo copy (pull)']:.2f} s",
         f"{m['strata pull']:.2f} s", f"{m['strata pull'] / m['docker pull']:.2f}",
         f"{m['strata pull'] / m['skopeo copy (pull)']:.2f}"],
    ]  # fmt: skip
    print(f"image {IMAGE}, medians of {args.runs} runs")
    headers = ["operation", "docker", "skopeo", "strata", "strata / docker", "strata / skopeo"]
    print(markdown_table(headers, rows))
    for key, values in times.items():
        print(f"{key}: " + ", ".join(f"{v:.2f}" for v in values))
    drop_file(layout)
    shutil.rmtree(work / "store", ignore_errors=True)


if __name__ == "__main__":
    main()
