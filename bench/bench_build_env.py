"""Metadata-only build steps: `strata build` of a Dockerfile of N ``ENV`` lines (issue 10).

    python bench/bench_build_env.py [--lines 1000 10000] [--runs 3] [--workdir /var/tmp/strata-env]
                                    [--docker 1000]

Each run builds into a fresh store (the Debian base imported first, not timed), so every step is
a cache miss that stores its image and cache record. Prints the median wall time per size and
the time per step. ``--docker N...`` also times Docker's classic builder (``DOCKER_BUILDKIT=0``,
``--no-cache``) on the same Dockerfile of N lines, against the anchors' Docker
(``DOCKER_HOST``, default unix:///var/tmp/anchors/docker.sock, with debian:bookworm loaded),
removing the image and its intermediate images after each run, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import STRATA, drop_file, median, run
from tests.conftest import debian_rootfs_tar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-env"))
    parser.add_argument("--docker", type=int, nargs="*", default=[], metavar="LINES")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    base = debian_rootfs_tar()
    for lines in args.lines:
        ctx = work / f"ctx-{lines}"
        ctx.mkdir(exist_ok=True)
        body = "".join(f"ENV V{i}=value{i}\n" for i in range(lines))
        (ctx / "Dockerfile").write_text("FROM debian:bookworm\n" + body)
        times = []
        for _ in range(args.runs):
            store = work / "store"
            drop_file(store)
            env = {**os.environ, "STRATA_ROOT": str(store)}
            run([*STRATA, "import", str(base), "debian:bookworm"], env)
            times.append(run([*STRATA, "build", "-q", "-t", "env:bench", str(ctx)], env))
        mid = median(times)
        shown = " ".join(f"{t:.1f}" for t in times)
        print(f"{lines} ENV lines: median {mid:.2f} s ({mid / lines * 1000:.1f} ms/step); {shown}")
        drop_file(work / "store")
        if lines in args.docker:
            docker = _docker(ctx, args.runs)
            print(
                f"{lines} ENV lines, docker (classic builder): median {docker:.2f} s"
                f" ({docker / lines * 1000:.1f} ms/step); strata/docker {mid / docker:.3f}"
            )


def _docker(ctx: Path, runs: int) -> float:
    """Median wall time of Docker's classic builder on ``ctx``, each run from no cache."""
    env = {
        **os.environ,
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/tmp/anchors/docker.sock"),
        "DOCKER_BUILDKIT": "0",
    }
    tag = f"strata-bench-env:{os.getpid()}"
    times = []
    for _ in range(runs):
        times.append(run(["docker", "build", "-q", "--no-cache", "-t", tag, str(ctx)], env))
        run(["docker", "rmi", tag], env)  # and the intermediate images only it kept
    return median(times)


if __name__ == "__main__":
    main()
