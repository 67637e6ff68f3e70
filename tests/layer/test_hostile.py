"""A corpus of hostile layers: each is applied beside canaries, which must never change.

Every case builds its tar here, applies it (in both whiteout modes unless it says otherwise)
to a target directory that has a canary tree as a sibling and another in /tmp, and checks that
the expected error or the safe result happened and that nothing outside the target changed:
every canary path's content, link target, xattrs and metadata (ctime included) is compared,
and the sandbox around the target must hold no new names.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.errors import FormatError, StrataError, UnsafePath
from strata.layer.entry import REGTYPE, TarEntry
from strata.layer.tarwriter import BLOCK, END_OF_ARCHIVE, encode_header
from strata.layer.whiteout import OVERLAY_OPAQUE

from . import (  # noqa: F401  (they register more cases: byte-level, containerd's, go-archive's)
    hostile_format,
    hostile_upstream,
)
from .hostile import CASES, Check, Sandbox, case, is_dir, plant, regular, that
from .members import MODES, apply, device, directory, file, hardlink, symlink, tar


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    target = tmp_path / "target"
    target.mkdir()
    canary = tmp_path / "canary"
    plant(canary)
    tmp_canary = Path(tempfile.mkdtemp(prefix="strata-canary-", dir="/tmp"))
    plant(tmp_canary)
    try:
        yield Sandbox(tmp_path, target, canary, tmp_canary)
    finally:
        shutil.rmtree(tmp_canary)


# --- names that climb: ``..`` stops at the root, as in a chroot (containerd, Docker) ---------


@case(check=lambda t, m: that(regular(t / "escaped", b"x")))
def dotdot_plain(s: Sandbox) -> bytes:
    return tar(file("../escaped", b"x"))


@case(check=lambda t, m: that(regular(t / "escaped", b"x"), is_dir(t / "a")))
def dotdot_nested(s: Sandbox) -> bytes:
    return tar(directory("a"), file("a/../../escaped", b"x"))


@case(check=lambda t, m: that(regular(t / "canary" / "file", b"pwned")))
def dotdot_into_canary(s: Sandbox) -> bytes:
    return tar(file("../canary/file", b"pwned"))


@case(check=lambda t, m: that(regular(t / "escaped", b"x")))
def dotdot_after_absolute(s: Sandbox) -> bytes:
    return tar(file("/../escaped", b"x"))


@case(check=lambda t, m: that(regular(t / "b", b"b"), not os.path.lexists(t / "a")))
def dotdot_inside_after_cleaning(s: Sandbox) -> bytes:
    return tar(file("a/../b", b"b"), file("./x/./../a/.."))


@case(check=lambda t, m: that(regular(t / "abs-file", b"a")))
def absolute_name(s: Sandbox) -> bytes:
    return tar(file("/abs-file", b"a"))


@case()
def absolute_name_of_the_canary(s: Sandbox) -> bytes:
    # lands at target/<the canary's absolute path>, never on the canary
    return tar(file(str(s.canary / "file"), b"pwned"), file(str(s.tmp_canary / "file"), b"pwned"))


@case(error=FormatError)
def hardlink_dotdot(s: Sandbox) -> bytes:
    return tar(hardlink("h", "../canary/file"))


@case(error=FormatError)
def hardlink_absolute_outside(s: Sandbox) -> bytes:
    return tar(hardlink("h", str(s.tmp_canary / "file")))


@case(error=FormatError)
def hardlink_through_symlink_dir(s: Sandbox) -> bytes:
    return tar(symlink("s", str(s.canary)), hardlink("h", "s/file"))


def _hardlink_to_symlink(t: Path, mode: str) -> None:
    assert os.lstat(t / "h").st_ino == os.lstat(t / "s").st_ino
    assert regular(t / "h2", b"new")


@case(check=_hardlink_to_symlink)
def hardlink_to_symlink_pointing_out(s: Sandbox) -> bytes:
    # a link to the symlink itself: harmless; writing over it replaces it, never follows it
    return tar(
        symlink("s", str(s.tmp_canary / "file")),
        hardlink("h", "s"),
        symlink("s2", str(s.canary / "file")),
        hardlink("h2", "s2"),
        file("h2", b"new"),
    )


@case(error=FormatError)
def hardlink_to_a_directory(s: Sandbox) -> bytes:
    return tar(directory("d"), hardlink("h", "d"))


@case(error=FormatError)
def hardlink_to_itself(s: Sandbox) -> bytes:
    return tar(hardlink("h", "h"))


# --- symlinks in the way: followed inside the target, as a chroot would ---------------------


def _replaced_by_dir(name: str, child: str, content: bytes) -> Check:
    def check(t: Path, mode: str) -> None:
        assert is_dir(t / name) and regular(t / name / child, content)

    return check


def _through(link: str, child: str, content: bytes) -> Check:
    """``link`` stayed a symlink to an absolute path, and ``child`` landed there in the target."""

    def check(t: Path, mode: str) -> None:
        target = os.readlink(t / link)
        while os.path.islink(t / target.lstrip("/")):  # a chain
            target = os.readlink(t / target.lstrip("/"))
        assert regular(t / target.lstrip("/") / child, content)

    return check


@case(check=lambda t, m: that(os.path.islink(t / "a"), regular(t / "x", b"x")))
def symlink_dotdot_then_write(s: Sandbox) -> bytes:
    return tar(symlink("a", ".."), file("a/x", b"x"))


@case(check=_through("a", "file", b"pwned"))
def symlink_absolute_then_write(s: Sandbox) -> bytes:
    return tar(symlink("a", str(s.tmp_canary)), file("a/file", b"pwned"))


@case(check=_replaced_by_dir("a", "file", b"pwned"))
def symlink_then_dir_member_then_write(s: Sandbox) -> bytes:
    return tar(symlink("a", str(s.canary)), directory("a", 0o777), file("a/file", b"pwned"))


@case(check=_through("b", "file", b"pwned"))
def symlink_chain_then_write(s: Sandbox) -> bytes:
    return tar(symlink("b", str(s.canary)), symlink("a", "b"), file("a/file", b"pwned"))


@case(error=FormatError)  # containerd: too many links; a chroot: ELOOP
def symlink_loop_then_write(s: Sandbox) -> bytes:
    return tar(
        symlink("l1", "l2"), symlink("l2", "l1"), symlink("self", "self"), file("l1/x", b"x")
    )


@case(check=_through("lower", "dir/inner", b"pwned"), modes=("delete",))
def lower_layer_symlink_then_write(s: Sandbox) -> bytes:
    os.symlink(s.canary, s.target / "lower")
    return tar(file("lower/file", b"pwned"), file("lower/dir/inner", b"pwned"))


@case(check=lambda t, m: that(os.path.islink(t / "lower")), modes=("delete",))
def lower_layer_symlink_whiteout_through(s: Sandbox) -> bytes:
    os.symlink(s.canary, s.target / "lower")
    return tar(file("lower/.wh.file"), file("lower/.wh.dir"), file("lower/dir/.wh.inner"))


@case(check=lambda t, m: that(os.path.islink(t / "lower")), modes=("delete",))
def lower_layer_symlink_opaque(s: Sandbox) -> bytes:
    os.symlink(s.tmp_canary, s.target / "lower")
    return tar(file("lower/.wh..wh..opq"))


@case(check=lambda t, m: that(regular(t / "victim", b"replaced")))
def file_replaces_symlink_to_outside(s: Sandbox) -> bytes:
    os.symlink(s.canary / "file", s.target / "victim")
    return tar(symlink("v2", str(s.tmp_canary / "file")), file("victim", b"replaced"), file("v2"))


@case(check=lambda t, m: that(is_dir(t / "victim")))
def dir_replaces_symlink_to_outside(s: Sandbox) -> bytes:
    os.symlink(s.canary / "dir", s.target / "victim")
    return tar(directory("victim", 0o777, uid=1234, xattrs=((b"user.x", b"1"),)))


@case(check=lambda t, m: that(not os.path.lexists(t / "lnk")), modes=("delete",))
def whiteout_of_symlink_to_outside(s: Sandbox) -> bytes:
    os.symlink(s.canary, s.target / "lnk")
    return tar(file(".wh.lnk"))


@case(check=lambda t, m: that(os.readlink(t / "s") == "/etc/shadow"))
def symlink_target_is_just_data(s: Sandbox) -> bytes:
    return tar(symlink("s", "/etc/shadow"), symlink("t", "../../../../../../etc"))


# --- whiteouts -----------------------------------------------------------------------------


@case(error=UnsafePath)
def whiteout_dotdot(s: Sandbox) -> bytes:
    return tar(file(".wh..."))


@case(error=UnsafePath)
def whiteout_dot(s: Sandbox) -> bytes:
    return tar(directory("d"), file("d/.wh.."))


@case(error=UnsafePath)
def whiteout_empty_name(s: Sandbox) -> bytes:
    return tar(file(".wh."))


@case()
def whiteout_with_dotdot_path(s: Sandbox) -> bytes:
    return tar(file("../.wh.canary"))


def _symlink_kept(t: Path, mode: str) -> None:
    if mode == "delete":  # in an upper dir the layer's own symlink hides the lower anyway
        assert os.readlink(t / "s")


@case(check=_symlink_kept)
def whiteout_through_layer_symlink(s: Sandbox) -> bytes:
    return tar(symlink("s", str(s.canary)), file("s/.wh.file"), file("s/dir/.wh.inner"))


@case(check=_symlink_kept)
def opaque_in_symlinked_dir(s: Sandbox) -> bytes:
    return tar(symlink("s", str(s.tmp_canary)), file("s/.wh..wh..opq"))


@case(error=FormatError, modes=("delete",))
def hardlink_to_whiteouted_file(s: Sandbox) -> bytes:
    (s.target / "gone").write_bytes(b"lower")
    return tar(file(".wh.gone"), hardlink("h", "gone"))


@case(error=FormatError, modes=("overlay",))
def hardlink_to_whiteout_device(s: Sandbox) -> bytes:
    return tar(file(".wh.gone"), hardlink("h", "gone"))


def _opaque_after(t: Path, mode: str) -> None:
    assert sorted(os.listdir(t / "d")) == ["new"]
    if mode == "overlay":
        assert os.getxattr(t / "d", OVERLAY_OPAQUE) == b"y"


@case(check=_opaque_after)
def opaque_marker_after_siblings(s: Sandbox) -> bytes:
    if s.mode == "delete":  # a lower layer's file; an upper dir starts empty
        (s.target / "d").mkdir()
        (s.target / "d" / "old").write_bytes(b"lower")
    return tar(directory("d"), file("d/new", b"n"), file("d/.wh..wh..opq"))


def _aufs(t: Path, mode: str) -> None:
    # the bookkeeping members are skipped; a file below them is content, as containerd and
    # Docker 20.10's overlay2 keep it
    assert regular(t / ".wh..wh.plnk" / "123.456", b"x")
    assert not os.path.lexists(t / ".wh.aufs") and not os.path.lexists(t / ".wh.plnk")


@case(check=_aufs)
def aufs_bookkeeping_skipped(s: Sandbox) -> bytes:
    return tar(directory(".wh..wh.plnk"), file(".wh..wh.plnk/123.456", b"x"), file(".wh..wh.aufs"))


@case(check=lambda t, m: that(os.listxattr(t / "d") == []), root=True)
def overlay_xattrs_from_the_layer_dropped(s: Sandbox) -> bytes:
    xattrs = ((b"trusted.overlay.opaque", b"y"), (b"trusted.overlay.redirect", b"/etc"))
    return tar(directory("d", xattrs=xattrs))


# --- the root, odd names, depth ------------------------------------------------------------


def _root_untouched(t: Path, mode: str) -> None:
    st = os.lstat(t)
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == os.geteuid()


@case(check=_root_untouched)
def root_dot_entries_with_odd_modes(s: Sandbox) -> bytes:
    os.chmod(s.target, 0o755)
    return tar(
        directory(".", 0o7777, uid=1234),
        directory("/.", 0o000),
        directory("./", 0o777),
        directory("/", 0o1777),
    )


def _root_empty(t: Path, mode: str) -> None:
    assert is_dir(t) and os.listdir(t) == []


# Both peers skip a member that names the root, whatever its type.
@case(check=_root_empty)
def root_as_a_file(s: Sandbox) -> bytes:
    return tar(file(".", b"x"), file("a/..", b"y"))


@case(check=_root_empty)
def root_as_a_symlink(s: Sandbox) -> bytes:
    return tar(symlink("/.", str(s.canary)), symlink("..", "/etc"))


@case(check=_root_empty)
def empty_name(s: Sandbox) -> bytes:
    return tar(file("", b"x"))


def _gnu_long_name(name: bytes) -> bytes:
    body = name + b"\x00"
    head = encode_header(TarEntry(b"././@LongLink", b"L", 0, 0, 0, 0, len(body)))
    return head + body + bytes(-len(body) % BLOCK)


@case(check=lambda t, m: that(regular(t / "ok", b"x")))
def nul_in_gnu_long_name(s: Sandbox) -> bytes:
    # the name ends at the NUL: "ok", never "ok\0../../escaped"
    data = b"x"
    header = encode_header(TarEntry(b"placeholder", REGTYPE, 0o644, 0, 0, 0, len(data)))
    member = _gnu_long_name(b"ok\x00../../escaped") + header + data + bytes(BLOCK - 1)
    return member + END_OF_ARCHIVE


def _long_path(t: Path, mode: str) -> None:
    fd = os.open(t, os.O_RDONLY)
    try:
        for part in LONG_PARTS:
            child = os.open(part, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


LONG_PARTS = [f"{i:03d}" + "p" * 97 for i in range(60)]  # 6,000 bytes: over PATH_MAX


@case(check=_long_path)
def name_longer_than_path_max(s: Sandbox) -> bytes:
    name = "/".join(LONG_PARTS)
    return tar(file(name + "/f", b"deep"))


@case(error=FormatError)
def component_longer_than_name_max(s: Sandbox) -> bytes:
    return tar(file("a/" + "n" * 256, b"x"))


@case(check=lambda t, m: that(regular(t / "d", b"flat")))
def deep_nesting_then_removed(s: Sandbox) -> bytes:
    # deeper than the dir fd cache and the recursion limit; then one member removes it all
    depth = 1200
    names = ["/".join(["d"] * i) for i in range(1, depth + 1)]
    return tar(*(directory(n) for n in names), file(names[-1] + "/leaf", b"l"), file("d", b"flat"))


def _back_up(t: Path, mode: str) -> None:
    for depth in (3, 100, 199):
        fd = os.open(t, os.O_RDONLY)
        try:
            for _ in range(depth):
                child = os.open("d", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
            assert os.stat(f"at{depth}", dir_fd=fd, follow_symlinks=False).st_size == 1
        finally:
            os.close(fd)


@case(check=_back_up)
def deep_nesting_then_back_up(s: Sandbox) -> bytes:
    # back up to levels whose cached fds were closed to stay under the limit
    names = ["/".join(["d"] * i) for i in range(1, 201)]
    return tar(
        *(directory(n) for n in names),
        *(file(names[depth - 1] + f"/at{depth}", b"x") for depth in (199, 3, 100)),
    )


@case(check=lambda t, m: that(stat.S_ISCHR(os.lstat(t / "dev" / "null").st_mode)), root=True)
def device_node_inside_only(s: Sandbox) -> bytes:
    return tar(directory("dev"), device("dev/null", 1, 3), device("/dev/zero-ish", 1, 5))


@case(check=lambda t, m: that(stat.S_ISCHR(os.lstat(t / "canary" / "null").st_mode)), root=True)
def device_node_climbing(s: Sandbox) -> bytes:
    return tar(device("../canary/null", 1, 3))


# --- the runner ----------------------------------------------------------------------------

PARAMS = [
    pytest.param(name, mode, id=f"{name}-{mode}", marks=[pytest.mark.root] if c.root else [])
    for name, c in CASES.items()
    for mode in MODES
    if mode in c.modes
]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 90


@pytest.mark.parametrize(("name", "mode"), PARAMS)
def test_hostile_layer(sandbox: Sandbox, name: str, mode: str) -> None:
    c = CASES[name]
    before = sandbox.snapshot()
    sandbox.mode = mode
    data = c.build(sandbox)
    assert sandbox.snapshot() == before, "the case itself touched the canaries"
    if c.error is not None:
        with pytest.raises(c.error) as info:
            apply(data, sandbox.target, mode, limit=c.limit)  # type: ignore[arg-type]
        message = str(info.value)
        assert message.startswith("test layer: ") and "\n" not in message, message
    else:
        try:
            apply(data, sandbox.target, mode, limit=c.limit)  # type: ignore[arg-type]
        except StrataError as e:
            pytest.fail(f"{name} should apply safely, raised {e}")
        if c.check is not None:
            c.check(sandbox.target, mode)
    assert sandbox.snapshot() == before
