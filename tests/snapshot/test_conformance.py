"""Conformance suite for `strata.snapshot.Snapshotter`: every implementation passes all of it.

After containerd's snapshots/testsuite. A new implementation plugs in by adding itself to
`IMPLEMENTATIONS`. The few places where what `upper()` holds differs (overlay whiteouts and
opaque dirs against a full copy) branch on `diff_kind`, which is part of the contract.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.errors import Conflict, InvalidArgument, NotFound, StoreError, StrataError
from strata.snapshot import Kind
from strata.snapshot.metadata import now
from tests.snapshot.conftest import Env
from tests.snapshot.helpers import (
    add_trigger,
    checksum,
    describe,
    drop_trigger,
    files,
    is_whiteout,
    mounted,
    store_state,
    write,
)

pytestmark = pytest.mark.root

OPAQUE = "trusted.overlay.opaque"


def one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text, repr(text)
    return text


def test_lifecycle(env: Env) -> None:
    s = env.snap
    assert s.prepare("base-active")
    with mounted(s, "base-active", env.work) as target:
        (target / "foo").write_text("foo\n")
        (target / "a" / "b" / "c").mkdir(parents=True)
    s.commit("base", "base-active")
    base = s.stat("base")
    assert (base.key, base.parent, base.kind) == ("base", None, Kind.COMMITTED)
    with pytest.raises(NotFound):
        s.stat("base-active")

    s.prepare("next-active", "base")
    with mounted(s, "next-active", env.work) as target:
        assert files(target) == {"foo": "foo\n", "a": "<dir>", "a/b": "<dir>", "a/b/c": "<dir>"}
        (target / "bar").write_text("bar\n")
        (target / "foo").write_text("bar\n")
        shutil.rmtree(target / "a" / "b")
    active = s.stat("next-active")
    assert (active.parent, active.kind) == ("base", Kind.ACTIVE)
    s.commit("next", "next-active")
    assert [i.key for i in s.walk()] == ["base", "next"]
    assert list(s.walk()) == [s.stat("base"), s.stat("next")]

    s.view("view", "next")
    with mounted(s, "view", env.work) as target:
        assert files(target) == {"foo": "bar\n", "bar": "bar\n", "a": "<dir>"}
    with pytest.raises(Conflict):
        s.remove("next")
    s.remove("view")
    with pytest.raises(Conflict, match="next"):
        s.remove("base")
    s.remove("next")
    s.remove("base")
    assert list(s.walk()) == []
    assert store_state(env.root) == ([], [], [])


def test_stat_kinds_labels_and_times(env: Env) -> None:
    s = env.snap
    before = now()
    s.prepare("a", labels={"x": "1"})
    s.commit("c1", "a", labels={"y": "2"})
    s.prepare("a1", "c1")
    s.prepare("a2")
    s.view("v1", "c1", labels={"z": "3"})
    s.view("v2")
    after = now()
    expected = {
        "a1": ("c1", Kind.ACTIVE, {}),
        "a2": (None, Kind.ACTIVE, {}),
        "c1": (None, Kind.COMMITTED, {"x": "1", "y": "2"}),
        "v1": ("c1", Kind.VIEW, {"z": "3"}),
        "v2": (None, Kind.VIEW, {}),
    }
    for info in s.walk():
        assert (info.parent, info.kind, dict(info.labels)) == expected.pop(info.key)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", info.created)
        assert before <= info.created <= after
    assert expected == {}
    for bad in ({"": "x"}, {"k": 1}, {"k": "v" * 5000}):
        with pytest.raises(InvalidArgument):
            s.prepare("labelled", labels=bad)  # type: ignore[arg-type]


def test_files_from_all_parents_are_visible(env: Env) -> None:
    env.layer("one", None, write({"a": "1", "dir/x": "1"}))
    env.layer("two", "one", write({"a": "2", "b": "2"}))
    env.layer("three", "two", write({"c": "3", "dir/y": "3"}))
    env.snap.prepare("top", "three")
    with mounted(env.snap, "top", env.work) as target:
        assert files(target) == {
            "a": "2",
            "b": "2",
            "c": "3",
            "dir": "<dir>",
            "dir/x": "1",
            "dir/y": "3",
        }
    env.snap.view("two-view", "two")
    with mounted(env.snap, "two-view", env.work) as target:
        assert files(target) == {"a": "2", "b": "2", "dir": "<dir>", "dir/x": "1"}
    assert env.snap.stat("top").parent == "three"


def _rich_tree(target: Path) -> None:
    (target / "dir" / "sub").mkdir(parents=True)
    (target / "dir" / "sub" / "deep").write_text("deep")
    (target / "file").write_text("content")
    (target / "setuid").write_text("#!/bin/sh\n")
    os.chmod(target / "setuid", 0o4755)
    (target / "owned").write_text("owned")
    os.chown(target / "owned", 1000, 1000)
    os.setxattr(target / "file", "user.note", b"kept")
    os.link(target / "file", target / "hardlink")
    os.symlink("file", target / "link")
    os.mkfifo(target / "fifo")


def test_changes_stay_in_the_child(env: Env) -> None:
    s = env.snap
    env.layer("parent", None, _rich_tree)
    parent_sum = checksum(s.upper("parent"))
    s.view("parent-view", "parent")
    with mounted(s, "parent-view", env.work) as target:
        parent_view = describe(target)

    s.prepare("child", "parent")
    with mounted(s, "child", env.work) as target:
        with open(target / "file", "a") as fh:
            fh.write(" appended")
        os.chmod(target / "setuid", 0o700)
        os.chown(target / "owned", 0, 0)
        os.setxattr(target / "link", "trusted.x", b"1", follow_symlinks=False)
        os.unlink(target / "fifo")
        shutil.rmtree(target / "dir")
        os.rename(target / "hardlink", target / "moved")
        os.utime(target / "setuid", (0, 0))
        (target / "new").write_text("new")
        child_view = describe(target)
    assert child_view != parent_view
    assert checksum(s.upper("parent")) == parent_sum
    with mounted(s, "parent-view", env.work) as target:
        assert describe(target) == parent_view
    with mounted(s, "child", env.work) as target:
        assert describe(target) == child_view


def test_removing_a_lower_directory(env: Env) -> None:
    s = env.snap
    env.layer("parent", None, write({"dir/sub/f": "f", "dir/g": "g", "keep": "k"}))
    s.prepare("child", "parent")
    with mounted(s, "child", env.work) as target:
        shutil.rmtree(target / "dir")
        assert files(target) == {"keep": "k"}
    upper = s.upper("child")
    if s.diff_kind == "overlay":
        assert is_whiteout(upper / "dir")
        assert not (upper / "keep").exists()
    else:
        assert files(upper) == {"keep": "k"}
    s.commit("done", "child")
    s.view("look", "done")
    with mounted(s, "look", env.work) as target:
        assert files(target) == {"keep": "k"}


def test_removing_a_lower_file_and_replacing_a_directory(env: Env) -> None:
    s = env.snap
    env.layer("parent", None, write({"f": "f", "d/x": "x", "other": "o"}))
    s.prepare("child", "parent")
    with mounted(s, "child", env.work) as target:
        os.unlink(target / "f")
        shutil.rmtree(target / "d")
        (target / "d").mkdir()
        (target / "d" / "y").write_text("y")
        assert files(target) == {"d": "<dir>", "d/y": "y", "other": "o"}
    upper = s.upper("child")
    if s.diff_kind == "overlay":
        assert is_whiteout(upper / "f")
        assert os.getxattr(upper / "d", OPAQUE) == b"y"
        assert os.listdir(upper / "d") == ["y"]
    else:
        assert files(upper) == {"d": "<dir>", "d/y": "y", "other": "o"}
        assert OPAQUE not in os.listxattr(upper / "d")


def test_renaming_a_lower_file(env: Env) -> None:
    s = env.snap
    env.layer("parent", None, write({"f": "1", "d/g": "2"}))
    s.prepare("child", "parent")
    expected = {"f2": "1", "d": "<dir>", "g2": "2"}
    with mounted(s, "child", env.work) as target:
        os.rename(target / "f", target / "f2")
        os.rename(target / "d" / "g", target / "g2")
        assert files(target) == expected
    upper = s.upper("child")
    if s.diff_kind == "overlay":
        assert is_whiteout(upper / "f")
        assert is_whiteout(upper / "d" / "g")
        assert (upper / "f2").read_text() == "1"
    s.commit("done", "child")
    s.view("look", "done")
    with mounted(s, "look", env.work) as target:
        assert files(target) == expected


def test_renaming_a_lower_directory(env: Env) -> None:
    s = env.snap
    env.layer("parent", None, write({"d/x": "x", "d/sub/y": "y"}))
    s.prepare("child", "parent")
    expected = {"e": "<dir>", "e/x": "x", "e/sub": "<dir>", "e/sub/y": "y"}
    with mounted(s, "child", env.work) as target:
        if s.diff_kind == "overlay":
            # redirect_dir=off is pinned: rename(2) of a merged lower dir is refused with EXDEV,
            # and mv falls back to copy and delete, which a layer tar can express.
            with pytest.raises(OSError) as caught:
                os.rename(target / "d", target / "e")
            assert caught.value.errno == errno.EXDEV
            subprocess.run(["mv", str(target / "d"), str(target / "e")], check=True)
        else:
            os.rename(target / "d", target / "e")
        assert files(target) == expected
        (target / "fresh").mkdir()
        os.rename(target / "fresh", target / "fresh2")  # a dir of the upper layer itself: fine
        os.rmdir(target / "fresh2")
    upper = s.upper("child")
    if s.diff_kind == "overlay":
        assert is_whiteout(upper / "d")
        assert "trusted.overlay.redirect" not in os.listxattr(upper / "e")
        assert files(upper / "e") == {"x": "x", "sub": "<dir>", "sub/y": "y"}
    else:
        assert files(upper) == expected
    s.commit("done", "child")
    s.view("look", "done")
    with mounted(s, "look", env.work) as target:
        assert files(target) == expected


def test_a_stack_of_128_layers(env: Env) -> None:
    s = env.snap
    parent: str | None = None
    for i in range(128):
        s.prepare(f"layer-{i}-active", parent)
        (s.upper(f"layer-{i}-active") / f"file-{i:03}").write_text(str(i))
        s.commit(f"layer-{i}", f"layer-{i}-active")
        parent = f"layer-{i}"
    names = [f"file-{i:03}" for i in range(128)]
    s.prepare("top", parent)
    with mounted(s, "top", env.work) as target:
        assert sorted(os.listdir(target)) == names
        assert (target / "file-000").read_text() == "0"
        (target / "file-000").write_text("changed")
    assert (s.upper("layer-0") / "file-000").read_text() == "0"
    s.view("top-view", parent)
    with mounted(s, "top-view", env.work) as target:
        assert sorted(os.listdir(target)) == names


def test_remove_refuses_while_children_exist(env: Env) -> None:
    s = env.snap
    env.layer("base", None, write({"a": "a"}))
    env.layer("mid", "base", write({"b": "b"}))
    s.prepare("top", "mid")
    s.view("look", "mid")
    with pytest.raises(Conflict) as caught:
        s.remove("mid")
    assert "mid" in one_line(caught.value) and "and 1 more" in str(caught.value)
    with pytest.raises(Conflict, match="mid"):
        s.remove("base")
    s.remove("top")
    s.remove("look")
    s.remove("mid")
    s.remove("base")
    assert store_state(env.root) == ([], [], [])


def test_usage(env: Env) -> None:
    s = env.snap
    s.prepare("a")
    empty = s.usage("a")
    assert empty.inodes >= 2 and empty.size > 0
    upper = s.upper("a")
    (upper / "big").write_bytes(os.urandom(1 << 20))
    os.link(upper / "big", upper / "big-again")  # counted once
    (upper / "small").write_text("x")
    used = s.usage("a")
    assert used.inodes == empty.inodes + 2
    assert (1 << 20) <= used.size - empty.size < (1 << 20) + 64 * 1024
    s.commit("c", "a")
    assert s.usage("c") == used
    with pytest.raises(NotFound):
        s.usage("a")


def test_bad_keys_and_kinds(env: Env) -> None:
    s = env.snap
    env.layer("base", None, write({"a": "a"}))
    s.prepare("active")
    s.view("looking", "base")
    before = store_state(env.root)
    cases: list[tuple[type[StrataError], Callable[[], object], str]] = [
        (InvalidArgument, lambda: s.prepare(""), "''"),
        (InvalidArgument, lambda: s.view(""), "''"),
        (InvalidArgument, lambda: s.prepare("bad\nkey"), "bad\\nkey"),
        (InvalidArgument, lambda: s.prepare("x", ""), "''"),
        (InvalidArgument, lambda: s.commit("", "active"), "''"),
        (InvalidArgument, lambda: s.commit("x", ""), "''"),
        (InvalidArgument, lambda: s.remove(""), "''"),
        (InvalidArgument, lambda: s.stat(""), "''"),
        (InvalidArgument, lambda: s.mounts(""), "''"),
        (NotFound, lambda: s.prepare("x", "missing"), "missing"),
        (NotFound, lambda: s.view("x", "missing"), "missing"),
        (NotFound, lambda: s.commit("x", "missing"), "missing"),
        (NotFound, lambda: s.remove("missing"), "missing"),
        (NotFound, lambda: s.stat("missing"), "missing"),
        (NotFound, lambda: s.mounts("missing"), "missing"),
        (NotFound, lambda: s.upper("missing"), "missing"),
        (Conflict, lambda: s.prepare("active"), "active"),
        (Conflict, lambda: s.prepare("base"), "base"),
        (Conflict, lambda: s.view("looking", "base"), "looking"),
        (Conflict, lambda: s.commit("base", "active"), "base"),
        (InvalidArgument, lambda: s.commit("x", "looking"), "view"),
        (InvalidArgument, lambda: s.commit("x", "base"), "committed"),
        (InvalidArgument, lambda: s.prepare("x", "active"), "not committed"),
        (InvalidArgument, lambda: s.view("x", "looking"), "not committed"),
        (InvalidArgument, lambda: s.mounts("base"), "committed"),
    ]
    for kind, call, needle in cases:
        with pytest.raises(kind) as caught:
            call()
        assert needle in one_line(caught.value), (needle, str(caught.value))
    assert store_state(env.root) == before


def test_keys_can_be_reused_after_remove(env: Env) -> None:
    s = env.snap
    s.prepare("committed-a")
    s.commit("committed-1", "committed-a")
    s.prepare("reuse-1", "committed-1")
    s.remove("reuse-1")
    s.view("reuse-1", "committed-1")
    s.remove("reuse-1")
    s.prepare("reuse-1")
    s.remove("committed-1")
    s.commit("committed-1", "reuse-1")
    assert s.stat("committed-1").kind is Kind.COMMITTED


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_views_are_read_only(env: Env, depth: int) -> None:
    parent = None
    for i in range(depth):
        env.layer(f"l{i}", parent, write({f"f{i}": str(i)}))
        parent = f"l{i}"
    env.snap.view("look", parent)
    with mounted(env.snap, "look", env.work) as target:
        assert sorted(os.listdir(target)) == [f"f{i}" for i in range(depth)]
        with pytest.raises(OSError) as caught:
            (target / "new").write_text("no")
        assert caught.value.errno == errno.EROFS


def test_failure_before_the_commit_leaves_nothing(env: Env) -> None:
    s = env.snap
    env.layer("base", None, write({"a": "a"}))
    before = store_state(env.root)
    add_trigger(env.root, "INSERT")
    for parent in (None, "base"):
        for make in (s.prepare, s.view):
            with pytest.raises(StoreError, match="injected failure"):
                make("doomed", parent)
            assert store_state(env.root) == before
    drop_trigger(env.root, "INSERT")

    s.prepare("active", "base")
    with mounted(s, "active", env.work) as target:
        (target / "b").write_text("b")
    before = store_state(env.root)
    add_trigger(env.root, "UPDATE")
    with pytest.raises(StoreError, match="injected failure"):
        s.commit("committed", "active")
    drop_trigger(env.root, "UPDATE")
    add_trigger(env.root, "DELETE")
    with pytest.raises(StoreError, match="injected failure"):
        s.remove("active")
    drop_trigger(env.root, "DELETE")
    assert store_state(env.root) == before
    assert s.stat("active").kind is Kind.ACTIVE
    with mounted(s, "active", env.work) as target:
        assert files(target) == {"a": "a", "b": "b"}
