"""What is particular to the overlay snapshotter: short links, option sizes, mount shapes, and
what overlayfs on this kernel writes to an upper dir."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.errors import InvalidArgument
from strata.snapshot import Kind, Mount
from strata.snapshot.mount import PAGE_SIZE, option_data
from strata.snapshot.overlay import (
    FIXED_OPTIONS,
    LINK_LENGTH,
    MAX_LOWERS,
    OverlaySnapshotter,
    max_depth,
    options_size,
)
from strata.store.db import Database
from tests.snapshot.helpers import files, is_whiteout, mounted, store_state

pytestmark = pytest.mark.root


@pytest.fixture
def snap(tmp_path: Path) -> Iterator[OverlaySnapshotter]:
    root = tmp_path / "store"
    root.mkdir()
    with Database(root / "strata.db") as db:
        yield OverlaySnapshotter(root, db)


def stack(snap: OverlaySnapshotter, depth: int) -> str:
    parent: str | None = None
    for i in range(depth):
        snap.prepare(f"a{i}", parent)
        (snap.upper(f"a{i}") / f"f{i:03}").write_text(str(i))
        snap.commit(f"c{i}", f"a{i}")
        parent = f"c{i}"
    assert parent is not None
    return parent


def test_short_links_name_each_layer(snap: OverlaySnapshotter) -> None:
    snap.prepare("a")
    snap.commit("c", "a")
    links = os.listdir(snap.root / "l")
    assert len(links) == 1 and re.fullmatch(f"[A-Z0-9]{{{LINK_LENGTH}}}", links[0])
    assert os.readlink(snap.root / "l" / links[0]) == "../snapshots/1/fs"
    assert (snap.root / "snapshots" / "1" / "link").read_text() == links[0]
    snap.prepare("b", "c")
    (mount,) = snap.mounts("b")
    assert mount.options == (
        *FIXED_OPTIONS,
        f"lowerdir={snap.root}/l/{links[0]}",
        f"upperdir={snap.root}/snapshots/2/fs",
        f"workdir={snap.root}/snapshots/2/work",
    )
    relative = (f"lowerdir=l/{links[0]}", "upperdir=snapshots/2/fs", "workdir=snapshots/2/work")
    assert option_data(mount) == ",".join([*FIXED_OPTIONS, *relative])
    snap.remove("b")
    snap.remove("c")
    assert os.listdir(snap.root / "l") == []


def test_mount_shapes(snap: OverlaySnapshotter) -> None:
    fs = snap.root / "snapshots"
    assert snap.prepare("a") == [Mount("bind", f"{fs}/1/fs", ("rbind", "rw"))]
    snap.commit("c1", "a")
    assert snap.view("v0") == [Mount("bind", f"{fs}/2/fs", ("rbind", "ro"))]
    assert snap.view("v1", "c1") == [Mount("bind", f"{fs}/1/fs", ("rbind", "ro"))]
    snap.prepare("b", "c1")
    snap.commit("c2", "b")
    (two,) = snap.view("v2", "c2")
    assert two.type == "overlay" and not any(o.startswith("upperdir=") for o in two.options)
    assert snap.upper("v2") == fs / "5" / "fs"  # a view changes nothing: an empty dir
    assert snap.diff_kind == "overlay" and snap.name == "overlay"


def test_option_sizes_for_128_and_200_layers(snap: OverlaySnapshotter) -> None:
    top = stack(snap, 200)
    sizes = {}
    for depth in (128, 200):
        key = f"top{depth}"
        snap.prepare(key, f"c{depth - 1}")
        (mount,) = snap.mounts(key)
        sizes[depth] = (len(option_data(mount)), len(",".join(mount.options)))
        assert sizes[depth][0] <= options_size(depth) < PAGE_SIZE
        with mounted(snap, key, snap.root.parent) as target:
            assert len(os.listdir(target)) == depth
    # Measured: 128 layers take ~1.5 KB, 200 ~2.3 KB; absolute paths would not fit a page.
    assert sizes[128][0] < 1600 and sizes[200][0] < 2400
    assert sizes[200][1] > PAGE_SIZE
    assert top == "c199"


def test_stacks_deeper_than_a_mount_takes_are_refused(snap: OverlaySnapshotter) -> None:
    depth = max_depth()
    assert 128 < depth <= MAX_LOWERS
    assert options_size(depth) < PAGE_SIZE <= options_size(depth + 1)
    # Rows alone make a chain deep enough: the check comes before any directory is made.
    conn = sqlite3.connect(snap.root / "strata.db")
    with conn:
        for i in range(depth + 1):
            conn.execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, 'committed', 'now', ?)",
                (f"c{i}", i + 1, f"c{i - 1}" if i else None, json.dumps({})),
            )
    conn.close()
    before = store_state(snap.root)
    with pytest.raises(InvalidArgument, match=f"{depth + 1} layers below it"):
        snap.prepare("too-deep", f"c{depth}")
    assert store_state(snap.root) == before


def test_merged_root_takes_the_parent_root(snap: OverlaySnapshotter) -> None:
    snap.prepare("a")
    os.chmod(snap.upper("a"), 0o750)
    os.chown(snap.upper("a"), 5, 6)
    snap.commit("c", "a")
    snap.prepare("b", "c")
    with mounted(snap, "b", snap.root.parent) as target:
        st = os.stat(target)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 5, 6)


def test_whiteouts_on_this_kernel(snap: OverlaySnapshotter) -> None:
    snap.prepare("a")
    for name in ("one", "two", "three"):
        (snap.upper("a") / name).write_text(name)
    snap.commit("c", "a")
    snap.prepare("b", "c")
    with mounted(snap, "b", snap.root.parent) as target:
        for name in ("one", "two", "three"):
            os.unlink(target / name)
        assert os.listdir(target) == []
    upper = snap.upper("b")
    # Every deletion is a 0/0 character device. Kernels since 5.8 share one whiteout inode
    # through hardlinks (st_nlink > 1), so a layer generator must not treat them as hardlinks.
    assert sorted(os.listdir(upper)) == ["one", "three", "two"]
    assert all(is_whiteout(upper / name) for name in ("one", "two", "three"))
    snap.commit("d", "b")
    snap.view("v", "d")
    with mounted(snap, "v", snap.root.parent) as target:
        assert files(target) == {}
    assert snap.stat("v").kind is Kind.VIEW


def test_roots_that_overlay_options_cannot_name(tmp_path: Path) -> None:
    root = tmp_path / "a:b"
    root.mkdir()
    with Database(root / "strata.db") as db, pytest.raises(InvalidArgument, match="':'"):
        OverlaySnapshotter(root, db)


def test_cleanup_removes_stale_short_links(snap: OverlaySnapshotter) -> None:
    snap.prepare("a")
    snap.commit("c", "a")
    links = snap.root / "l"
    kept = os.listdir(links)
    os.symlink("../snapshots/42/fs", links / "STALE001")
    os.symlink("../snapshots/1/fs", links / "STALE002")  # a live id, but not its recorded link
    (links / "notalink").mkdir()  # not ours to judge
    assert snap.cleanup() == 2
    assert sorted(os.listdir(links)) == sorted([*kept, "notalink"])
