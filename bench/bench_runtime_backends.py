"""Container start latency: ``/bin/true`` through each runtime backend against raw ``runc run``.

    python bench/bench_runtime_backends.py [--runs 20] [--rootfs /var/tmp/strata-test-rootfs]

All rows run ``/bin/true`` in the same Debian rootfs (extracted from anchors.sh's base tar,
/var/tmp/anchors/debian-bookworm-minbase.tar, if the directory is missing) with stdio on
/dev/null, one container at a time; medians of ``--runs``.

* raw ``runc run``: runc alone on a bundle prepared once (the floor for the runc backend).
* ``Backend.run``: the backend's ``run`` on a prepared bundle (runc: preflight + one runc).
* spec + ``Backend.run``: etc files, config.json generation (users resolved in the rootfs) and
  ``run``, i.e. everything ``strata run`` will do below the snapshotter and the records.
* new process: a fresh Python that imports strata.runtime and does the line above, as a CLI
  invocation would (interpreter start-up included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from strata.runtime import (
    ProcessIO,
    ProcessSpec,
    RunSpec,
    backend_by_name,
    write_bundle,
    write_etc_files,
)
from strata.runtime.backend import RuntimeBackend
from strata.runtime.spec import Network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median

TAR = Path("/var/tmp/anchors/debian-bookworm-minbase.tar")
SNIPPET = """
import os, sys, uuid
from pathlib import Path
from strata.runtime import ProcessIO, ProcessSpec, RunSpec, backend_by_name, write_bundle
from strata.runtime import write_etc_files
from strata.runtime.spec import Network
name, state, work, rootfs = sys.argv[1:5]
cid = uuid.uuid4().hex[:16]
etc = write_etc_files(Path(work) / cid / "etc", hostname="bench", network=Network.HOST)
spec = RunSpec(Path(rootfs), ProcessSpec(args=("/bin/true",)), "bench", etc=etc)
bundle = write_bundle(Path(work) / cid / "bundle", spec, container_id=cid)
null = os.open(os.devnull, os.O_RDWR)
sys.exit(backend_by_name(name, Path(state)).run(cid, bundle, stdio=ProcessIO(null, null, null)))
"""


def ensure_rootfs(path: Path) -> Path:
    if not (path / "usr" / "bin" / "true").exists():
        partial = path.with_name(path.name + ".tmp")
        partial.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "--numeric-owner", "-xpf", str(TAR), "-C", str(partial)], check=True)
        partial.rename(path)
    return path


def spec_for(rootfs: Path, etc_dir: Path) -> RunSpec:
    etc = write_etc_files(etc_dir, hostname="bench", network=Network.HOST)
    return RunSpec(rootfs, ProcessSpec(args=("/bin/true",)), "bench", etc=etc)


def timed_runs(runs: int, once: Callable[[], None]) -> float:
    once()  # warm caches (page cache, the backend's imports)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        samples.append(time.perf_counter() - start)
    return median(samples)


def check(code: int, what: str) -> None:
    if code != 0:
        raise SystemExit(f"{what}: exit status {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rootfs", type=Path, default=Path("/var/tmp/strata-test-rootfs"))
    args = parser.parse_args()
    rootfs = ensure_rootfs(args.rootfs)
    null = os.open(os.devnull, os.O_RDWR)
    stdio = ProcessIO(null, null, null)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="strata-bench-rt-") as tmp:
        work = Path(tmp)
        state = work / "state"
        prepared = write_bundle(
            work / "prepared", spec_for(rootfs, work / "prepared-etc"), container_id="bench"
        )

        def raw_runc() -> None:
            argv = ["runc", "--root", str(state / "raw"), "run", "--bundle", str(prepared)]
            argv.append(uuid.uuid4().hex[:16])
            done = subprocess.run(argv, stdin=null, stdout=null, stderr=null, check=False)
            check(done.returncode, "runc")

        rows.append(["raw `runc run`", f"{timed_runs(args.runs, raw_runc) * 1000:.1f}"])
        for name in ("runc", "chroot"):
            backend: RuntimeBackend = backend_by_name(name, state)

            def run_prepared(backend: RuntimeBackend = backend) -> None:
                check(backend.run(uuid.uuid4().hex[:16], prepared, stdio=stdio), backend.name)

            def run_full(backend: RuntimeBackend = backend) -> None:
                cid = uuid.uuid4().hex[:16]
                spec = spec_for(rootfs, work / cid / "etc")
                bundle = write_bundle(work / cid / "bundle", spec, container_id=cid)
                check(backend.run(cid, bundle, stdio=stdio), backend.name)

            def run_process(name: str = name) -> None:
                argv = [sys.executable, "-c", SNIPPET, name, str(state), str(work), str(rootfs)]
                check(subprocess.run(argv, stdin=null, check=False).returncode, f"{name} process")

            rows.append(
                [f"{name}: `Backend.run`", f"{timed_runs(args.runs, run_prepared) * 1000:.1f}"]
            )
            rows.append(
                [f"{name}: spec + `Backend.run`", f"{timed_runs(args.runs, run_full) * 1000:.1f}"]
            )
            rows.append(
                [f"{name}: new process", f"{timed_runs(args.runs, run_process) * 1000:.1f}"]
            )
    print(
        f"`/bin/true` in Debian bookworm minbase, median of {args.runs} (ms), {os.cpu_count()} CPUs"
    )
    print(markdown_table(["what", "ms"], rows))


if __name__ == "__main__":
    main()
