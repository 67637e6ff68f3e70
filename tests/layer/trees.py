"""Helpers for the layer tests: build a tree with every kind of entry, and describe a tree."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

from strata.layer.generate import write_tar_from_dir
from strata.layer.stats import LayerStats

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / ".." / "shared" / "conformance"

# A Linux file capability (VFS_CAP_REVISION_2): cap_net_bind_service in permitted+effective.
CAPABILITY = bytes.fromhex("0100000200040000000000000000000000000000")
BINARY_XATTR = bytes(range(256))
MTIME = 1_600_000_000


def build_tree(root: Path, *, reverse: bool = False) -> Path:
    """A tree with files (empty, small, >1 MiB), dirs, long and odd names, links and a fifo.

    ``reverse`` creates the entries in the opposite order, so the directory order on disk
    differs while the content is the same.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)  # same content in every tree built
    long_dir = "d" * 60 + "/" + "e" * 60
    steps: list[tuple[str, str, bytes | str]] = [
        ("dir", "etc", ""),
        ("file", "etc/hostname", b"strata\n"),
        ("file", "etc/empty", b""),
        ("dir", "usr", ""),
        ("dir", "usr/bin", ""),
        ("file", "usr/bin/tool", rng.randbytes(3 * 1024 * 1024 + 17)),
        ("file", "usr/bin/mid", rng.randbytes(300 * 1024)),
        ("link", "usr/bin/tool-again", "usr/bin/tool"),
        ("link", "etc/hostname.hard", "etc/hostname"),
        ("symlink", "bin", "usr/bin"),
        ("symlink", "etc/abs", "/etc/hostname"),
        ("symlink", "etc/dangling", "../nowhere/" + "x" * 120),
        ("dir", "d" * 60, ""),
        ("dir", long_dir, ""),
        ("file", long_dir + "/" + "f" * 90, b"deep\n"),
        ("file", "n" * 200, b"long name\n"),
        ("file", "caf\u00e9 \u2603.txt", b"unicode\n"),
        ("file", "latin1-\udce9", b"not utf-8\n"),
        ("file", "a-b", b"sorts before a/"),
        ("dir", "a", ""),
        ("file", "a/b", b"inside a\n"),
        ("file", ".wh.gone", b""),
        ("fifo", "pipe", ""),
        ("dir", "empty-dir", ""),
    ]
    if reverse:
        steps = [s for s in steps if s[0] == "dir"] + [s for s in reversed(steps) if s[0] != "dir"]
    for kind, name, value in steps:
        path = root / name
        if kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            assert isinstance(value, bytes)
            path.write_bytes(value)
        elif kind == "link":
            assert isinstance(value, str)
            target = root / value
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"")
            os.link(target, path)
        elif kind == "symlink":
            os.symlink(value, path)
        elif kind == "fifo":
            os.mkfifo(path)
    # the hardlinks above may have been made before their targets got content (reverse order)
    (root / "etc" / "hostname").write_bytes(b"strata\n")
    os.chmod(root / "usr" / "bin" / "tool", 0o755)
    os.setxattr(root / "etc" / "hostname", "user.binary", BINARY_XATTR)
    os.setxattr(root / "usr", "user.note", b"dir xattr")
    make_socket(root / "sock")
    set_mtimes(root)
    return root


def make_socket(path: Path) -> None:
    """A unix socket file (bound via a short relative name: sun_path is 108 bytes)."""
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(cwd)


def set_mtimes(root: Path, mtime: int = MTIME) -> None:
    """Fixed mtimes everywhere (children before their directories)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames]:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def generate(root: Path, clamp_mtime: int | None = None) -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = write_tar_from_dir(root, out, clamp_mtime=clamp_mtime)
    return out.getvalue(), stats


def describe(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Everything a layer records about each entry under ``root`` (not the root itself)."""
    found: dict[bytes, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], bytes] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if kind == stat.S_IFSOCK:
                continue
            if kind == stat.S_IFREG:
                with open(path, "rb") as f:
                    content: object = hashlib.sha256(f.read()).hexdigest()
                key = (st.st_dev, st.st_ino)
                link_group = inodes.setdefault(key, rel) if st.st_nlink > 1 else None
            elif kind == stat.S_IFLNK:
                content, link_group = os.readlink(path), None
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                content, link_group = (os.major(st.st_rdev), os.minor(st.st_rdev)), None
            else:
                content, link_group = None, None
            xattrs = sorted(
                (n, os.getxattr(path, n, follow_symlinks=False))
                for n in os.listxattr(path, follow_symlinks=False)
            )
            found[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns // 10**9,
                content,
                link_group,
                tuple(xattrs),
            )
    return found


def gnu_tar(*args: str | os.PathLike[str], input: bytes | None = None) -> bytes:
    """Run GNU tar in the C locale; return its stdout."""
    proc = subprocess.run(
        ["tar", *map(str, args)],
        input=input,
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    return proc.stdout


def members(data: bytes) -> list[tarfile.TarInfo]:
    """The members of a tar as Python's tarfile reads it."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def tar_of(*infos: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar written by Python's tarfile with these members (data for regular files)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for info, data in infos:
            if info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return out.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    """A TarInfo with sensible defaults."""
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = MTIME
    for key, value in fields.items():
        setattr(ti, key, value)
    return ti
