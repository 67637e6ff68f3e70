"""Layer apply: strata's `apply_layer` against GNU tar extracting the same tar.

    python bench/bench_layer_apply.py [--runs 5]
        [--rootfs /var/tmp/anchors/debian-bookworm-minbase.tar]
        [--workdir /var/tmp/strata-bench/layer-apply] [--tmpfs /dev/shm/strata-bench] [--profile]

Inputs: a Debian rootfs tar (many small files), the same tar gzip-compressed, and a tar of four
128 MiB files. Each round extracts each input with each tool into a fresh empty directory, on
the disk and on tmpfs (the latter shows CPU cost without the disk): GNU tar as
``tar --numeric-owner --xattrs -xpf`` (a process), strata in this process in both whiteout
modes (and once without computing the diff ID, which otherwise runs on a second core). The tree
is removed and the disk synced between runs, outside the timing. Medians of the rounds are
printed as a Markdown table with files/s and MB/s (uncompressed tar bytes).
``--profile`` prints a cProfile of one strata apply of the rootfs tar instead.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from strata.layer.apply import apply_layer
from strata.layer.compression import Compression, open_compressed, open_decompressed
from strata.layer.tarreader import TarReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median, run, timed

LARGE_FILES = 4
LARGE_SIZE = 128 << 20


def make_inputs(rootfs: Path, work: Path) -> dict[str, Path]:
    """The three input tars (built once, kept in ``work``)."""
    gz = work / f"{rootfs.name}.gz"
    if not gz.exists() or gz.stat().st_mtime < rootfs.stat().st_mtime:
        with open(rootfs, "rb") as src, open(gz, "wb") as dst:
            writer = open_compressed(dst, Compression.GZIP)
            shutil.copyfileobj(src, writer, 1 << 20)
            writer.close()
    large = work / "large.tar"
    if not large.exists():
        files = work / "large-files"
        files.mkdir(exist_ok=True)
        block = os.urandom(8 << 20)
        for i in range(LARGE_FILES):
            with open(files / f"big{i}.bin", "wb") as f:
                for _ in range(LARGE_SIZE // len(block)):
                    f.write(block)
        run(["tar", "--numeric-owner", "-cf", str(large), "-C", str(files), "."])
        shutil.rmtree(files)
    return {"debian rootfs": rootfs, "debian rootfs, gzip": gz, "4 x 128 MiB files": large}


def tar_facts(path: Path) -> tuple[int, int]:
    """(members, uncompressed bytes) of a layer tar."""
    with open(path, "rb") as f:
        count = sum(1 for _ in TarReader(open_decompressed(f, source=str(path)), source="x"))
    size = 0
    with open(path, "rb") as f:
        stream = open_decompressed(f, source=str(path))
        while data := stream.read(1 << 20):
            size += len(data)
    return count, size


def fresh(base: Path, name: str) -> Path:
    target = base / name
    if target.exists():
        shutil.rmtree(target)
    os.sync()
    target.mkdir(parents=True)
    return target


def strata_apply(path: Path, mode: str, *, diff_id: bool = True) -> Callable[[Path], float]:
    def go(target: Path) -> float:
        with open(path, "rb") as src:
            return timed(
                lambda: apply_layer(
                    src,
                    target,
                    whiteouts="overlay" if mode == "overlay" else "delete",
                    source=str(path),
                    compute_diff_id=diff_id,
                )
            )

    return go


def gnu_tar(path: Path) -> Callable[[Path], float]:
    flags = "-xzpf" if path.suffix == ".gz" else "-xpf"

    def go(target: Path) -> float:
        return run(["tar", "--numeric-owner", "--xattrs", flags, str(path), "-C", str(target)])

    return go


def profile(rootfs: Path, base: Path) -> None:
    target = fresh(base, "profile")
    profiler = cProfile.Profile()
    with open(rootfs, "rb") as src:
        profiler.runcall(apply_layer, src, target, whiteouts="overlay", source=str(rootfs))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    shutil.rmtree(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--rootfs", type=Path, default=Path("/var/tmp/anchors/debian-bookworm-minbase.tar")
    )
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/layer-apply"))
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm/strata-bench"))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profile(args.rootfs, args.tmpfs)
        return
    inputs = make_inputs(args.rootfs, work)
    facts = {label: tar_facts(path) for label, path in inputs.items()}
    places = {"disk (ext4)": work / "out", "tmpfs": args.tmpfs}
    rows = []
    for place, base in places.items():
        for label, path in inputs.items():
            tools: dict[str, Callable[[Path], float]] = {
                "GNU tar": gnu_tar(path),
                "strata overlay": strata_apply(path, "overlay"),
                "strata delete": strata_apply(path, "delete"),
                "strata overlay, no diff ID": strata_apply(path, "overlay", diff_id=False),
            }
            times: dict[str, list[float]] = {tool: [] for tool in tools}
            for _ in range(args.runs):
                for tool, go in tools.items():
                    times[tool].append(go(fresh(base, "t")))
            shutil.rmtree(base / "t")
            count, size = facts[label]
            gnu = median(times["GNU tar"])
            for tool, values in times.items():
                wall = median(values)
                rows.append(
                    [
                        place,
                        label,
                        tool,
                        f"{wall:.3f} s",
                        f"{count / wall:,.0f}",
                        f"{size / wall / 1e6:,.0f}",
                        f"{wall / gnu:.2f}",
                    ]
                )
    print(f"medians of {args.runs} runs; MB/s counts uncompressed tar bytes")
    for label, (count, size) in facts.items():
        print(f"- {label}: {count:,} members, {size / 1e6:,.0f} MB")
    print(
        markdown_table(
            ["where", "input", "tool", "wall", "files/s", "MB/s", "/ GNU tar"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
