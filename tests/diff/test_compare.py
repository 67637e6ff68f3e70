"""The one differ, round-tripped through the one unpacker on real snapshots (overlayfs and the
copying snapshotter): what a container changed, written as a layer and applied onto another
stack, gives the same tree."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from strata.diff.apply import apply_to_snapshot
from strata.diff.compare import compare_snapshot, lower_tree
from strata.snapshot.base import DirSnapshotter
from tests.diff.test_apply import BASE, diff_id, put
from tests.layer.members import directory, file, symlink, tar
from tests.layer.test_diff import members
from tests.snapshot.helpers import describe, mounted

pytestmark = pytest.mark.root

LOWER = tar(
    directory("etc"),
    file("etc/hostname", b"old\n"),
    file("etc/gone", b"gone\n"),
    symlink("etc/link", "hostname"),
    directory("srv"),
    directory("srv/data"),
    file("srv/data/one", b"1"),
    directory("var"),
    directory("var/cache"),
    file("var/cache/pkg", b"cached"),
    file("chmod-me", b"mode\n"),
)


def change(root: Path) -> None:
    """What a container does: modify, add, delete, rm -rf, rm -rf and recreate, chmod, links."""
    (root / "etc" / "hostname").write_bytes(b"new\n")
    (root / "etc" / "added").write_bytes(b"added\n")
    (root / "etc" / "gone").unlink()
    os.remove(root / "etc" / "link")
    os.symlink("added", root / "etc" / "link")
    shutil.rmtree(root / "var" / "cache")
    shutil.rmtree(root / "srv" / "data")
    (root / "srv" / "data").mkdir()
    (root / "srv" / "data" / "two").write_bytes(b"2")
    os.chmod(root / "chmod-me", 0o600)
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "file").write_bytes(b"deep\n")


def seen(snap: DirSnapshotter, key: str, work: Path) -> dict[str, str]:
    """``describe`` of what a container stacked on ``key`` (committed or active) sees."""
    look = f"look-{key}"
    snap.view(look, key)
    try:
        with mounted(snap, look, work) as target:
            return describe(target)
    finally:
        snap.remove(look)


def test_a_compared_change_applied_elsewhere_gives_the_same_tree(
    snap: DirSnapshotter, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    put(snap, LOWER, "lower")
    snap.prepare("container", "lower")
    with mounted(snap, "container", tmp_path) as target:
        change(target)
        expected = describe(target)
    out = io.BytesIO()
    stats = compare_snapshot(snap, "container", out, scratch)
    layer = out.getvalue()
    assert stats.diff_id == diff_id(layer) and stats.size == len(layer)
    again = io.BytesIO()
    compare_snapshot(snap, "container", again, scratch)
    assert again.getvalue() == layer  # canonical: the same changes, the same diff ID
    names = {m.name for m in members(layer)}
    assert {"etc/.wh.gone", "var/.wh.cache", "srv/data/two"} <= names
    # overlayfs made the recreated directory opaque; a compared copy deletes what went
    assert names & {"srv/data/.wh..wh..opq", "srv/data/.wh.one"}
    assert "srv/data/one" not in names and "etc/hostname" in names

    # Another stack: the same lower layer under another key, the layer applied on it.
    put(snap, LOWER, "lower-again")
    put(snap, layer, "top", "lower-again")
    assert seen(snap, "top", tmp_path) == expected
    snap.remove("container")
    assert os.listdir(scratch) == []


def test_a_snapshot_with_no_parent_is_all_additions(snap: DirSnapshotter, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    snap.prepare("step", None)  # FROM scratch, then COPY
    with mounted(snap, "step", tmp_path) as target:
        (target / "app").mkdir()
        (target / "app" / "main").write_bytes(b"main\n")
    out = io.BytesIO()
    compare_snapshot(snap, "step", out, scratch)
    assert [m.name.rstrip("/") for m in members(out.getvalue())] == ["app", "app/main"]
    assert os.listdir(scratch) == []  # the empty lower tree of the copying snapshotter is gone
    apply_to_snapshot(
        snap,
        io.BytesIO(out.getvalue()),
        key="copied",
        parent=None,
        active="active-copied",
        diff_id=diff_id(out.getvalue()),
        source="layer",
    )
    assert seen(snap, "copied", tmp_path).keys() == {"app", "app/main"}


def test_lower_tree_is_the_parents_full_tree_only_for_copies(snap: DirSnapshotter) -> None:
    put(snap, BASE, "base")
    assert lower_tree(snap, None) is None
    if snap.name == "overlay":
        assert lower_tree(snap, "base") is None  # the upper dir holds only the changes
    else:
        assert lower_tree(snap, "base") == snap.upper("base")
