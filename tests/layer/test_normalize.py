"""normalize_tar: canonical output, names cleaned as a chroot would, broken tars rejected."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from strata.errors import FormatError, TooLarge
from strata.layer.normalize import clean_name, normalize_tar
from strata.layer.stats import LayerStats
from strata.layer.tarreader import TarReader
from tests.layer.trees import (
    BINARY_XATTR,
    CONFORMANCE,
    MTIME,
    build_tree,
    generate,
    gnu_tar,
    info,
    members,
    tar_of,
)

FILE = b"some file data\n" * 400  # 6000 bytes: data spans blocks, ends with padding


def normalize(data: bytes, source: str = "in.tar") -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = normalize_tar(io.BytesIO(data), out, source=source)
    return out.getvalue(), stats


def names(data: bytes) -> list[bytes]:
    return [m.name for m in TarReader(io.BytesIO(data), source="out")]


def sample_tar() -> bytes:
    return tar_of(
        (info("etc", tarfile.DIRTYPE), b""),
        (info("etc/passwd"), FILE),
        (info("etc/motd", pax_headers={"mtime": "1600000000.5"}), b"hi\n"),
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("normalize") / "tree")


def test_gnu_tar_of_a_tree_normalizes_to_exactly_what_generate_writes(tree: Path) -> None:
    gnu = gnu_tar("-C", tree, "--sort=name", "--numeric-owner", "--xattrs", "-cf", "-", ".")
    out, stats = normalize(gnu)
    expected, generated = generate(tree)
    assert out == expected
    assert stats == generated


def test_gnu_format_tar_normalizes_like_generate(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    (root / "d" / ("x" * 150)).write_bytes(FILE)
    os.symlink("t" * 150, root / "d" / "link")
    os.link(root / "d" / ("x" * 150), root / "hard")
    for path in (root / "d" / ("x" * 150), root / "d", root):
        os.utime(path, (MTIME, MTIME))
    os.utime(root / "d" / "link", (MTIME, MTIME), follow_symlinks=False)
    gnu = gnu_tar("-C", root, "--sort=name", "--numeric-owner", "--format=gnu", "-cf", "-", ".")
    assert normalize(gnu)[0] == generate(root)[0]


def test_normalizing_is_idempotent(tree: Path) -> None:
    generated, _ = generate(tree)
    assert normalize(generated)[0] == generated
    once, _ = normalize(sample_tar())
    assert normalize(once)[0] == once


def test_names_are_made_relative_and_clean() -> None:
    data = tar_of(
        (info("./", tarfile.DIRTYPE), b""),
        (info(".", tarfile.DIRTYPE), b""),
        (info("/", tarfile.DIRTYPE), b""),
        (info("./a", tarfile.DIRTYPE), b""),
        (info("/b"), b"b"),
        (info("c//d"), b"d"),
        (info("./e/./f/"), b"f"),
        (info("//abs/./x/", tarfile.DIRTYPE), b""),
    )
    out, stats = normalize(data)
    assert names(out) == [b"a/", b"b", b"c/d", b"e/f", b"abs/x/"]
    assert stats.entries == 5


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [("../x", b"x"), ("a/../../x", b"x"), ("/../etc/passwd", b"etc/passwd"), ("a/../b", b"b")],
)
def test_dotdot_stops_at_the_root(name: str, cleaned: bytes) -> None:
    # as Docker's import (applied chrooted) and containerd's applier read such names
    data = tar_of((info("ok"), b""), (info(name), b"x"))
    assert names(normalize(data)[0]) == [b"ok", cleaned]


@pytest.mark.parametrize("name", ["a/..", "..", "", "./", "/"])
def test_members_naming_the_root_are_dropped(name: str) -> None:
    data = tar_of((info(name, tarfile.SYMTYPE, linkname="/etc"), b""), (info("ok"), b""))
    assert names(normalize(data)[0]) == [b"ok"]


def test_worker_thread_stops_when_the_archive_is_abandoned() -> None:
    before = threading.active_count()
    big = os.urandom(3 << 20)  # past the first MiB, hashing moves to a worker thread
    data = tar_of((info("big"), big), (info("link", tarfile.LNKTYPE, linkname="missing"), b""))
    with pytest.raises(FormatError):
        normalize(data)
    assert threading.active_count() == before


def test_output_errors_surface() -> None:
    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    data = tar_of((info("big"), os.urandom(3 << 20)), (info("small"), b"x"))
    with pytest.raises(OSError, match="No space left"):
        normalize_tar(io.BytesIO(data), Full(), source="in.tar")


def test_message_stays_on_one_line() -> None:
    data = tar_of((info("evil\nname", tarfile.LNKTYPE, linkname="x"), b""))
    with pytest.raises(FormatError) as err:
        normalize(data)
    assert "\n" not in str(err.value) and "evil\\nname" in str(err.value)


def test_hardlinks() -> None:
    data = tar_of(
        (info("./f"), b"data"),
        (info("/l1", tarfile.LNKTYPE, linkname="/f"), b""),
        (info("l2", tarfile.LNKTYPE, linkname="./f"), b""),
        (info("s", tarfile.SYMTYPE, linkname="f"), b""),
        (info("l3", tarfile.LNKTYPE, linkname="s"), b""),
    )
    found = {m.name: m for m in TarReader(io.BytesIO(normalize(data)[0]), source="out")}
    assert found[b"l1"].linkname == b"f" and found[b"l2"].linkname == b"f"
    assert found[b"l3"].linkname == b"s"


@pytest.mark.parametrize(
    ("target", "error", "reason"),
    [
        ("../etc/passwd", FormatError, "is not an earlier file of this layer"),
        ("a/../../x", FormatError, "is not an earlier file of this layer"),
        ("/etc/passwd", FormatError, "is not an earlier file of this layer"),
        ("later", FormatError, "is not an earlier file of this layer"),
        ("dir", FormatError, "is not an earlier file of this layer"),
        ("", FormatError, "is not an earlier file of this layer"),
    ],
)
def test_bad_hardlinks(target: str, error: type[Exception], reason: str) -> None:
    data = tar_of(
        (info("dir", tarfile.DIRTYPE), b""),
        (info("link", tarfile.LNKTYPE, linkname=target), b""),
        (info("later"), b"x"),
    )
    with pytest.raises(error, match=rf"^in\.tar: member link: hardlink target .*{reason}$"):
        normalize(data)


def test_hardlink_to_a_file_later_replaced_by_a_directory() -> None:
    data = tar_of(
        (info("x"), b"x"),
        (info("x", tarfile.DIRTYPE), b""),
        (info("link", tarfile.LNKTYPE, linkname="x"), b""),
    )
    with pytest.raises(FormatError, match="not an earlier file"):
        normalize(data)


def test_empty_symlinks() -> None:
    with pytest.raises(FormatError, match=r"^in\.tar: member s: symlink with an empty target$"):
        normalize(tar_of((info("s", tarfile.SYMTYPE, linkname=""), b"")))


def test_unsupported_member_types(tmp_path: Path) -> None:
    with pytest.raises(
        FormatError, match=r"^in\.tar: member v: unsupported tar member \(type 'V'\)"
    ):
        normalize(tar_of((info("v", b"V"), b""), fmt=tarfile.GNU_FORMAT))
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(10 << 20)
        f.write(b"data at the start")
    gnu = gnu_tar("-C", tmp_path, "--sparse", "-cf", "-", "sparse")
    with pytest.raises(FormatError, match=r"sparse file"):
        normalize(gnu)
    posix = gnu_tar("-C", tmp_path, "--sparse", "--format=posix", "-cf", "-", "sparse")
    with pytest.raises(FormatError, match=r"sparse file"):
        normalize(posix)


def test_whiteouts_pass_through() -> None:
    data = tar_of(
        (info("dir", tarfile.DIRTYPE), b""),
        (info("dir/.wh..wh..opq"), b""),
        (info(".wh.removed"), b""),
    )
    assert names(normalize(data)[0]) == [b"dir/", b"dir/.wh..wh..opq", b".wh.removed"]


def test_metadata_is_canonical() -> None:
    data = tar_of(
        (
            info(
                "f",
                uid=42,
                gid=43,
                uname="someone",
                gname="group",
                mode=0o104755,
                pax_headers={
                    "mtime": "1600000000.987",
                    "atime": "1",
                    "comment": "dropped",
                    "SCHILY.xattr.user.binary": BINARY_XATTR.decode("utf-8", "surrogateescape"),
                    "SCHILY.xattr.trusted.overlay.opaque": "y",
                    "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0",
                },
            ),
            b"x",
        ),
        (info("old", mtime=-5.5), b""),
    )
    (f, old) = members(normalize(data)[0])
    assert (f.uid, f.gid, f.uname, f.gname, f.mode, f.mtime) == (42, 43, "", "", 0o4755, MTIME)
    assert list(f.pax_headers) == ["SCHILY.xattr.user.binary"]
    assert f.pax_headers["SCHILY.xattr.user.binary"].encode("utf-8", "surrogateescape") == (
        BINARY_XATTR
    )
    assert old.mtime == -6


def test_global_headers_and_gnu_long_names() -> None:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"x": "y"}
    ) as tf:
        tf.addfile(info("f"), io.BytesIO(b""))
    assert names(normalize(out.getvalue())[0]) == [b"f"]
    long = "d" * 120 + "/" + "f" * 150
    gnu = tar_of(
        (info(long), FILE),
        (info("s", tarfile.SYMTYPE, linkname="t" * 200), b""),
        (info("big", uid=3_000_000), b""),
        fmt=tarfile.GNU_FORMAT,
    )
    found = members(normalize(gnu)[0])
    assert [m.name for m in found] == [long, "s", "big"]
    assert found[1].linkname == "t" * 200
    assert found[2].uid == 3_000_000


def test_moby_ustar_gnu_conflict_fixture_is_read_like_go_and_gnu_tar() -> None:
    # Not a broken tar: Docker's TestUntarUstarGnuConflict checks a reader finds the long name
    # (ustar magic with a GNU version field, prefix in use, base-256 ids). GNU tar reads it too.
    fixture = CONFORMANCE / "tar-fixtures" / "moby-go-archive-broken.tar"
    data = fixture.read_bytes()
    out, stats = normalize(data, source="broken.tar")
    found = {m.name: m for m in members(out)}
    long = (
        "root/.cpanm/work/1395823785.24209/Plack-1.0030/blib/man3/"
        "Plack::Middleware::LighttpdScriptNameFix.3pm"
    )
    assert found[long].size == 6149
    assert found["root/.cpanm/work/1395823785.24209/File-Find-Rule-0.33/META.yml"].uid == (
        831580115
    )
    assert stats.entries == len(gnu_tar("-tf", "-", input=data).splitlines())


@pytest.mark.parametrize(
    ("cut", "where"),
    # sample_tar(): etc/ header 0; etc/passwd header 512, data 1024-7168; etc/motd PAX
    # header 7168, PAX data 7680, header 8192, data 8704-9216; end marker 9216-10240.
    [
        (512 + 100, "inside a header at offset 512"),
        (1024 + 100, "inside the data of member etc/passwd"),
        (7168 + 100, "inside a header"),
        (7680 + 100, "inside a header"),
        (8192, "inside a header at offset 8192"),
        (8704 + 1, "inside the data of member etc/motd"),
    ],
)
def test_truncated_tar(cut: int, where: str) -> None:
    data = sample_tar()
    assert len(data) > cut
    with pytest.raises(
        FormatError, match=rf"^in\.tar: truncated tar: unexpected end of data {where}"
    ):
        normalize(data[:cut])


def test_a_tar_may_end_without_its_end_marker() -> None:
    data = sample_tar()
    complete, _ = normalize(data)
    # Cut after the last member's padded data: readers (Go, GNU tar) accept this.
    assert normalize(data[:9216])[0] == complete


def test_empty_tar_is_valid() -> None:
    for empty in (bytes(1024), bytes(512), bytes(10240)):
        out, stats = normalize(empty)
        assert out == bytes(1024) and stats.entries == 0
    with pytest.raises(FormatError, match=r"^in\.tar: empty input, not a tar archive$"):
        normalize(b"")


def test_lone_zero_block_inside_the_archive() -> None:
    one = tar_of((info("a"), b"x"))
    two = tar_of((info("b"), b"y"))
    with pytest.raises(FormatError, match="lone zero block"):
        normalize(one[:1024] + bytes(512) + two)


def test_corrupt_headers() -> None:
    data = bytearray(sample_tar())
    data[512 + 10] ^= 0x20  # a name byte of the second member's header
    with pytest.raises(
        FormatError, match=r"^in\.tar: invalid tar header at offset 512: header checksum mismatch$"
    ):
        normalize(bytes(data))
    with pytest.raises(FormatError, match=r"^in\.tar: not a tar archive"):
        normalize(os.urandom(4096))
    with pytest.raises(FormatError, match=r"^in\.tar: not a tar archive"):
        normalize(b"{}\n")


def test_oversized_pax_header() -> None:
    data = tar_of((info("f", pax_headers={"comment": "x" * (1 << 20)}), b""))
    with pytest.raises(TooLarge, match=r"^in\.tar: PAX header over 1048576 bytes$"):
        normalize(data)


def test_clean_name() -> None:
    assert clean_name(b"./a//b/./c/") == b"a/b/c"
    assert clean_name(b"/") == b""
    assert clean_name(b"a/../b") == b"b" and clean_name(b"../../x/..") == b""
    assert clean_name(b"..a/b..") == b"..a/b.."
