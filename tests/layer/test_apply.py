"""Applying layers: round trips, whiteouts in both modes (checked through a real overlay mount),
metadata kept, compression, the diff ID, and the errors."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from strata.digest import Digest
from strata.errors import DigestMismatch, FormatError, InvalidArgument, StrataError, TooLarge
from strata.layer.apply import apply_layer
from strata.layer.compression import Compression, open_compressed
from strata.layer.entry import display_name
from strata.layer.whiteout import OVERLAY_OPAQUE

from .members import (
    MODES,
    MTIME,
    apply,
    device,
    directory,
    fifo,
    file,
    hardlink,
    overlay,
    symlink,
    tar,
)
from .trees import CAPABILITY, build_tree, describe, generate, gnu_tar

root_only = pytest.mark.root


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def lower_tree(root: Path) -> Path:
    """A small lower layer: files, a nested dir, a symlink, a hardlinked pair."""
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0\n")
    (root / "etc" / "conf.d" / "a.conf").write_bytes(b"a\n")
    (root / "etc" / "conf.d" / "b.conf").write_bytes(b"b\n")
    (root / "var" / "lib" / "old").mkdir(parents=True)
    (root / "var" / "lib" / "old" / "state").write_bytes(b"old\n")
    (root / "keep").write_bytes(b"keep\n")
    os.link(root / "keep", root / "keep.hard")
    os.symlink("etc/passwd", root / "pw")
    for path in (root, *root.rglob("*")):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


# --- round trips ---------------------------------------------------------------------------


@root_only
@pytest.mark.parametrize("mode", MODES)
def test_round_trip_of_generated_tree(tmp_path: Path, mode: str) -> None:
    tree = build_tree(tmp_path / "tree")
    (tree / ".wh.gone").unlink()  # a whiteout once in a layer: it cannot round-trip
    data, stats = generate(tree)
    target = tmp_path / "out"
    target.mkdir()
    applied = apply(data, target, mode)  # type: ignore[arg-type]
    assert describe(target) == describe(tree)
    assert applied.diff_id == stats.diff_id and applied.size == len(data)
    assert applied.entries == stats.entries and applied.whiteouts == 0
    # generating again from the result gives the same layer, byte for byte
    assert generate(target)[1].diff_id == stats.diff_id


@root_only
@pytest.mark.peers
def test_matches_gnu_tar_extraction(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    (tree / ".wh.gone").unlink()
    archive = gnu_tar("--numeric-owner", "--xattrs", "-C", tree, "-cf", "-", ".")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    stats = apply(archive, ours, "delete")
    gnu_tar(
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "-xpf",
        "-",
        "-C",
        theirs,
        input=archive,
    )
    assert describe(ours) == describe(theirs) == describe(tree)
    assert stats.skipped == 1  # GNU tar's "./" member: the root's own is left alone
    assert stats.diff_id == sha256(archive)  # the 10 KiB record padding is hashed too


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.ZSTD, Compression.XZ])
def test_compressed_layers(tmp_path: Path, kind: Compression) -> None:
    data = tar(directory("d"), file("d/f", b"x" * 100_000), file("g", b"small"))
    blob = io.BytesIO()
    writer = open_compressed(blob, kind)
    writer.write(data)
    writer.close()
    blob.seek(0)
    stats = apply_layer(blob, tmp_path, whiteouts="delete", source="blob", diff_id=sha256(data))
    assert (tmp_path / "d" / "f").read_bytes() == b"x" * 100_000
    assert stats.diff_id == sha256(data) and stats.bytes == 100_005


def test_decompression_bound(tmp_path: Path) -> None:
    data = tar(file("zeros", bytes(8 << 20)))
    blob = io.BytesIO()
    writer = open_compressed(blob, Compression.GZIP)
    writer.write(data)
    writer.close()
    assert blob.tell() < 100_000
    blob.seek(0)
    with pytest.raises(TooLarge, match="^bomb: decompressed size over 1048576 bytes$"):
        apply_layer(blob, tmp_path, whiteouts="delete", source="bomb", limit=1 << 20)


def test_diff_id_checked_or_skipped(tmp_path: Path) -> None:
    data = tar(file("f", b"1"))
    wrong = sha256(b"something else")
    with pytest.raises(DigestMismatch, match=f"^L: uncompressed tar is {sha256(data)}, expected"):
        apply_layer(io.BytesIO(data), tmp_path, whiteouts="delete", source="L", diff_id=wrong)
    (tmp_path / "b").mkdir()
    stats = apply_layer(
        io.BytesIO(data), tmp_path / "b", whiteouts="delete", source="L", compute_diff_id=False
    )
    assert stats.diff_id is None and stats.size == len(data)
    with pytest.raises(InvalidArgument):
        apply_layer(
            io.BytesIO(data), tmp_path, whiteouts="delete", source="L", diff_id=wrong,
            compute_diff_id=False,
        )  # fmt: skip
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(data), tmp_path, whiteouts="merge", source="L")  # type: ignore[arg-type]


def test_missing_target_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(StrataError, match="nowhere: cannot apply a layer here"):
        apply(tar(file("f")), tmp_path / "nowhere", "delete")


# --- metadata ------------------------------------------------------------------------------


@root_only
@pytest.mark.parametrize("mode", MODES)
def test_ownership_modes_xattrs_devices(tmp_path: Path, mode: str) -> None:
    xattrs = (
        (b"security.capability", CAPABILITY),
        (b"trusted.note", b"kept"),
        (b"trusted.overlay.opaque", b"y"),  # overlayfs's own: never taken from a layer
        (b"user.mime", b"text/plain"),
    )
    data = tar(
        directory("bin", 0o755),
        file("bin/ping", b"\x7fELF", 0o4755, uid=0, gid=0, xattrs=xattrs[:1]),
        file("bin/sgid", b"g", 0o2711, uid=1000, gid=50),
        directory("tmp", 0o1777),
        directory("shared", 0o2775, uid=1000, gid=1000, xattrs=xattrs[1:]),
        file("shared/x", b"x", 0o640, uid=1000, gid=1000),
        symlink("shared/link", "x", uid=1000, gid=1000, mtime=MTIME - 5),
        device("dev/null", 1, 3),
        device("dev/loop0", 7, 0, block=True),
        fifo("dev/fifo", 0o620),
        file("odd", b"", 0o000, uid=4_000_000, gid=4_000_000, mtime=2**33),
    )
    apply(data, tmp_path, mode)  # type: ignore[arg-type]
    st = os.lstat(tmp_path / "bin" / "ping")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.getxattr(tmp_path / "bin" / "ping", "security.capability") == CAPABILITY
    st = os.lstat(tmp_path / "bin" / "sgid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2711, 1000, 50)
    assert stat.S_IMODE(os.lstat(tmp_path / "tmp").st_mode) == 0o1777
    st = os.lstat(tmp_path / "shared")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (
        0o2775, 1000, 1000, MTIME,
    )  # fmt: skip
    names = set(os.listxattr(tmp_path / "shared"))
    assert names == {"trusted.note", "user.mime"}
    st = os.lstat(tmp_path / "shared" / "link")
    assert (st.st_uid, st.st_mtime) == (1000, MTIME - 5)
    st = os.lstat(tmp_path / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(os.lstat(tmp_path / "dev" / "loop0").st_mode)
    st = os.lstat(tmp_path / "dev" / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    st = os.lstat(tmp_path / "odd")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime) == (0, 4_000_000, 2**33)
    # implicit parent: no member for dev/
    assert stat.S_IMODE(os.lstat(tmp_path / "dev").st_mode) == 0o755


@root_only
def test_directory_times_and_modes_set_last(tmp_path: Path) -> None:
    data = tar(
        directory("ro", 0o555, mtime=1000),
        directory("ro/sub", 0o500, mtime=2000),
        file("ro/sub/f", b"f"),
        file("ro/g", b"g"),
    )
    apply(data, tmp_path, "overlay")
    assert os.lstat(tmp_path / "ro").st_mtime == 1000
    assert os.lstat(tmp_path / "ro" / "sub").st_mtime == 2000
    assert stat.S_IMODE(os.lstat(tmp_path / "ro").st_mode) == 0o555


@root_only
def test_existing_directory_takes_the_members_metadata(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    os.setxattr(tmp_path / "d", "user.stale", b"1")
    (tmp_path / "d" / "old").write_bytes(b"lower")
    apply(
        tar(directory("d", 0o751, uid=7, gid=8, xattrs=((b"user.new", b"2"),))), tmp_path, "delete"
    )
    st = os.lstat(tmp_path / "d")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o751, 7, 8, MTIME)
    assert os.listxattr(tmp_path / "d") == ["user.new"]
    assert (tmp_path / "d" / "old").read_bytes() == b"lower"  # a directory member merges


def test_replacing_never_writes_through_an_existing_inode(tmp_path: Path) -> None:
    lower_tree(tmp_path)
    apply(tar(file("keep", b"new\n")), tmp_path, "delete")
    assert (tmp_path / "keep").read_bytes() == b"new\n"
    assert (tmp_path / "keep.hard").read_bytes() == b"keep\n"


def test_hardlinks_within_the_layer_and_to_lower_files(tmp_path: Path) -> None:
    lower_tree(tmp_path)
    data = tar(file("a", b"A"), hardlink("b", "a"), hardlink("./c", "/a"), hardlink("k2", "keep"))
    apply(data, tmp_path, "delete")
    ino = os.lstat(tmp_path / "a").st_ino
    assert os.lstat(tmp_path / "b").st_ino == ino == os.lstat(tmp_path / "c").st_ino
    assert os.lstat(tmp_path / "k2").st_ino == os.lstat(tmp_path / "keep").st_ino


def test_non_directory_parent_is_replaced(tmp_path: Path) -> None:
    lower_tree(tmp_path)
    apply(tar(file("keep/inside", b"i")), tmp_path, "delete")
    assert (tmp_path / "keep" / "inside").read_bytes() == b"i"


def test_symlinked_parent_is_followed_inside(tmp_path: Path) -> None:
    # pw -> etc/passwd, a file: as under containerd, Docker or a chroot, that is no directory
    lower_tree(tmp_path)
    with pytest.raises(FormatError) as info:
        apply(tar(file("pw/x", b"x")), tmp_path, "delete")
    assert str(info.value) == (
        "test layer: member pw/x: a symlink on its path leads to a non-directory"
    )
    assert (tmp_path / "etc" / "passwd").read_bytes() == b"root:x:0:0\n"
    os.symlink("/etc/conf.d/../..//etc", tmp_path / "abs")
    apply(tar(file("abs/conf.d/c.conf", b"c"), file("abs/../new", b"n")), tmp_path, "delete")
    assert (tmp_path / "etc" / "conf.d" / "c.conf").read_bytes() == b"c"
    assert (tmp_path / "new").read_bytes() == b"n" and os.path.islink(tmp_path / "abs")


def test_type_changes_and_duplicates(tmp_path: Path) -> None:
    lower_tree(tmp_path)
    data = tar(
        file("var", b"now a file"),  # a lower dir replaced by a file: its tree goes
        directory("keep"),  # a lower file replaced by a dir
        file("keep/x", b"x"),
        file("dup", b"one"),
        file("dup", b"two"),
        directory("d2"),
        file("d2/f", b"f"),
        file("d2", b"file wins"),
        symlink("s", "one"),
        symlink("s", "two"),
    )
    stats = apply(data, tmp_path, "delete")
    assert (tmp_path / "var").read_bytes() == b"now a file"
    assert (tmp_path / "keep" / "x").read_bytes() == b"x"
    assert (tmp_path / "keep.hard").read_bytes() == b"keep\n"
    assert (tmp_path / "dup").read_bytes() == b"two"
    assert (tmp_path / "d2").read_bytes() == b"file wins"
    assert os.readlink(tmp_path / "s") == "two"
    # bytes: file data and symlink targets (Docker's layer size counts both).
    assert stats.entries == 10 and stats.bytes == len(b"now a filexonetwoffile wins" + b"onetwo")


def test_errors_name_source_and_member(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as info:
        apply(tar(symlink("s", "")), tmp_path, "delete")
    assert str(info.value) == "test layer: member s: symlink with an empty target"
    with pytest.raises(FormatError) as info:
        apply(tar(hardlink("h", "missing")), tmp_path, "delete")
    assert str(info.value) == "test layer: member h: hardlink target missing not found"
    with pytest.raises(FormatError) as info:
        apply(tar(file("x" * 300)), tmp_path, "delete")
    assert str(info.value) == f"test layer: member {display_name(b'x' * 300)}: File name too long"


# --- whiteouts -----------------------------------------------------------------------------

LAYERS: dict[str, Callable[[], bytes]] = {
    "whiteout file and dir": lambda: tar(
        directory("etc"), file("etc/.wh.passwd"), directory("var"), file("var/.wh.lib")
    ),
    "opaque before siblings": lambda: tar(
        directory("etc"), file("etc/.wh..wh..opq"), file("etc/hosts", b"h"), directory("etc/conf.d")
    ),
    "opaque after siblings": lambda: tar(
        directory("etc"),
        directory("etc/conf.d"),
        file("etc/conf.d/c.conf", b"c"),
        file("etc/hosts", b"h"),
        file("etc/.wh..wh..opq"),
    ),
    "opaque before its directory": lambda: tar(
        file("etc/.wh..wh..opq"), directory("etc", 0o700), file("etc/x", b"x")
    ),
    "whiteout after the same name": lambda: tar(
        directory("var"),
        directory("var/lib"),
        file("var/lib/new", b"n"),
        file("var/.wh.lib"),
        file("keep", b"replaced"),
        file(".wh.keep"),
    ),
    "whiteout before the same name": lambda: tar(
        file(".wh.etc"),
        directory("etc"),
        file("etc/only", b"o"),
        file(".wh.pw"),
        symlink("pw", "x"),
    ),
    "whiteout of a missing name": lambda: tar(file(".wh.nothing"), file("etc/.wh.nothing")),
    "whiteout below a symlink": lambda: tar(file("pw/.wh.x")),
    "aufs metadata skipped": lambda: tar(
        directory(".wh..wh.plnk"), file(".wh..wh.plnk/1.2", b"x"), file(".wh..wh.aufs")
    ),
    "implicit parents": lambda: tar(file("new/deep/file", b"d"), file("etc/conf.d/z.conf", b"z")),
}


@pytest.mark.parametrize("name", LAYERS)
def test_delete_mode_whiteouts(tmp_path: Path, name: str) -> None:
    target = lower_tree(tmp_path / "t")
    before = describe(target)
    stats = apply(LAYERS[name](), target, "delete")
    tree = describe(target)
    expected: dict[str, Callable[[], bool]] = {
        "whiteout file and dir": lambda: b"etc/passwd" not in tree
        and b"var/lib" not in tree
        and b"var" in tree,
        "opaque before siblings": lambda: sorted(p for p in tree if p.startswith(b"etc/"))
        == [b"etc/conf.d", b"etc/hosts"],
        "opaque after siblings": lambda: sorted(p for p in tree if p.startswith(b"etc/"))
        == [b"etc/conf.d", b"etc/conf.d/c.conf", b"etc/hosts"],
        "opaque before its directory": lambda: sorted(p for p in tree if p.startswith(b"etc"))
        == [b"etc", b"etc/x"],
        "whiteout after the same name": lambda: sorted(p for p in tree if p.startswith(b"var/"))
        == [b"var/lib", b"var/lib/new"]
        and (target / "keep").read_bytes() == b"replaced",
        "whiteout before the same name": lambda: sorted(p for p in tree if p.startswith(b"etc"))
        == [b"etc", b"etc/only"]
        and os.readlink(target / "pw") == "x",
        "whiteout of a missing name": lambda: tree.keys() == before.keys(),
        "whiteout below a symlink": lambda: os.readlink(target / "pw") == "etc/passwd",
        "aufs metadata skipped": lambda: [p for p in tree if p.startswith(b".wh.")]
        == [b".wh..wh.plnk", b".wh..wh.plnk/1.2"]  # a file below it is content (containerd)
        and stats.skipped == 2,
        "implicit parents": lambda: (target / "new" / "deep" / "file").exists()
        and (target / "etc" / "conf.d" / "a.conf").exists(),
    }
    assert expected[name](), sorted(tree)


# In an upper dir, a whiteout's missing parent must be created (0755) to hold the device: below
# a lower symlink that shadows the symlink, which "delete" mode (seeing the symlink) leaves be.
SAME_IN_BOTH = [name for name in LAYERS if name != "whiteout below a symlink"]


@root_only
@pytest.mark.parametrize("name", SAME_IN_BOTH)
def test_overlay_mode_gives_the_same_merged_view(tmp_path: Path, name: str) -> None:
    lower = lower_tree(tmp_path / "lower")
    full = tmp_path / "full"
    subprocess.run(["cp", "-a", str(lower), str(full)], check=True)
    os.utime(full, (MTIME, MTIME))
    apply(LAYERS[name](), full, "delete")
    upper = tmp_path / "upper"
    upper.mkdir()
    apply(LAYERS[name](), upper, "overlay")
    with overlay([lower], upper, tmp_path / "work", tmp_path / "merged") as merged:
        seen = describe(merged)
    want = describe(full)
    # Directories this layer does not describe keep the lower's metadata in "delete" mode but
    # are new (implicit) in an upper dir; their mtimes are "now" in both.
    # A lower file keeps its link count in the merged view when its partner is replaced, so
    # a group of one (the name itself) is no group.
    for view in (seen, want):
        for key, value in view.items():
            mtime = 0 if stat.S_ISDIR(cast(int, value[0])) else value[4]
            group = None if value[6] == key else value[6]
            view[key] = (*value[:4], mtime, value[5], group, value[7])
    assert seen == want


@root_only
def test_overlay_mode_spells_deletions_for_overlayfs(tmp_path: Path) -> None:
    apply(
        tar(
            directory("etc"),
            file("etc/.wh.passwd"),
            file("etc/.wh..wh..opq"),
            file(".wh.gone-dir"),
            directory("gone-dir"),  # replaces this layer's whiteout: opaque, like overlayfs
            directory("made"),
            file(".wh.made"),  # whiteout of this layer's dir: it stays, made opaque
        ),
        tmp_path,
        "overlay",
    )
    st = os.lstat(tmp_path / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    for name in ("etc", "gone-dir", "made"):
        assert os.getxattr(tmp_path / name, OVERLAY_OPAQUE) == b"y"


@root_only
def test_opaque_root_is_reported(tmp_path: Path) -> None:
    for mode in MODES:
        target = tmp_path / mode
        lower_tree(target) if mode == "delete" else target.mkdir()
        stats = apply(tar(file(".wh..wh..opq"), file("only", b"o")), target, mode)
        assert stats.opaque_root and stats.whiteouts == 1
        if mode == "delete":
            assert os.listdir(target) == ["only"]


def as_nobody(fn: Callable[[], None]) -> None:
    """Run ``fn`` in a forked child that dropped to uid/gid 65534; fail if it fails."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@root_only
def test_unprivileged_applier(tmp_path: Path) -> None:
    # pytest's tmp_path is root's alone: the child needs a directory it can reach
    target = Path(tempfile.mkdtemp(prefix="strata-nobody-", dir="/tmp"))
    os.chown(target, 65534, 65534)
    try:
        _unprivileged(target)
    finally:
        subprocess.run(["rm", "-rf", str(target)], check=True)


def _unprivileged(target: Path) -> None:
    data = tar(
        directory("ro", 0o555),
        directory("ro/sub", 0o500),
        file("ro/sub/f", b"f", 0o4755, uid=1000, gid=1000),
        device("null", 1, 3),
        fifo("p"),
    )

    def go() -> None:
        stats = apply(data, target, "delete")
        assert stats.skipped == 1, stats

    as_nobody(go)
    assert sorted(os.listdir(target)) == ["p", "ro"]
    st = os.lstat(target / "ro" / "sub" / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o4755, 65534)
    assert stat.S_IMODE(os.lstat(target / "ro" / "sub").st_mode) == 0o500
    assert stat.S_IMODE(os.lstat(target / "ro").st_mode) == 0o555
