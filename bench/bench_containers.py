"""Containers, side by side: start latency, commit, and pulling an image apart into layers.

    python bench/bench_containers.py [--runs 10] [--only run,commit,unpack]

* run:    `strata run --rm debian:bookworm true` against `docker run --rm`, `podman run --rm`
          (runc) and raw `runc run` on a bundle prepared once; warm (image already unpacked).
* commit: a container that wrote ~250 MB (200 x 1 MiB random files and 5,000 small ones)
          committed by `strata commit` and by `docker commit`.
* unpack: the 495 MB two-layer image of bench_archive.py: `docker load` (which extracts the
          layers) against strata's first `run` after `strata load` (which extracts them then).

Every tool runs the same Debian bookworm minbase rootfs (anchors.sh's base tar) with host
networking. Medians of --runs (commit and unpack: of min(runs, 5)); ratios strata/peer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STRATA, drop_file, markdown_table, median, peers_env, run

PAYLOAD = (
    "mkdir -p /payload/small && cd /payload"
    " && for i in $(seq 200); do head -c 1048576 /dev/urandom > big$i; done"
    " && for i in $(seq 5000); do head -c 4096 /dev/urandom > small/f$i; done"
)


def bench_run(env: dict[str, str], runs: int, work: Path) -> list[list[str]]:
    strata = [*STRATA, "run", "--rm", "debian:bookworm", "true"]
    docker = ["docker", "run", "--rm", "--network", "host", "debian:bookworm", "true"]
    # Podman's runc is refused rlimits above 1024 on this host (EPERM for nproc/nofile).
    podman = ["podman", "run", "--rm", "--network", "host", "--runtime", "runc",
              "--ulimit", "nproc=1024:1024", "--ulimit", "nofile=1024:1024",
              "localhost/debian:bookworm", "true"]  # fmt: skip
    bundle = work / "runc-bundle"
    if not (bundle / "rootfs" / "bin").exists():
        drop_file(bundle)
        (bundle / "rootfs").mkdir(parents=True)
        subprocess.run(
            ["tar", "-C", str(bundle / "rootfs"), "-xf", env["ANCHOR_BASE_TAR"]], check=True
        )
        subprocess.run(["runc", "spec"], cwd=bundle, check=True)
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["args"], spec["process"]["terminal"] = ["true"], False
        spec["linux"]["namespaces"] = [
            n for n in spec["linux"]["namespaces"] if n["type"] != "network"
        ]
        (bundle / "config.json").write_text(json.dumps(spec))
    raw = ["runc", "--root", str(work / "runc-state"), "run", "--bundle", str(bundle), "bench-raw"]
    for argv in (strata, docker, podman, raw):  # warm every path once
        run(argv, env)
    times: dict[str, list[float]] = {"strata": [], "docker": [], "podman": [], "runc": []}
    for _ in range(runs):
        times["strata"].append(run(strata, env))
        times["docker"].append(run(docker, env))
        times["podman"].append(run(podman, env))
        times["runc"].append(run(raw, env))
    s = median(times["strata"])
    return [
        [f"run --rm true ({name})", f"{median(v) * 1000:.0f} ms", f"{s / median(v):.2f}"]
        for name, v in times.items()
        if name != "strata"
    ] + [["run --rm true (strata)", f"{s * 1000:.0f} ms", "1.00"]]


def bench_commit(env: dict[str, str], runs: int) -> list[list[str]]:
    times: dict[str, list[float]] = {"strata": [], "docker": []}
    for i in range(runs):
        name = f"bench-commit-{i}"
        run([*STRATA, "run", "--name", name, "debian:bookworm", "sh", "-c", PAYLOAD], env)
        run(
            [
                "docker",
                "run",
                "--name",
                name,
                "--network",
                "host",
                "debian:bookworm",
                "sh",
                "-c",
                PAYLOAD,
            ],
            env,
        )
        times["strata"].append(run([*STRATA, "commit", name, f"bench/commit:{i}"], env))
        times["docker"].append(run(["docker", "commit", name, f"bench/commit:{i}"], env))
        run([*STRATA, "rm", name], env)
        run([*STRATA, "rmi", f"bench/commit:{i}"], env)
        run(["docker", "rm", name], env)
        run(["docker", "rmi", f"bench/commit:{i}"], env)
    s, d = median(times["strata"]), median(times["docker"])
    return [["commit ~250 MB", f"docker {d:.2f} s", f"strata {s:.2f} s", f"{s / d:.2f}"]]


def bench_unpack(env: dict[str, str], runs: int, work: Path) -> list[list[str]]:
    image = "bench/archive:450mb"
    archive = work / "unpack.tar"
    if not archive.exists():
        run(["docker", "save", "-o", str(archive), image], env)
    times: dict[str, list[float]] = {"docker load": [], "strata load": [], "strata first run": []}
    for _ in range(runs):
        subprocess.run(["docker", "rmi", image], env=env, capture_output=True, check=False)
        times["docker load"].append(run(["docker", "load", "-i", str(archive)], env))
        subprocess.run([*STRATA, "rmi", image], env=env, capture_output=True, check=False)
        times["strata load"].append(run([*STRATA, "load", "-i", str(archive)], env))
        times["strata first run"].append(run([*STRATA, "run", "--rm", image, "true"], env))
    d = median(times["docker load"])
    sl, sr = median(times["strata load"]), median(times["strata first run"])
    return [["load + unpack 495 MB", f"docker load {d:.2f} s",
             f"strata load {sl:.2f} s + first run {sr:.2f} s = {sl + sr:.2f} s",
             f"{(sl + sr) / d:.2f}"]]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", default="run,commit,unpack")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/containers"))
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    env["STRATA_ROOT"] = str(work / "store")
    if not (work / "store").exists():
        run([*STRATA, "import", env["ANCHOR_BASE_TAR"], "debian:bookworm"], env)
    only = set(args.only.split(","))
    if "run" in only:
        rows = bench_run(env, args.runs, work)
        print(markdown_table(["what", "median", "strata / this"], rows))
    if "commit" in only:
        print(
            markdown_table(
                ["what", "peer", "strata", "strata / peer"], bench_commit(env, min(args.runs, 5))
            )
        )
    if "unpack" in only:
        if "bench/archive:450mb" not in subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], env=env,
            capture_output=True, text=True, check=True).stdout:  # fmt: skip
            raise SystemExit("run bench/bench_archive.py first (it makes the 495 MB image)")
        print(
            markdown_table(
                ["what", "peer", "strata", "strata / peer"],
                bench_unpack(env, min(args.runs, 5), work),
            )
        )
    shutil.rmtree(work / "runc-state", ignore_errors=True)


if __name__ == "__main__":
    main()
