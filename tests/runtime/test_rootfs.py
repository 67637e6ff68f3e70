"""An untrusted rootfs: symlinks never lead out; executables are found as runc finds them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.errors import CommandNotExecutable, CommandNotFound, InvalidArgument, UnsafePath
from strata.runtime.rootfs import find_executable, read_file, resolve
from strata.runtime.users import resolve_user


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for d in ("etc", "usr/bin", "opt/real", "bin-dir"):
        (r / d).mkdir(parents=True)
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the root that a hostile image would like us to read."""
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0:HOST:/host:/bin/sh\nevil:x:666:666::/:/bin/sh\n")
    return secret


def test_absolute_symlink_stays_inside(root: Path, outside: Path) -> None:
    (root / "etc" / "passwd").symlink_to(outside)  # absolute: means <root>/tmp/.../secret
    assert resolve(root, "/etc/passwd") == root / outside.relative_to("/")
    assert read_file(root, "/etc/passwd") is None
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        resolve_user(root, "evil")


def test_dotdot_symlink_stops_at_root(root: Path, outside: Path) -> None:
    depth = len(root.parts)
    (root / "etc" / "passwd").symlink_to("../" * (depth + 3) + str(outside).lstrip("/"))
    assert resolve(root, "/etc/passwd") == root / outside.relative_to("/")
    assert read_file(root, "/etc/passwd") is None
    assert resolve(root, "/../../..") == root


def test_symlinked_directory_is_followed_inside(root: Path, outside: Path) -> None:
    (root / "etc2").symlink_to("/etc")
    (root / "etc" / "passwd").write_text("bob:x:7:8::/home/bob:/bin/sh\n")
    assert resolve_user(root, "bob").uid == 7
    assert read_file(root, "/etc2/passwd") == (root / "etc" / "passwd").read_bytes()
    os.rename(root / "etc", root / "etc.real")
    (root / "etc").symlink_to(outside.parent)  # /etc -> a host dir: read inside the root
    assert read_file(root, "/etc/secret") is None


def test_symlink_loop(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(UnsafePath, match="too many levels"):
        resolve(root, "/a/x")


def test_oversized_file_is_refused(root: Path) -> None:
    with open(root / "etc" / "passwd", "wb") as f:
        f.truncate(64 << 20)  # sparse: costs nothing
    with pytest.raises(UnsafePath, match="larger than"):
        resolve_user(root, "someone")


def test_special_files_are_not_read(root: Path) -> None:
    os.mkfifo(root / "etc" / "passwd")  # reading a FIFO would block forever
    assert read_file(root, "/etc/passwd") is None
    assert resolve_user(root, "0").uid == 0


def test_malformed_passwd_lines_are_skipped(root: Path) -> None:
    (root / "etc" / "passwd").write_text(
        "junk\nx:x:notanumber:0::/:/bin/sh\n# c\nok:x:5:6::/o:/s\n"
    )
    user = resolve_user(root, "ok")
    assert (user.uid, user.gid, user.home) == (5, 6, "/o")


def make_exe(path: Path, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)


def test_lookup_on_path(root: Path) -> None:
    make_exe(root / "usr" / "bin" / "tool")
    make_exe(root / "bin-dir" / "tool")
    assert find_executable(root, "tool", path_env="/bin-dir:/usr/bin") == "/bin-dir/tool"
    assert find_executable(root, "tool", path_env="/usr/bin") == "/usr/bin/tool"
    assert find_executable(root, "/usr/bin/tool", path_env="") == "/usr/bin/tool"


def test_lookup_follows_symlinks_inside(root: Path) -> None:
    make_exe(root / "opt" / "real" / "node")
    (root / "usr" / "bin" / "node").symlink_to("/opt/real/node")
    assert find_executable(root, "node", path_env="/usr/bin") == "/usr/bin/node"
    (root / "usr" / "bin" / "host-ls").symlink_to("/bin/ls")  # exists on the host only
    with pytest.raises(CommandNotFound):
        find_executable(root, "host-ls", path_env="/usr/bin")


def test_lookup_skips_non_executables_on_path(root: Path) -> None:
    make_exe(root / "bin-dir" / "tool", 0o644)
    make_exe(root / "usr" / "bin" / "tool")
    assert find_executable(root, "tool", path_env="/bin-dir:/usr/bin") == "/usr/bin/tool"


def test_lookup_errors_are_dockers(root: Path) -> None:
    make_exe(root / "etc" / "data", 0o644)
    with pytest.raises(CommandNotFound) as nf:
        find_executable(root, "nope", path_env="/usr/bin")
    assert str(nf.value) == 'exec: "nope": executable file not found in $PATH'
    assert nf.value.exit_code == 127
    with pytest.raises(CommandNotFound) as missing:
        find_executable(root, "/nope/x", path_env="/usr/bin")
    assert str(missing.value) == 'exec: "/nope/x": stat /nope/x: no such file or directory'
    for name in ("/etc/data", "/etc"):
        with pytest.raises(CommandNotExecutable) as denied:
            find_executable(root, name, path_env="/usr/bin")
        assert str(denied.value) == f'exec: "{name}": permission denied'
        assert denied.value.exit_code == 126


def test_lookup_relative_to_cwd(root: Path) -> None:
    make_exe(root / "opt" / "real" / "run.sh")
    assert find_executable(root, "./run.sh", path_env="", cwd="/opt/real") == "./run.sh"
    assert find_executable(root, "run.sh", path_env=":/usr/bin", cwd="/opt/real") == "./run.sh"


def test_lookup_under_a_mount_is_left_to_the_runtime(root: Path) -> None:
    assert find_executable(root, "/dev/init", path_env="", opaque=("/dev",)) is None
    assert find_executable(root, "tool", path_env="/mnt/bin", opaque=("/mnt",)) is None
