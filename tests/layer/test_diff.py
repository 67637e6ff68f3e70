"""Layers from changes: an overlay upper dir (through a real mount) and a tree against its
parent, each applied back onto the lower tree to give exactly the changed view."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from strata.errors import FormatError
from strata.layer.diff import write_tar_from_dirs, write_tar_from_upper
from strata.layer.stats import LayerStats

from .members import MTIME, apply, overlay
from .trees import CAPABILITY, describe

root_only = pytest.mark.root


def lower_tree(root: Path) -> Path:
    """A lower layer with something to change, delete, empty and recreate."""
    for name in ("etc/apt", "usr/share/doc/pkg", "var/cache/apt/archives", "srv/data", "opt/x"):
        (root / name).mkdir(parents=True)
    files = {
        "etc/hostname": b"old\n",
        "etc/apt/sources.list": b"deb http://mirror.example/debian bookworm main\n",
        "usr/share/doc/pkg/README": b"readme\n" * 100,
        "usr/share/doc/pkg/same-size": b"aaaa",
        "var/cache/apt/archives/a.deb": os.urandom(5000),
        "var/cache/apt/pkgcache.bin": os.urandom(3000),
        "srv/data/one": b"1",
        "srv/data/two": b"2",
        "opt/x/tool": b"#!/bin/sh\n",
        "chmod-me": b"mode\n",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    os.symlink("hostname", root / "etc" / "link")
    os.link(root / "opt" / "x" / "tool", root / "opt" / "x" / "tool.hard")
    for path in (root, *root.rglob("*")):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


def make_changes(root: Path) -> None:
    """What a container does: add, modify, delete, rm -rf, rm -rf and recreate, chmod..."""
    (root / "etc" / "hostname").write_bytes(b"new\n")
    (root / "etc" / "added").write_bytes(b"added\n")
    (root / "etc" / "apt" / "sources.list").unlink()
    shutil.rmtree(root / "var" / "cache" / "apt" / "archives")
    shutil.rmtree(root / "srv" / "data")
    (root / "srv" / "data").mkdir()
    (root / "srv" / "data" / "three").write_bytes(b"3")
    os.chmod(root / "chmod-me", 0o600)
    os.symlink("/usr/bin/env", root / "etc" / "env-link")
    os.remove(root / "etc" / "link")
    os.symlink("added", root / "etc" / "link")
    os.link(root / "etc" / "added", root / "etc" / "added.hard")
    os.setxattr(root / "etc" / "added", "security.capability", CAPABILITY)
    os.setxattr(root / "opt" / "x", "user.note", b"dir xattr")
    (root / "new" / "deep" / "er").mkdir(parents=True)
    (root / "new" / "deep" / "er" / "file").write_bytes(b"deep\n")
    os.rename(root / "usr" / "share" / "doc" / "pkg" / "README", root / "README.moved")
    os.mkfifo(root / "new" / "fifo")


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def run_upper(upper: Path) -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = write_tar_from_upper(upper, out)
    return out.getvalue(), stats


def run_dirs(lower: Path, upper: Path) -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = write_tar_from_dirs(lower, upper, out)
    return out.getvalue(), stats


@root_only
def test_upper_dir_to_layer_and_back(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    with overlay([lower], upper, tmp_path / "work", tmp_path / "merged") as merged:
        make_changes(merged)
        want = describe(merged)
    data, stats = run_upper(upper)
    names = [m.name for m in members(data)]
    assert "etc/apt/.wh.sources.list" in names
    assert "var/cache/apt/.wh.archives" in names
    # the opaque marker comes right after its directory
    assert names[names.index("srv/data") + 1] == "srv/data/.wh..wh..opq"
    assert not any("trusted.overlay" in key for m in members(data) for key in m.pax_headers)
    assert stats.diff_id == run_upper(upper)[1].diff_id  # deterministic

    # "delete" mode onto a copy of the lower tree gives the merged view
    full = tmp_path / "full"
    subprocess.run(["cp", "-a", str(lower), str(full)], check=True)
    applied = apply(data, full, "delete")
    assert applied.diff_id == stats.diff_id and applied.whiteouts == 4
    assert describe(full) == want

    # "overlay" mode into a fresh upper dir, mounted again, gives it too
    upper2 = tmp_path / "upper2"
    upper2.mkdir()
    apply(data, upper2, "overlay")
    with overlay([lower], upper2, tmp_path / "work2", tmp_path / "merged2") as merged2:
        assert describe(merged2) == want
    assert run_upper(upper2)[1].diff_id == stats.diff_id


@root_only
def test_same_upper_content_same_diff_id(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    with overlay([lower], upper, tmp_path / "work", tmp_path / "merged") as merged:
        make_changes(merged)
    copy = tmp_path / "copy"
    # a copy with the same content, made in another directory order (xattrs, devices kept)
    subprocess.run(["cp", "-a", "--preserve=all", str(upper), str(copy)], check=True)
    assert run_upper(copy)[1].diff_id == run_upper(upper)[1].diff_id


@root_only
def test_overlay_renames_and_metacopy_are_refused(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/original")
    with pytest.raises(FormatError, match=r"upper: moved: renamed directory .* redirect_dir=off"):
        run_upper(upper)
    os.removexattr(upper / "moved", "trusted.overlay.redirect")
    with open(upper / "moved" / "big", "wb") as f:
        f.truncate(1 << 20)
    os.setxattr(upper / "moved" / "big", "trusted.overlay.metacopy", b"")
    with pytest.raises(FormatError, match=r"upper: moved/big: metadata-only copy-up"):
        run_upper(upper)


def test_whiteout_members_have_fixed_metadata(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs mknod")
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    os.mknod(upper / "d" / "gone", 0o020000, 0)
    os.utime(upper / "d" / "gone", (123, 123), follow_symlinks=False)
    (wh,) = [m for m in members(run_upper(upper)[0]) if m.name == "d/.wh.gone"]
    assert (wh.isreg(), wh.size, wh.mode, wh.uid, wh.gid, wh.mtime) == (True, 0, 0o600, 0, 0, 0)


# --- a tree against its parent -------------------------------------------------------------


@root_only
def test_dirs_diff_applies_back(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    make_changes(upper)
    data, stats = run_dirs(lower, upper)
    names = [m.name for m in members(data)]
    assert "etc/apt/.wh.sources.list" in names and "var/cache/apt/.wh.archives" in names
    assert "srv/data/.wh.one" in names and "srv/data/three" in names  # per-name whiteouts
    assert "etc/apt" in names  # the parent of a change is written...
    assert "var/cache/apt/pkgcache.bin" not in names  # ...unchanged files are not
    assert "usr/share/doc/pkg/same-size" not in names
    assert stats.diff_id == run_dirs(lower, upper)[1].diff_id
    full = tmp_path / "full"
    subprocess.run(["cp", "-a", str(lower), str(full)], check=True)
    apply(data, full, "delete")
    assert describe(full) == describe(upper)


def test_dirs_diff_sees_same_size_same_second_changes(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    shutil.copytree(lower, upper, symlinks=True)
    for path in (upper, *upper.rglob("*")):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    assert [m.name for m in members(run_dirs(lower, upper)[0])] == []  # nothing changed
    target = upper / "usr" / "share" / "doc" / "pkg" / "same-size"
    target.write_bytes(b"bbbb")
    os.utime(target, (MTIME, MTIME))
    names = [m.name for m in members(run_dirs(lower, upper)[0])]
    assert names == [
        "usr",
        "usr/share",
        "usr/share/doc",
        "usr/share/doc/pkg",
        str(target.relative_to(upper)),
    ]


def test_dirs_diff_type_changes(tmp_path: Path) -> None:
    lower = lower_tree(tmp_path / "lower")
    upper = tmp_path / "upper"
    shutil.copytree(lower, upper, symlinks=True)
    shutil.rmtree(upper / "srv" / "data")
    (upper / "srv" / "data").write_bytes(b"a file now")
    (upper / "chmod-me").unlink()
    (upper / "chmod-me").mkdir()
    (upper / "chmod-me" / "inside").write_bytes(b"i")
    data, _ = run_dirs(lower, upper)
    names = [m.name for m in members(data)]
    assert "srv/data" in names and not any(n.startswith("srv/data/") for n in names)
    assert "chmod-me" in names and "chmod-me/inside" in names
    full = tmp_path / "full"
    shutil.copytree(lower, full, symlinks=True)
    apply(data, full, "delete")
    assert (full / "srv" / "data").read_bytes() == b"a file now"
    assert (full / "chmod-me" / "inside").read_bytes() == b"i"
