"""The hostile corpus, part two: the cases of containerd's and go-archive's own tests.

containerd's ``pkg/archive/tar_test.go`` (``TestBreakouts``, named ``ctr_*`` here, in its
order) and go-archive's ``diff_test.go`` / ``archive_test.go`` breakout tests (``ga_*``), read
with the fetch tool and written again in our terms: ``..`` stops at the root, a symlinked
parent is followed inside the target, a hardlink target is resolved the same way, and the
whiteout prefix counts in the last component only. Where containerd applies a case, the same
result is expected here; where it fails, so do we. Their "/tmp/breakout" and "victim" paths are
our canaries, which the runner checks are never touched. The expectations were checked against
containerd's validators one by one: ``sameFile`` resolves both names inside the root
(`root_path`, written here independently of the applier) and compares inodes.

Cases that set up a lower layer first write it into the target; whiteouts there are checked
in "delete" mode (in an upper dir the same names would be overlay whiteout devices, checked
where the case says so).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from strata.errors import FormatError, UnsafePath

from .hostile import Check, Sandbox, case, is_dir, regular, that
from .members import directory, file, hardlink, symlink, tar

PASSWD = b"inside"


def root_path(root: Path, name: str) -> Path:
    """``name`` in ``root`` with every symlink followed inside ``root`` (continuity's RootPath)."""
    resolved: list[str] = []
    pending = [p for p in reversed(name.split("/"))]
    for _ in range(1000):
        if not pending:
            return root.joinpath(*resolved)
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = root.joinpath(*resolved, part)
        if os.path.islink(here):
            target = os.readlink(here)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed(target.split("/")))
        else:
            resolved.append(part)
    raise AssertionError(f"{name}: symlink loop")


def same_file(a: str, b: str, *, same: bool = True) -> Check:
    def check(t: Path, mode: str) -> None:
        one, two = os.lstat(root_path(t, a)), os.lstat(root_path(t, b))
        assert ((one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)) is same, (a, b)

    return check


def value(name: str, content: bytes) -> Check:
    return lambda t, m: that(regular(t / name, content))


def gone(name: str) -> Check:
    def check(t: Path, mode: str) -> None:
        if mode == "delete":
            assert not os.path.lexists(t / name), name
        else:
            st = os.lstat(t / name)
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, name

    return check


def every(*checks: Check) -> Check:
    def check(t: Path, mode: str) -> None:
        for one in checks:
            one(t, mode)

    return check


def etc(s: Sandbox, passwd: bytes = PASSWD, *, whitedout: bool = False) -> None:
    """containerd's usual lower layer: /etc/passwd (and /etc/whitedout, "delete" mode only)."""
    (s.target / "etc").mkdir(mode=0o755)
    (s.target / "etc" / "passwd").write_bytes(passwd)
    if whitedout and s.mode == "delete":
        (s.target / "etc" / "whitedout").write_bytes(b"ahhhh whiteout")


UNBROKEN = value("etc/unbroken", b"unbroken")


# --- containerd TestBreakouts --------------------------------------------------------------


@case(check=UNBROKEN)
def ctr_symlink_absolute(s: Sandbox) -> bytes:
    return tar(
        directory("etc"), symlink("localetc", "/etc"), file("/localetc/unbroken", b"unbroken")
    )


@case(check=UNBROKEN)
def ctr_symlink_up_and_out(s: Sandbox) -> bytes:
    return tar(
        directory("etc"),
        directory("dummy"),
        symlink("localetc", "/dummy/../etc"),
        file("/localetc/unbroken", b"unbroken"),
    )


@case(check=UNBROKEN)
def ctr_symlink_multiple_absolute(s: Sandbox) -> bytes:
    return tar(
        directory("etc"),
        directory("dummy"),
        symlink("/dummy/etc", "/etc"),
        symlink("localetc", "/dummy/etc"),
        file("/dummy/etc/unbroken", b"unbroken"),
    )


@case(check=UNBROKEN)
def ctr_symlink_multiple_relative(s: Sandbox) -> bytes:
    return tar(
        directory("etc"),
        directory("dummy"),
        symlink("/dummy/etc", "/etc"),
        symlink("localetc", "./dummy/etc"),
        file("/dummy/etc/unbroken", b"unbroken"),
    )


@case(check=value("etc/emptied", b""))
def ctr_symlink_empty_file(s: Sandbox) -> bytes:
    return tar(
        directory("etc"),
        file("etc/emptied", b"notempty"),
        symlink("localetc", "/etc"),
        file("/localetc/emptied", b""),
    )


PASSWD_LAYER = (directory("etc", 0o770), file("/etc/passwd", PASSWD))


@case(check=same_file("/breakouts/mypasswd", "/etc/passwd"))
def ctr_hardlink_relative(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        directory("breakouts"),
        symlink("breakouts/d1", "../../etc"),
        hardlink("breakouts/mypasswd", "/breakouts/d1/passwd"),
    )


@case(check=same_file("/breakouts/mypasswd", "/etc/passwd"))
def ctr_hardlink_down_and_out(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        directory("breakouts"),
        directory("downandout"),
        symlink("breakouts/d1", "../downandout/../../etc"),
        hardlink("breakouts/mypasswd", "/breakouts/d1/passwd"),
    )


@case(check=same_file("localpasswd", "/etc/passwd"))
def ctr_hardlink_absolute(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER, symlink("localetc", "/etc"), hardlink("localpasswd", "/localetc/passwd")
    )


@case(check=same_file("localpasswd", "/etc/passwd"))
def ctr_hardlink_relative_long(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        symlink("localetc", "../../../../../../../etc"),
        hardlink("localpasswd", "/localetc/passwd"),
    )


@case(check=same_file("localpasswd", "/etc/passwd"))
def ctr_hardlink_relative_up_and_out(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        symlink("localetc", "upandout/../../../etc"),
        hardlink("localpasswd", "/localetc/passwd"),
    )


@case(check=same_file("localpasswd", "/etc/passwd"))
def ctr_hardlink_direct_relative(s: Sandbox) -> bytes:
    return tar(*PASSWD_LAYER, hardlink("localpasswd", "../../../../../etc/passwd"))


@case(check=same_file("localpasswd", "/etc/passwd"))
def ctr_hardlink_direct_absolute(s: Sandbox) -> bytes:
    return tar(*PASSWD_LAYER, hardlink("localpasswd", "/etc/passwd"))


@case(check=same_file("/localpasswd", "/etc/passwd"))
def ctr_symlink_parent_directory(s: Sandbox) -> bytes:
    # a symlink named ".." resolves to the root: skipped
    return tar(*PASSWD_LAYER, symlink("..", "/etc/"), hardlink("localpasswd", "/etc/passwd"))


@case(check=same_file("/localpasswd", "/etc/passwd"))
def ctr_symlink_empty_filename(s: Sandbox) -> bytes:
    return tar(*PASSWD_LAYER, symlink("", "/etc/"), hardlink("localpasswd", "/etc/passwd"))


@case(check=same_file("/localetc/localpasswd", "/etc/passwd"))
def ctr_symlink_parent_relative(s: Sandbox) -> bytes:
    # "localetc/sub/.." is "localetc" once cleaned: the symlink is localetc itself
    return tar(
        *PASSWD_LAYER,
        symlink("localetc/sub/..", "/etc/"),
        hardlink("/localetc/localpasswd", "/etc/passwd"),
    )


@case(check=same_file("/localetc/localpasswd", "/etc/passwd"))
def ctr_symlink_slash_ended(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        directory("localetc/", 0o770),
        hardlink("/localetc/localpasswd", "/etc/passwd"),
    )


@case(check=same_file("/localetc/localpasswd", "/etc/passwd"))
def ctr_symlink_override_directory(s: Sandbox) -> bytes:
    etc(s)
    (s.target / "localetc").mkdir()
    return tar(symlink("localetc", "/etc"), hardlink("/localetc/localpasswd", "/etc/passwd"))


@case(check=same_file("/localetc/localpasswd", "/etc/passwd"))
def ctr_symlink_override_directory_relative(s: Sandbox) -> bytes:
    etc(s)
    (s.target / "localetc").mkdir()
    return tar(symlink("localetc", "../../etc"), hardlink("/localetc/localpasswd", "/etc/passwd"))


@case(check=same_file("/localetc/localpasswd", "/etc/passwd"))
def ctr_directory_override_symlink(s: Sandbox) -> bytes:
    etc(s)
    os.symlink("/etc", s.target / "localetc")
    return tar(directory("/localetc/"), hardlink("/localetc/localpasswd", "/etc/passwd"))


@case(check=same_file("/localetc/localpasswd", "/etc/passwd", same=False))
def ctr_directory_override_symlink_and_hardlink(s: Sandbox) -> bytes:
    etc(s)
    os.symlink("etc", s.target / "localetc")
    os.link(s.target / "etc" / "passwd", s.target / "etc" / "localpasswd")
    return tar(directory("/localetc/"), file("/localetc/localpasswd", b"different"))


@case(error=UnsafePath)
def ctr_whiteout_root_parent(s: Sandbox) -> bytes:
    etc(s)
    return tar(file(".wh..."))


@case(error=UnsafePath)
def ctr_whiteout_parent(s: Sandbox) -> bytes:
    etc(s)
    return tar(file("etc/.wh..."))


@case(error=UnsafePath)
def ctr_whiteout_root(s: Sandbox) -> bytes:
    etc(s)
    return tar(file(".wh.."))


@case(error=UnsafePath)
def ctr_whiteout_current_directory(s: Sandbox) -> bytes:
    etc(s)
    return tar(file("etc/.wh.."))


@case(check=every(value("etc/passwd", b"all users"), gone("localetc")), modes=("delete",))
def ctr_whiteout_symlink(s: Sandbox) -> bytes:
    etc(s, b"all users")
    os.symlink("/etc", s.target / "localetc")
    return tar(file(".wh.localetc"))


@case(check=every(value("etc/passwd", b"all users"), gone("etc/whitedout")))
def ctr_whiteout_symlink_path(s: Sandbox) -> bytes:
    etc(s, b"all users", whitedout=True)
    os.symlink("/etc", s.target / "localetc")
    return tar(file("localetc/.wh.whitedout"))


@case(check=every(value("etc/passwd", b"all users"), value(".wh.etc/somefile", b"non-empty")))
def ctr_whiteout_directory_name(s: Sandbox) -> bytes:
    etc(s, b"all users", whitedout=True)
    os.symlink("/etc", s.target / "localetc")
    return tar(file(".wh.etc/somefile", b"non-empty"))


@case(check=every(value("etc/passwd", b"all users"), gone("dne/etc")))
def ctr_whiteout_dead_symlink_parent(s: Sandbox) -> bytes:
    etc(s, b"all users")
    os.symlink("/dne", s.target / "localetc")
    return tar(file("localetc/.wh.etc"))


@case(check=lambda t, m: that(not os.path.lexists(t / "etc" / "passwd")), modes=("delete",))
def ctr_whiteout_relative_path(s: Sandbox) -> bytes:
    etc(s, b"all users")
    os.symlink("/dne", s.target / "localetc")
    return tar(file("dne/../.wh.etc"))


def _override_path(t: Path, mode: str) -> None:
    assert regular(t / "foo" / "tmp" / "breakout", b"\x06\x07\x08")
    (canary,) = (t / "tmp").iterdir()  # the write "to /tmp" stayed inside
    assert regular(canary / "breakout", b"\x03\x04\x05")


@case(check=_override_path)
def ctr_symlink_override_path(s: Sandbox) -> bytes:
    outside = str(s.tmp_canary / "breakout")
    return tar(
        directory("foo"),
        directory("foo/tmp"),
        file("foo/tmp/breakout", b"\x00\x01\x02"),
        symlink("foo", "/"),
        file("foo" + outside, b"\x03\x04\x05"),
        directory("foo"),
        directory("foo/tmp"),
        file("foo/tmp/breakout", b"\x06\x07\x08"),
    )


@case(check=same_file("localpasswd-dup", "/etc/passwd"))
def ctr_hardlink_symlink_before_create_target(s: Sandbox) -> bytes:
    return tar(
        directory("etc", 0o770),
        symlink("localpasswd", "/etc/passwd"),
        hardlink("localpasswd-dup", "localpasswd"),
        file("/etc/passwd", b"after"),
    )


def _hardlinked_symlink(t: Path, mode: str) -> None:
    assert os.lstat(t / "localpasswd").st_ino == os.lstat(t / "passwdlink").st_ino
    same_file("/localpasswd", "/etc/passwd")(t, mode)


@case(check=_hardlinked_symlink)
def ctr_hardlink_symlink_relative(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER,
        symlink("passwdlink", "../../../../../etc/passwd"),
        hardlink("localpasswd", "/passwdlink"),
    )


@case(check=_hardlinked_symlink)
def ctr_hardlink_symlink_absolute(s: Sandbox) -> bytes:
    return tar(
        *PASSWD_LAYER, symlink("passwdlink", "/etc/passwd"), hardlink("localpasswd", "/passwdlink")
    )


@case()
def ctr_hardlink_symlink_chmod(s: Sandbox) -> bytes:
    # the symlink is made at the canary's path *inside* the target; the canary keeps its mode
    outside = str(s.tmp_canary / "file")
    return tar(symlink(outside, str(s.canary / "file")), hardlink("sketchylink", outside))


# --- go-archive: ApplyLayer and Untar breakouts (the victim is the canary beside the target) -


def _victim(s: Sandbox) -> None:
    (s.target / "canary").mkdir()  # as go-archive's testBreakout makes dest/victim


@case(check=every(value("canary/dotdot", b""), value("canary/slash-dotdot", b"")))
def ga_invalid_filenames(s: Sandbox) -> bytes:
    _victim(s)
    return tar(file("../canary/dotdot"), file("/../canary/slash-dotdot"))


@case(error=FormatError)
def ga_hardlink_dotdot(s: Sandbox) -> bytes:
    _victim(s)
    return tar(hardlink("dotdot", "../canary/file"))


@case(error=FormatError)
def ga_hardlink_slash_dotdot(s: Sandbox) -> bytes:
    _victim(s)
    return tar(hardlink("slash-dotdot", "/../canary/file"))


@case(error=FormatError)
def ga_hardlink_to_the_victim_dir(s: Sandbox) -> bytes:
    _victim(s)
    return tar(hardlink("loophole-victim", "../canary"), file("loophole-victim/file"))


def _loophole(t: Path, mode: str) -> None:
    assert os.readlink(t / "loophole-victim") == "../canary"
    assert regular(t / "canary" / "file", b"w") and os.readlink(t / "symlink")
    assert regular(t / "loophole-victim2", b"replaced")


@case(check=_loophole)
def ga_symlink_loophole(s: Sandbox) -> bytes:
    _victim(s)
    return tar(
        symlink("dotdot", "../canary/file"),
        symlink("slash-dotdot", "/../canary/file"),
        symlink("loophole-victim", "../canary"),
        file("loophole-victim/file", b"w"),
        symlink("symlink", "loophole-victim/file"),
        symlink("loophole-victim2", "../canary"),
        file("loophole-victim2", b"replaced"),
    )


@case(check=same_file("hardlink", "canary/file"))
def ga_symlink_then_hardlink_through_it(s: Sandbox) -> bytes:
    _victim(s)
    (s.target / "canary" / "file").write_bytes(b"inside")
    return tar(
        symlink("loophole-victim", "../canary"), hardlink("hardlink", "loophole-victim/file")
    )


def _two_hops(t: Path, mode: str) -> None:
    assert os.readlink(t / "inner" / "go_up") == ".." and os.readlink(t / "escape") == "../victim"
    assert regular(t / "victim" / "newfile", b"")


@case(check=_two_hops)
def ga_untar_symlink_breakout(s: Sandbox) -> bytes:
    return tar(
        directory("inner"),
        symlink("inner/go_up", ".."),
        symlink("inner/go_up/escape", "../victim"),
        file("inner/go_up/escape/newfile"),
    )


BROKEN_TAR = (
    Path(__file__).parents[3] / "shared/conformance/tar-fixtures/moby-go-archive-broken.tar"
)
PLACK = "root/.cpanm/work/1395823785.24209/Plack-1.0030/blib/man3"


@case(check=lambda t, m: that(is_dir(t / PLACK)))
def ga_ustar_gnu_conflict(s: Sandbox) -> bytes:
    # GNU base-256 ids and a ustar prefix in one header (go-archive's testdata/broken.tar)
    return BROKEN_TAR.read_bytes()
