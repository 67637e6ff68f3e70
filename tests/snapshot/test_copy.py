"""What is particular to the copying snapshotter: a faithful copy, bind mounts, cp failures."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.errors import ToolError
from strata.snapshot import Mount
from strata.snapshot.copy import CopySnapshotter
from strata.store.db import Database
from tests.snapshot.helpers import describe, store_state

pytestmark = pytest.mark.root

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service


@pytest.fixture
def snap(tmp_path: Path) -> Iterator[CopySnapshotter]:
    root = tmp_path / "store"
    root.mkdir()
    with Database(root / "strata.db") as db:
        yield CopySnapshotter(root, db)


def _everything(fs: Path) -> None:
    os.chmod(fs, 0o750)
    os.chown(fs, 7, 8)
    (fs / "bin").mkdir()
    (fs / "bin" / "ping").write_bytes(b"\x7fELF")
    os.setxattr(fs / "bin" / "ping", "security.capability", CAPABILITY)
    (fs / "bin" / "su").write_bytes(b"su")
    os.chmod(fs / "bin" / "su", 0o4755)
    (fs / "tmp").mkdir()
    os.chmod(fs / "tmp", 0o1777)
    (fs / "etc").mkdir()
    (fs / "etc" / "shadow").write_text("root:*:")
    os.chown(fs / "etc" / "shadow", 0, 42)
    os.chmod(fs / "etc" / "shadow", 0o640)
    os.link(fs / "etc" / "shadow", fs / "etc" / "shadow-hardlink")
    os.setxattr(fs / "etc", "trusted.overlay.opaque", b"y")
    os.setxattr(fs / "etc" / "shadow", "user.note", b"kept")
    os.symlink("/etc/shadow", fs / "abs-link")
    os.mknod(fs / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(fs / "whiteout", stat.S_IFCHR, 0)
    os.mkfifo(fs / "fifo")
    os.utime(fs / "etc" / "shadow", ns=(1_000_000_000, 1_000_000_000))


def test_prepare_copies_everything(snap: CopySnapshotter) -> None:
    snap.prepare("a")
    _everything(snap.upper("a"))
    snap.commit("c", "a")
    snap.prepare("b", "c")
    source, copy = snap.upper("c"), snap.upper("b")
    assert source != copy
    assert describe(copy) == describe(source)
    root = os.stat(copy)
    assert (stat.S_IMODE(root.st_mode), root.st_uid, root.st_gid) == (0o750, 7, 8)
    shadow, twin = os.stat(copy / "etc" / "shadow"), os.stat(copy / "etc" / "shadow-hardlink")
    assert shadow.st_ino == twin.st_ino != os.stat(source / "etc" / "shadow").st_ino
    assert shadow.st_mtime_ns == 1_000_000_000


def test_mount_shapes(snap: CopySnapshotter) -> None:
    fs = snap.root / "snapshots"
    assert snap.prepare("a") == [Mount("bind", f"{fs}/1/fs", ("rbind", "rw"))]
    snap.commit("c", "a")
    assert snap.prepare("b", "c") == [Mount("bind", f"{fs}/2/fs", ("rbind", "rw"))]
    assert snap.view("v", "c") == [Mount("bind", f"{fs}/1/fs", ("rbind", "ro"))]
    assert snap.view("v0") == [Mount("bind", f"{fs}/4/fs", ("rbind", "ro"))]
    assert snap.upper("v") == fs / "1" / "fs"  # a view's full tree is its parent's
    assert snap.diff_kind == "full" and snap.name == "copy"


def test_a_failed_copy_leaves_nothing(snap: CopySnapshotter) -> None:
    snap.prepare("a")
    snap.commit("c", "a")
    shutil.rmtree(snap.upper("c"))  # the parent's tree vanished under us
    before = store_state(snap.root)
    with pytest.raises(ToolError, match="cannot copy .*/snapshots/1/fs"):
        snap.prepare("b", "c")
    assert store_state(snap.root) == before
