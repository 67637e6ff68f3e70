"""What a killed command was writing is reclaimed by the next prune at once: its partial ingest
(no process holds its lock) and its lease (its owner process is gone), not after 24 hours."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.conftest import Strata


def _ingest_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root / "ingest"):
        for name in files:
            if name == "data":
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def _leases(root: Path) -> int:
    with sqlite3.connect(root / "strata.db") as conn:
        return int(conn.execute("SELECT count(*) FROM leases").fetchone()[0])


def test_prune_reclaims_the_ingest_and_lease_of_a_killed_import(
    strata: Strata, store_root: Path
) -> None:
    strata("image", "ls")  # create the store
    header = tarfile.TarInfo("big")
    header.size = 64 << 20
    proc = subprocess.Popen(
        [sys.executable, "-m", "strata", "image", "import", "-", "killed:latest"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STRATA_ROOT": str(store_root)},
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(header.tobuf(format=tarfile.GNU_FORMAT))
        # Half of the file, then wait until the import has written into its ingest and leased.
        chunk = os.urandom(1 << 20)
        for _ in range(32):
            proc.stdin.write(chunk)
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while _ingest_bytes(store_root) < (8 << 20) or _leases(store_root) == 0:
            assert time.monotonic() < deadline, "the import never wrote its ingest"
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL
    assert _ingest_bytes(store_root) > 0 and _leases(store_root) == 1  # the debris

    strata("image", "prune", "-f")
    assert _leases(store_root) == 0
    assert list((store_root / "ingest").iterdir()) == []
    assert [p for p in (store_root / "blobs" / "sha256").iterdir()] == []
    # The store still works.
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("small")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    strata("image", "import", "-", "again:latest", input=data.getvalue())
    assert "again" in strata("image", "ls").stdout
