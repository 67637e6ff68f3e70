"""Image lookups against the size of the store: 10 images and 2,000 (issue 11).

    python bench/bench_lookup.py [--runs 7] [--counts 10,2000] [--before /tmp/strata-before/src]

For each store size a fresh STRATA_ROOT holds the target image (the Debian bookworm minbase rootfs
of anchors.sh, imported as ``bench/target:1``) and count - 1 tiny one-file images, each imported
with its own ``LABEL n=<i>`` and tag (so every one has its own config, manifest and name). The
store is filled in one process through the library (`import_rootfs`), by the strata under test.
Then, medians of --runs, the warm-up run not counted, the rounds interleaving every store
and both stratas:

* ``run``:     ``strata run --rm bench/target:1 true`` (image already unpacked);
* ``inspect``: ``strata image inspect bench/target:1`` and by a 12-hex ID prefix;
* ``build``:   ``strata build`` of ``FROM bench/target:1`` + ``RUN true``, the step a cache hit.

``--before SRC`` measures a second strata (e.g. a ``git worktree`` of an earlier commit, its
``src``) the same way, through PYTHONPATH, for a before/after table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STRATA, markdown_table, median, peers_env, run

TARGET = "bench/target:1"
DOCKERFILE = f"FROM {TARGET}\nRUN true\n"


def tiny_tar() -> bytes:
    """A one-file root filesystem: each filler image is this layer with its own label."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("./filler")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    return buf.getvalue()


def populate(root: Path, count: int, base_tar: Path) -> None:
    """Fill ``root`` (runs in the strata under test: see `main`'s ``--populate``)."""
    from strata.image.imports import import_rootfs
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore
    from strata.oci.reference import parse_reference

    images = ImageStore(StoreRoot(root))
    with base_tar.open("rb") as src:
        import_rootfs(images, src, name="-", names=[parse_reference(TARGET)])
    layer = tiny_tar()
    for i in range(1, count):
        import_rootfs(
            images,
            io.BytesIO(layer),
            name="-",
            names=[parse_reference(f"bench/filler{i}:1")],
            changes=[f"LABEL n={i}"],
        )


@dataclass
class Setup:
    """One strata (``src`` on PYTHONPATH; None: this checkout) with a store of ``count`` images."""

    label: str
    count: int
    env: dict[str, str]
    commands: dict[str, list[str]]
    times: dict[str, list[float]] = field(default_factory=dict)


def prepare(label: str, src: str | None, count: int, work: Path, base_tar: Path) -> Setup:
    """Fill a store for one strata, then warm every command (unpacks, fills the build cache)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    env["STRATA_ROOT"] = str(work / "root")
    # Byte-compiled first: with PYTHONDONTWRITEBYTECODE set, an uncompiled tree would pay ~30 ms
    # of compiling on every command, and the comparison would measure that.
    code = src or str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, "-m", "compileall", "-q", code], check=True)
    fill = [sys.executable, __file__, "--populate", str(work / "root")]
    subprocess.run([*fill, "--count", str(count), "--base", str(base_tar)], env=env, check=True)
    (work / "ctx").mkdir()
    (work / "ctx" / "Dockerfile").write_text(DOCKERFILE)
    inspect = [*STRATA, "image", "inspect", "--format", "{{.Id}}", TARGET]
    image_id = subprocess.run(inspect, env=env, capture_output=True, text=True, check=True).stdout
    commands = {
        "run": [*STRATA, "run", "--rm", TARGET, "true"],
        "inspect name": [*STRATA, "image", "inspect", TARGET],
        "inspect ID prefix": [*STRATA, "image", "inspect", image_id.strip()[7:19]],
        "build (cache hit)": [*STRATA, "build", "-q", "-t", "bench/built:1", str(work / "ctx")],
    }
    for argv in commands.values():
        run(argv, env)
    return Setup(label, count, env, commands, {name: [] for name in commands})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--counts", default="10,2000")
    parser.add_argument("--before", help="src directory of the strata to compare against")
    parser.add_argument("--populate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate is not None:
        populate(args.populate, args.count, args.base)
        return
    base_tar = Path(peers_env()["ANCHOR_BASE_TAR"])
    counts = [int(c) for c in args.counts.split(",")]
    versions: list[tuple[str, str | None]] = [("after", None)]
    if args.before:
        versions.insert(0, ("before", args.before))
    with contextlib.ExitStack() as stack:
        setups = []
        for label, src in versions:
            for count in counts:
                work = stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="bench-lookup-", dir="/var/tmp")
                )
                setups.append(prepare(label, src, count, Path(work), base_tar))
        # Rounds interleave every setup, so a load change on the machine hits them all alike.
        for _ in range(args.runs):
            for setup in setups:
                for name, argv in setup.commands.items():
                    setup.times[name].append(run(argv, setup.env))
    rows = []
    for setup in setups:
        print(f"{setup.label} {setup.count}: {setup.times}", file=sys.stderr)
        medians = [f"{median(v) * 1000:.0f} ms" for v in setup.times.values()]
        rows.append([setup.label, f"{setup.count:,}", *medians])
    headers = ["strata", "images", "run --rm true", "inspect name", "inspect ID prefix", "build"]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
