"""Dockerfile builds: strata vs Docker's legacy builder vs ``buildah bud --layers``.

One run, side by side, medians. The Dockerfile needs no network: a base image, RUN steps that
write files, a COPY of a context of ~5,000 files / ~100 MB, metadata steps. Three cases:
a cold build (--no-cache), a rebuild with no change, and a rebuild after editing one source
file (the COPY step and what follows run again).

    .venv/bin/python bench/bench_build.py --runs 5
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path

from common import STRATA, markdown_table, median, peers_env, run

DOCKERFILE = """\
ARG BASE=debian:bookworm
FROM ${BASE}
RUN mkdir -p /opt/data && head -c 20000000 /dev/zero > /opt/data/blob
RUN for i in $(seq 1 300); do echo "file $i" > /opt/data/f$i; done
ENV APP_HOME=/app
WORKDIR /app
LABEL org.example.bench=build
COPY . /app/
RUN find /app -type f | wc -l > /opt/data/count
EXPOSE 8080
CMD ["cat", "/opt/data/count"]
"""


def make_context(path: Path, files: int = 5000, total: int = 100_000_000) -> None:
    """~``files`` files of ~``total`` bytes in 50 directories; same bytes every time."""
    if (path / "Dockerfile").exists():
        return
    rng = random.Random(42)
    size = total // files
    for i in range(files):
        directory = path / "src" / f"d{i % 50:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:05d}.txt").write_bytes(rng.randbytes(size))
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "index.js").write_text('console.log("hello");\n')


def tools(env: dict[str, str], context: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (build command, the same with --no-cache)."""
    docker = ["docker", "build", "-q", "-t", "bench/build:latest", str(context)]
    buildah = ["buildah", "bud", "--layers", "--runtime", "runc", "-q", "--isolation", "oci",
               "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
               "--build-arg", "BASE=localhost/debian:bookworm",
               "-t", "bench/build:latest", str(context)]  # fmt: skip
    strata = [*STRATA, "build", "-q", "-t", "bench/build:latest", str(context)]
    return {
        "docker": (docker, [*docker[:2], "--no-cache", *docker[2:]]),
        "buildah": (buildah, [*buildah[:2], "--no-cache", *buildah[2:]]),
        "strata": (strata, [*strata[:2], "--no-cache", *strata[2:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/build"))
    parser.add_argument("--tools", default="docker,buildah,strata")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    env["DOCKER_BUILDKIT"] = "0"  # the legacy builder, which strata's output follows
    env["STRATA_ROOT"] = str(work / "store")
    if not (work / "store").exists():
        run([*STRATA, "import", env["ANCHOR_BASE_TAR"], "debian:bookworm"], env)
    context = work / "context"
    make_context(context)
    edited = context / "index.js"
    chosen = {k: v for k, v in tools(env, context).items() if k in args.tools.split(",")}
    times: dict[tuple[str, str], list[float]] = {}
    for argv, _ in chosen.values():
        run(argv, env)  # warm: base image unpacked, cache filled once
    for i in range(args.runs):
        for name, (argv, cold) in chosen.items():
            times.setdefault((name, "cold"), []).append(run(cold, env))
            times.setdefault((name, "no change"), []).append(run(argv, env))
            edited.write_text(f'console.log("hello {i} {name}");\n')
            times.setdefault((name, "one file"), []).append(run(argv, env))
    rows = []
    for case in ("cold", "no change", "one file"):
        s = median(times[("strata", case)]) if ("strata", case) in times else float("nan")
        cells = [case]
        for name in ("docker", "buildah"):
            if (name, case) in times:
                t = median(times[(name, case)])
                cells += [f"{t:.2f} s", f"{s / t:.2f}"]
            else:
                cells += ["-", "-"]
        rows.append([*cells, f"{s:.2f} s"])
    headers = ["case", "docker", "strata/docker", "buildah", "strata/buildah", "strata"]
    print(markdown_table(headers, rows))
    subprocess.run(["docker", "builder", "prune", "-f"], env=env, capture_output=True, check=False)


if __name__ == "__main__":
    main()
