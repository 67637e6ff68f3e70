"""Layer tar speed: strata's generate/normalize against GNU tar, and gzip/zstd choices.

Usage (as root, so the rootfs extracts with its owners and device nodes):
    .venv/bin/python bench/bench_layer_tar.py [--tar ROOTFS.tar] [--runs 5] [--workdir /var/tmp]

The rootfs tar is extracted once into a temporary directory under --workdir; then each
operation runs --runs times on a warm page cache and the median is shown with files/s and
MB/s (MB = 10^6 bytes of uncompressed tar). Only the standard library and strata are used.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from isal import igzip

from strata.layer.compression import Compression, open_compressed, open_decompressed
from strata.layer.generate import write_tar_from_dir
from strata.layer.normalize import normalize_tar

SAMPLE = 100 * 1024 * 1024


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shell(command: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, env={"LC_ALL": "C"})

    return run


def row(name: str, seconds: float, entries: int | None, size: int, note: str = "") -> None:
    files = f"{entries / seconds:9,.0f}" if entries else ""
    files = f"{files} files/s" if entries else " " * 16
    print(f"{name:58s} {seconds:7.3f} s {files} {size / seconds / 1e6:8.1f} MB/s  {note}")


def null_sink() -> BinaryIO:
    return open("/dev/null", "wb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tar", type=Path, default=Path("/var/tmp/anchors/debian-bookworm-minbase.tar")
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    if shutil.which("tar") is None:
        sys.exit("GNU tar is needed for the comparison")

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="strata-bench-") as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        subprocess.run(
            ["tar", "--xattrs", "--xattrs-include=*", "-xpf", str(args.tar), "-C", str(rootfs)],
            check=True,
        )
        ours = work / "ours.tar"
        with open(ours, "wb") as f:
            stats = write_tar_from_dir(rootfs, f)
        gnu = work / "gnu.tar"
        tar_create = f"tar -C {rootfs} --sort=name --numeric-owner --xattrs -cf -"
        shell(f"{tar_create} . > {gnu}")()
        entries, size = stats.entries, stats.size
        print(f"tree: {args.tar.name} extracted, {entries} entries, tar {size / 1e6:.1f} MB")
        print(f"medians of {args.runs} runs, warm page cache\n")

        print("-- tar of a directory tree")
        row(
            "GNU tar --sort=name -cf - . | cat",
            median_time(shell(f"{tar_create} . | cat > /dev/null"), args.runs),
            entries,
            size,
        )
        row(
            "GNU tar --sort=name -cf - . > /dev/null",
            median_time(shell(f"{tar_create} . > /dev/null"), args.runs),
            entries,
            size,
            "(GNU tar skips reading file data when writing to /dev/null)",
        )

        def generate() -> None:
            with null_sink() as out:
                write_tar_from_dir(rootfs, out)

        row("strata write_tar_from_dir (+ sha256)", median_time(generate, args.runs), entries, size)

        print("\n-- re-emit a tar stream canonically")
        row(
            "GNU tar -xOf gnu.tar | cat (read all, data out)",
            median_time(shell(f"tar -xOf {gnu} | cat > /dev/null"), args.runs),
            entries,
            size,
        )

        def stdlib_copy() -> None:
            with (
                open(gnu, "rb") as src,
                null_sink() as out,
                tarfile.open(fileobj=src, mode="r|") as reader,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as writer,
            ):
                for member in reader:
                    writer.addfile(member, reader.extractfile(member) if member.isreg() else None)

        seconds = median_time(stdlib_copy, args.runs)
        row("stdlib tarfile r| -> w| (reference)", seconds, entries, size)
        for label, path in (("GNU tar's posix output", gnu), ("our own output", ours)):

            def normalize(path: Path = path) -> None:
                with open(path, "rb") as src, null_sink() as out:
                    normalize_tar(src, out, source=str(path))

            row(
                f"strata normalize_tar of {label} (+ sha256)",
                median_time(normalize, args.runs),
                entries,
                size,
            )

        print(f"\n-- compression of the first {SAMPLE >> 20} MiB of {args.tar.name}")
        with open(args.tar, "rb") as tar_file:
            sample = tar_file.read(SAMPLE)
        for level in range(4):

            def isal_level(level: int = level) -> int:
                out = io.BytesIO()
                gz = igzip.IGzipFile(  # type: ignore[no-untyped-call]
                    fileobj=out, mode="wb", compresslevel=level, mtime=0
                )
                with gz:
                    for i in range(0, len(sample), 1 << 20):
                        gz.write(sample[i : i + (1 << 20)])  # type: ignore[no-untyped-call]
                return len(out.getvalue())

            ratio = isal_level() / len(sample)
            seconds = median_time(isal_level, args.runs)
            note = f"ratio {ratio:.3f}"
            row(f"isal level {level} (one thread)", seconds, None, len(sample), note)
        blobs = {}
        for kind in (Compression.GZIP, Compression.ZSTD):

            def compress(kind: Compression = kind) -> bytes:
                out = io.BytesIO()
                with open_compressed(out, kind) as writer:
                    for i in range(0, len(sample), 1 << 20):
                        writer.write(sample[i : i + (1 << 20)])
                return out.getvalue()

            blobs[kind] = compress()
            ratio = len(blobs[kind]) / len(sample)
            label = f"strata open_compressed {kind.value} (default level)"
            row(label, median_time(compress, args.runs), None, len(sample), f"ratio {ratio:.3f}")
        for kind, blob in blobs.items():

            def decompress(blob: bytes = blob) -> None:
                reader = open_decompressed(io.BytesIO(blob), source="bench")
                while reader.read(1 << 20):
                    pass

            label = f"strata open_decompressed {kind.value}"
            row(label, median_time(decompress, args.runs), None, len(sample))


if __name__ == "__main__":
    main()
