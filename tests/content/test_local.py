"""What only the local content store promises: its layout on disk, modes, and ingest files."""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import DigestMismatch, InvalidArgument, StoreError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalContentStore(root)
    for d in (root, root / "blobs", root / "blobs" / "sha256", root / "ingest"):
        assert d.is_dir()
        assert mode(d) == 0o700, d
    digest = store.put_bytes(b"layout")
    path = root / "blobs" / "sha256" / digest.hex
    assert store.path(digest) == path
    assert mode(path) == 0o444
    sha512 = store.put_bytes(b"layout", expected=Digest.of(b"layout", "sha512"))
    assert store.path(sha512) == root / "blobs" / "sha512" / sha512.hex
    assert mode(root / "blobs" / "sha512") == 0o700


def test_existing_root_is_reused(tmp_path: Path) -> None:
    digest = LocalContentStore(tmp_path).put_bytes(b"kept")
    assert LocalContentStore(tmp_path).read_bytes(digest, limit=10) == b"kept"


def test_ingest_directory_files(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    ref = "../../a ref/with\nodd bytes"
    expected = Digest.of(b"abc")
    with store.writer(ref, expected=expected, total=3) as w:
        w.write(b"ab")
        dirpath = tmp_path / "ingest" / hashlib.sha256(ref.encode()).hexdigest()
        assert sorted(p.name for p in dirpath.iterdir()) == [
            "data",
            "expected",
            "lock",
            "ref",
            "started",
            "total",
        ]
    assert (dirpath / "ref").read_text() == ref
    assert (dirpath / "expected").read_text() == str(expected)
    assert (dirpath / "data").read_bytes() == b"ab"
    assert mode(dirpath) == 0o700
    with store.writer(ref) as w:
        w.write(b"c")
        assert w.commit() == expected
    assert not dirpath.exists()


def test_resume_with_other_expectations_starts_over(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    with store.writer("r", expected=Digest.of(b"first")) as w:
        w.write(b"fir")
    with store.writer("r", expected=Digest.of(b"second")) as w:
        assert w.offset == 0
        w.write(b"second")
        assert w.commit() == Digest.of(b"second")
    with store.writer("s", total=10) as w:
        w.write(b"12345")
    with store.writer("s", total=4) as w:
        assert w.offset == 0


def test_commit_with_other_algorithm_rehashes(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    data = b"x" * 5000
    with store.writer("r") as w:
        w.write(data)
        assert w.commit(expected=Digest.of(data, "sha512")) == Digest.of(data, "sha512")
    with store.writer("r") as w:
        w.write(data)
        with pytest.raises(DigestMismatch):
            w.commit(expected=Digest.of(b"y", "sha512"))


def test_walk_skips_strays(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    digest = store.put_bytes(b"real")
    (tmp_path / "blobs" / "sha256" / "not-a-digest").write_bytes(b"")
    (tmp_path / "blobs" / "sha256" / ("ab" * 32)).mkdir()
    (tmp_path / "blobs" / "blake3").mkdir()
    assert [b.digest for b in store.walk()] == [digest]


def test_root_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StoreError, match="cannot create"):
        LocalContentStore(tmp_path / "file" / "root")


def test_closed_writer_refuses_writes(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    w = store.writer("r")
    w.close()
    with pytest.raises(StoreError, match="ingest r: writer is closed"):
        w.write(b"x")
    with pytest.raises(StoreError, match="writer is closed"):
        w.commit()
    w.abort()  # a no-op once closed


def test_bad_refs_and_totals(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    with pytest.raises(InvalidArgument):
        store.writer("")
    with pytest.raises(InvalidArgument):
        store.writer("r", total=-1)


def test_ingest_without_ref_discards_on_failure(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: object) -> int:
            raise OSError("stream broke")

    with pytest.raises(OSError, match="stream broke"):
        store.ingest(io.BufferedReader(Broken()))
    assert store.ingests() == []


def test_writer_works_as_an_output_file(tmp_path: Path) -> None:
    import tarfile

    store = LocalContentStore(tmp_path)
    with store.writer("tar") as w:
        assert w.writable() and not w.closed
        with tarfile.open(fileobj=w, mode="w|") as tar:  # type: ignore[call-overload]
            info = tarfile.TarInfo("hello")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"world"))
        w.flush()
        assert (
            w.tell() == w.offset == (tmp_path / "ingest").glob("*/data").__next__().stat().st_size
        )
        digest = w.commit()
    assert w.closed and not w.writable()
    with store.open(digest) as f, tarfile.open(fileobj=f) as tar:
        assert tar.getnames() == ["hello"]
