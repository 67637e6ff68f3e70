"""``-o`` to something that is not a regular file: written in place, never replaced."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata


@pytest.fixture
def imported(strata: Strata, tmp_path: Path) -> Strata:
    # 1 MiB: more than a pipe holds, so a reader that goes away is noticed.
    tarball = rootfs_tar(tmp_path / "rootfs.tar", {"./big": bytes(1 << 20)})
    strata("image", "import", str(tarball), "tiny:1")
    return strata


@pytest.mark.root
def test_save_to_a_full_device_fails_and_keeps_the_device(imported: Strata, tmp_path: Path) -> None:
    # A device node of our own (the same as /dev/full), so a regression cannot damage the host's.
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    line = imported.fail("save", "-o", str(full), "tiny:1")
    assert line == f"Error: writing {full}: no space left on device", line
    assert stat.S_ISCHR(full.lstat().st_mode), "the device was replaced by a file"


def test_save_to_a_fifo_streams_through_it(imported: Strata, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            received.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    imported("save", "-o", str(fifo), "tiny:1")
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    archive = tmp_path / "got.tar"
    archive.write_bytes(received[0])
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pipe.")]


def test_save_to_dev_stdout(imported: Strata) -> None:
    proc = subprocess.run(
        ["sh", "-c", '"$0" -m strata save -o /dev/stdout tiny:1 | tar -t | grep -c manifest.json',
         sys.executable],
        capture_output=True, text=True, env={**os.environ, "STRATA_ROOT": str(imported.root)},
        check=False,
    )  # fmt: skip
    assert proc.stdout.strip() == "1", proc.stderr


def test_save_to_a_reader_that_goes_away_dies_of_sigpipe(imported: Strata) -> None:
    # Docker's Go CLI is killed by SIGPIPE (141 in a shell) and says nothing: `save | head -c 10`.
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", "save", "tiny:1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "STRATA_ROOT": str(imported.root)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == -signal.SIGPIPE
    assert err == b""
