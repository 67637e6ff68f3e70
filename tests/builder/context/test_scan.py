"""Scanning the build context: what is in, what is out, and the size Docker would report."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from strata.builder.context.ignore import IgnoreRules
from strata.builder.context.scan import human_size_precise, load_ignore, scan_context
from strata.errors import BuildError


def make_tree(root: Path, files: dict[str, bytes | str]) -> None:
    """Files (bytes), directories (trailing "/") and symlinks ("-> target") under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        elif isinstance(content, str) and content.startswith("-> "):
            path.symlink_to(content[3:])
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())


def paths(root: Path, ignore: str = "") -> list[str]:
    (root / ".dockerignore").write_text(ignore)
    return [e.path for e in scan_context(root, load_ignore(root)).entries]


def test_walk_order_and_exclusions(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\n",
            "index.js": "x",
            "a.txt": "a",
            "a/b.txt": "b",
            "node_modules/dep/index.js": "d",
            "docs/README.md": "r",
            "docs/other.md": "o",
            "empty/": "",
            "link": "-> node_modules",
        },
    )
    # "*.md" is for the top level only; "**/*.md" reaches into docs/.
    got = paths(tmp_path, "node_modules\n**/*.md\n!docs/README.md\nDockerfile\n")
    assert got == [
        ".dockerignore",
        "a",
        "a/b.txt",
        "a.txt",
        "docs",
        "docs/README.md",
        "empty",
        "index.js",
        "link",
    ]


def test_reincluded_file_keeps_an_implicit_parent(tmp_path: Path) -> None:
    make_tree(tmp_path, {"docs/README.md": "r", "docs/x.txt": "x", "docs/deep/y.txt": "y"})
    (tmp_path / ".dockerignore").write_text("docs\n!docs/README.md\n")
    context = scan_context(tmp_path, load_ignore(tmp_path))
    entries = {e.path: e for e in context.entries}
    assert set(entries) == {".dockerignore", "docs", "docs/README.md"}
    assert entries["docs"].implicit
    assert not entries["docs/README.md"].implicit
    assert context.get("docs/x.txt") is None
    assert [e.path for e in context.below("docs")] == ["docs/README.md"]


def test_symlinked_directories_are_not_followed(tmp_path: Path) -> None:
    make_tree(tmp_path / "ctx", {"real/f": "f", "alias": "-> real", "out": "-> /etc"})
    got = [e.path for e in scan_context(tmp_path / "ctx").entries]
    assert got == ["alias", "out", "real", "real/f"]


def test_sockets_are_left_out(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fspath(tmp_path / "s.sock"))
        (tmp_path / "f").write_text("f")
        assert [e.path for e in scan_context(tmp_path).entries] == ["f"]
    finally:
        sock.close()


def reference_tar_size(root: Path, names: list[str]) -> int:
    """What a tar writer makes of the same members: headers, PAX where needed, data."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(os.fspath(root / name), arcname=name)
            info.mtime = int(info.mtime)  # Docker truncates times to seconds
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(root / name, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        end = tar.offset
    return end + 1024  # two zero blocks; tarfile then pads to its record size, Go does not


def test_tar_size_matches_a_real_tar(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    make_tree(
        root,
        {
            "Dockerfile": "FROM x\n",
            "small.txt": "hi",
            "block.bin": b"\0" * 512,
            "big.bin": os.urandom(70_000),
            "dir/sub/file.js": "x" * 1000,
            "émoji-☺.txt": "non-ascii name",
            "l" * 150: "a long name no prefix can hold",
            "link": "-> small.txt",
            "longlink": "-> " + "t" * 140,
            "node_modules/x": "excluded",
        },
    )
    os.link(root / "big.bin", root / "hard.bin")
    os.mkfifo(root / "fifo")
    (root / ".dockerignore").write_text("node_modules\n")
    context = scan_context(root, load_ignore(root))
    names = [e.path for e in context.entries]
    assert "node_modules" not in names
    assert context.tar_size == reference_tar_size(root, names)


def test_long_names_split_into_the_ustar_prefix(tmp_path: Path) -> None:
    deep = "/".join(["d" * 60] * 3) + "/f.txt"
    make_tree(tmp_path, {deep: "x"})
    context = scan_context(tmp_path, dockerfile=None)
    # Four members (three directories and the file), each a single USTAR header: no PAX.
    assert len(context.entries) == 4
    dirs_and_file = [e for e in context.entries]
    long_dir = dirs_and_file[2].path + "/"
    assert len(long_dir) > 100
    assert context.tar_size == 4 * 512 + 512 + 1024


def test_dockerfile_and_dockerignore_count_even_when_excluded(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM x\n", "app.py": "print()\n"})
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    context = scan_context(tmp_path, load_ignore(tmp_path))
    assert [e.path for e in context.entries] == ["app.py"]
    assert context.tar_size == 3 * 1024 + 1024
    # A Dockerfile from outside the context is sent too (under a generated name).
    outside = tmp_path.parent / f"{tmp_path.name}.Dockerfile"
    outside.write_text("FROM y\n")
    bigger = scan_context(tmp_path, load_ignore(tmp_path), dockerfile=outside)
    assert bigger.tar_size == context.tar_size


def test_human_size_like_docker() -> None:
    assert human_size_precise(86_150_000) == "86.15MB"
    assert human_size_precise(2048) == "2.048kB"
    assert human_size_precise(113) == "113B"
    assert human_size_precise(0) == "0B"
    assert human_size_precise(1000) == "1kB"
    assert human_size_precise(999_999) == "1000kB"
    assert human_size_precise(3_456_789_012) == "3.457GB"


def test_bad_context_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="unable to prepare context"):
        scan_context(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="not a directory"):
        scan_context(tmp_path / "file")
    (tmp_path / ".dockerignore").write_text("[\n")
    with pytest.raises(BuildError, match=r"\.dockerignore: invalid pattern '\['"):
        load_ignore(tmp_path)


def test_no_rules_and_empty_rules_agree(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a/b": "b", "c": "c"})
    assert scan_context(tmp_path).entries == scan_context(tmp_path, IgnoreRules.empty()).entries
