"""`strata save` / `strata load` against `docker save` / `docker load` on a ~450 MB two-layer image.

    python bench/bench_archive.py [--runs 5] [--workdir /var/tmp/strata-bench]

Both tools hold the same image: the Debian base layer from anchors.sh plus a ~280 MB layer of
incompressible files. Each round times, for each tool in turn, a save to a file and a load of
that archive into a store that does not have the image (the image is removed and unused layers
pruned first). Medians of the rounds and the ratio strata/docker are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from strata.image.create import store_image
from strata.image.imports import base_config, write_rootfs_layer
from strata.image.root import StoreRoot
from strata.image.store import ImageLayer, ImageStore
from strata.layer.generate import write_tar_from_dir
from strata.oci.config import History, RootFS
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import parse_reference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STRATA, drop_file, markdown_table, median, peers_env, run

IMAGE = "bench/archive:450mb"


def make_image(env: dict[str, str], work: Path) -> None:
    """Build the two-layer image in strata's store, then give Docker the same one."""

    files = work / "payload"
    if not files.exists():
        files.mkdir(parents=True)
        # 260 x 1 MiB of random data and 4,000 small files: a realistic application layer.
        for i in range(260):
            (files / f"blob{i:03d}.bin").write_bytes(os.urandom(1 << 20))
        small = files / "src"
        small.mkdir()
        for i in range(4000):
            (small / f"f{i:04d}.txt").write_bytes(os.urandom(4096))
    root = StoreRoot(Path(env["STRATA_ROOT"]))
    images = ImageStore(root)
    with images.operation() as lease, open(env["ANCHOR_BASE_TAR"], "rb") as base:
        layer1 = write_rootfs_layer(images, lease, base, name=env["ANCHOR_BASE_TAR"])
        with images.content.writer(f"bench-{uuid.uuid4().hex}") as writer:
            stats = write_tar_from_dir(files, writer)
            lease.add("blob", str(stats.diff_id))
            digest = writer.commit(expected=stats.diff_id)
        layer2 = ImageLayer(digest, OCI_LAYER, digest, stats.size)
        now = datetime.now(UTC)
        config = base_config(now)
        config = replace(
            config,
            rootfs=RootFS("layers", (layer1.diff_id, layer2.diff_id)),
            history=(History(comment="base"), History(comment="payload")),
        )
        store_image(
            images, lease, config=config, layers=[layer1, layer2], names=[parse_reference(IMAGE)]
        )
    root.close()
    archive = work / "seed.tar"
    run([*STRATA, "save", "-o", str(archive), IMAGE], env)
    run(["docker", "load", "-i", str(archive)], env)
    drop_file(archive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/archive"))
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    env["STRATA_ROOT"] = str(work / "store")
    drop_file(work / "store")
    make_image(env, work)

    times: dict[str, list[float]] = {
        k: [] for k in ("docker save", "strata save", "docker load", "strata load")
    }
    d_tar, s_tar = work / "docker.tar", work / "strata.tar"
    for _ in range(args.runs):
        drop_file(d_tar)
        drop_file(s_tar)
        times["docker save"].append(run(["docker", "save", "-o", str(d_tar), IMAGE], env))
        times["strata save"].append(run([*STRATA, "save", "-o", str(s_tar), IMAGE], env))
        run(["docker", "rmi", IMAGE], env)
        times["docker load"].append(run(["docker", "load", "-i", str(d_tar)], env))
        run([*STRATA, "rmi", IMAGE], env)
        times["strata load"].append(run([*STRATA, "load", "-i", str(s_tar)], env))
    size = s_tar.stat().st_size
    rows = []
    for op in ("save", "load"):
        d, s = median(times[f"docker {op}"]), median(times[f"strata {op}"])
        rows.append([op, f"{d:.2f} s", f"{s:.2f} s", f"{s / d:.2f}"])
    print(f"image {IMAGE}: archive {size / 1e6:.0f} MB, medians of {args.runs} runs")
    print(markdown_table(["operation", "docker", "strata", "strata / docker"], rows))
    for key, values in times.items():
        print(f"{key}: " + ", ".join(f"{v:.2f}" for v in values))
    drop_file(d_tar)
    drop_file(s_tar)


if __name__ == "__main__":
    main()
