"""write_tar_from_dir: deterministic, complete, and read back the same by GNU tar and tarfile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from strata.errors import StrataError
from strata.layer.tarreader import TarReader
from tests.layer.trees import (
    BINARY_XATTR,
    CAPABILITY,
    MTIME,
    build_tree,
    describe,
    generate,
    gnu_tar,
    members,
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("generate") / "tree")


def walk_order(root: Path) -> list[bytes]:
    """Depth first, each directory's names sorted by bytes, sockets left out."""
    found: list[bytes] = []

    def visit(directory: bytes, prefix: bytes) -> None:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat_kind(st.st_mode) == "sock":
                continue
            found.append(prefix + name)
            if stat_kind(st.st_mode) == "dir":
                visit(path, prefix + name + b"/")

    visit(os.fsencode(root), b"")
    return found


def stat_kind(mode: int) -> str:
    import stat

    if stat.S_ISSOCK(mode):
        return "sock"
    return "dir" if stat.S_ISDIR(mode) else "other"


def test_same_tree_same_bytes(tree: Path) -> None:
    first, stats = generate(tree)
    second, again = generate(tree)
    assert first == second
    assert stats == again
    assert stats.size == len(first)
    assert stats.diff_id.hex == hashlib.sha256(first).hexdigest()
    assert stats.entries == len(walk_order(tree))
    assert len(first) % 512 == 0
    assert first.endswith(bytes(1024))


def test_copy_and_reordered_tree_give_the_same_diff_id(tree: Path, tmp_path: Path) -> None:
    _, stats = generate(tree)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    assert generate(copy)[1].diff_id == stats.diff_id
    rebuilt = build_tree(tmp_path / "reversed", reverse=True)
    assert generate(rebuilt)[1].diff_id == stats.diff_id


def test_members_in_walk_order_and_canonical(tree: Path) -> None:
    data, _ = generate(tree)
    reader = TarReader(io.BytesIO(data), source="tree")
    raw = list(reader)
    assert [m.name.rstrip(b"/") for m in raw] == walk_order(tree)
    assert all(m.name.endswith(b"/") == (m.type == b"5") for m in raw)
    names = [m.name.rstrip(b"/") for m in raw]
    assert names.index(b"a") < names.index(b"a/b") < names.index(b"a-b")
    assert not any(n.startswith((b"./", b"/")) or n in (b"", b".") for n in names)
    assert b"sock" not in names
    by_name = {m.name.rstrip(b"/"): m for m in raw}
    assert by_name[b"etc/hostname.hard"].type == b"1"
    assert by_name[b"etc/hostname.hard"].linkname == b"etc/hostname"
    assert by_name[b"usr/bin/tool-again"].linkname == b"usr/bin/tool"
    assert by_name[b"usr/bin/tool"].size == 3 * 1024 * 1024 + 17
    assert by_name[b"pipe"].type == b"6"
    assert by_name[b"bin"].linkname == b"usr/bin"
    assert by_name[b"etc/dangling"].linkname.startswith(b"../nowhere/")
    assert by_name[b"latin1-\xe9"].type == b"0"
    assert by_name[b"usr"].xattrs == ((b"user.note", b"dir xattr"),)
    assert {m.mtime for m in raw} == {MTIME}
    for m in raw:
        assert (m.uid, m.gid) == (os.getuid(), os.getgid())


def test_directories_end_with_a_slash_and_owner_names_are_empty(tree: Path) -> None:
    data, _ = generate(tree)
    for m in members(data):
        assert m.uname == "" and m.gname == ""
    listing = gnu_tar("-tf", "-", input=data).decode("utf-8", "surrogateescape").splitlines()
    assert "usr/bin/" in listing and "etc/" in listing
    assert "etc/hostname" in listing


def test_tarfile_reads_data_and_binary_xattrs(tree: Path) -> None:
    data, _ = generate(tree)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        hostname = tf.getmember("etc/hostname")
        value = hostname.pax_headers["SCHILY.xattr.user.binary"]
        assert value.encode("utf-8", "surrogateescape") == BINARY_XATTR
        tool = tf.extractfile("usr/bin/tool")
        assert tool is not None
        assert tool.read() == (tree / "usr" / "bin" / "tool").read_bytes()
        assert tf.getmember("n" * 200).size == len(b"long name\n")
        assert tf.getmember("caf\u00e9 \u2603.txt").isreg()
        assert tf.getmember("latin1-\udce9").isreg()


def test_gnu_tar_extracts_the_same_tree(tree: Path, tmp_path: Path) -> None:
    data, _ = generate(tree)
    gnu_tar("-tvf", "-", input=data)
    out = tmp_path / "out"
    out.mkdir()
    gnu_tar("--xattrs", "--xattrs-include=*", "-xpf", "-", "-C", out, input=data)
    assert describe(out) == describe(tree)


def test_clamp_mtime(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)
    os.utime(copy / "etc" / "hostname", (MTIME + 500, MTIME + 500))
    data, _ = generate(copy, clamp_mtime=MTIME + 100)
    found = {m.name: m.mtime for m in members(data)}
    assert found["etc/hostname"] == MTIME + 100
    assert found["usr/bin/tool"] == MTIME
    assert generate(copy, clamp_mtime=MTIME)[1].diff_id == generate(tree)[1].diff_id


def test_sub_second_mtimes_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    os.utime(tmp_path / "f", ns=(0, MTIME * 10**9 + 999_999_999))
    assert members(generate(tmp_path)[0])[0].mtime == MTIME


def test_empty_directory_is_just_the_end_marker(tmp_path: Path) -> None:
    data, stats = generate(tmp_path)
    assert data == bytes(1024)
    assert stats.entries == 0


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(StrataError, match=r"/nope: cannot archive: No such file or directory$"):
        generate(tmp_path / "nope")


@pytest.mark.root
def test_special_files_ownership_and_mode_bits(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "dev").mkdir(parents=True)
    os.mknod(root / "dev" / "null", 0o20666, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop7", 0o60660, os.makedev(7, 7))
    os.mkfifo(root / "dev" / "initctl", 0o600)
    ping = root / "ping"
    ping.write_bytes(b"\x7fELF pretend")
    os.chmod(ping, 0o4755)
    os.setxattr(ping, "security.capability", CAPABILITY)
    os.setxattr(ping, "user.binary", BINARY_XATTR)
    shared = root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)
    tmp = root / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    owned = root / "owned"
    owned.write_bytes(b"mine")
    os.chown(owned, 1234, 5678)
    os.chown(shared, 1234, 5678)
    big_ids = root / "big-ids"
    big_ids.write_bytes(b"")
    os.chown(big_ids, 3_000_000, 4_000_000)  # past USTAR's 7 octal digits: PAX records
    os.symlink("ping", root / "ping-link")
    os.lchown(root / "ping-link", 1234, 5678)

    data, _ = generate(root)
    found = {m.name: m for m in members(data)}
    assert (found["dev/null"].devmajor, found["dev/null"].devminor) == (1, 3)
    assert found["dev/null"].ischr() and found["dev/loop7"].isblk()
    assert (found["dev/loop7"].devmajor, found["dev/loop7"].devminor) == (7, 7)
    assert found["dev/initctl"].isfifo()
    assert found["ping"].mode == 0o4755
    assert found["shared"].mode == 0o2775 and found["tmp"].mode == 0o1777
    assert (found["owned"].uid, found["owned"].gid) == (1234, 5678)
    assert (found["big-ids"].uid, found["big-ids"].gid) == (3_000_000, 4_000_000)
    assert (found["ping-link"].uid, found["ping-link"].gid) == (1234, 5678)
    cap = found["ping"].pax_headers["SCHILY.xattr.security.capability"]
    assert cap.encode("utf-8", "surrogateescape") == CAPABILITY

    out = tmp_path / "out"
    out.mkdir()
    gnu_tar("--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", "-", "-C", out, input=data)
    assert describe(out) == describe(root)
    assert os.getxattr(out / "ping", "security.capability") == CAPABILITY


@pytest.mark.root
def test_other_filesystems_are_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "proc").mkdir(parents=True)
    (root / "file").write_bytes(b"x")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "proc")], check=True)
    try:
        (root / "proc" / "inside").write_bytes(b"not part of the tree")
        names = [m.name for m in members(generate(root)[0])]
    finally:
        subprocess.run(["umount", str(root / "proc")], check=True)
    assert names == ["file", "proc"]


@pytest.mark.root
def test_host_bookkeeping_xattrs_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.setxattr(tmp_path / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(tmp_path / "d", "trusted.other", b"kept")
    (entry,) = TarReader(io.BytesIO(generate(tmp_path)[0]), source="t")
    assert entry.xattrs == ((b"trusted.other", b"kept"),)


def oci_layout(path: Path, layer: bytes) -> None:
    """A one-layer OCI image layout tagged "t" (built by hand: no other strata package)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layer_desc = put(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "config": {},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **put(json.dumps(config).encode()),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **put(json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": "t"},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


@pytest.mark.root
@pytest.mark.peers
def test_go_archive_tar_reads_what_we_write(tree: Path, tmp_path: Path) -> None:
    # umoci unpacks layers with Go's archive/tar, the reader of Docker, containerd and registries.
    root = tmp_path / "tree"
    subprocess.run(["cp", "-a", str(tree), str(root)], check=True)
    os.mknod(root / "null", 0o20666, os.makedev(1, 3))
    os.chown(root / "etc" / "hostname", 1234, 5678)
    os.setxattr(root / "etc" / "empty", "security.capability", CAPABILITY)
    oci_layout(tmp_path / "layout", generate(root)[0])
    subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:t", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
    )
    expected = describe(root)
    del expected[b".wh.gone"]  # an OCI whiteout: umoci applies it rather than creating it
    assert describe(tmp_path / "bundle" / "rootfs") == expected


def test_gnu_tar_is_present() -> None:
    assert shutil.which("tar"), "GNU tar is part of the base system these tests assume"
