"""Conformance suite for `strata.content.ContentStore`: every implementation passes all of it.

A new implementation plugs in by adding an `Implementation` to `IMPLEMENTATIONS`: how to make a
store at a root, and the two things no store API can do on purpose (age an ingest, corrupt a blob).
Concurrency tests use real processes (fork), since the locks under test are per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from strata.content import ContentStore
from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidDigest,
    Locked,
    SizeMismatch,
    TooLarge,
)

MiB = 1 << 20
FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class Implementation:
    make: Callable[[Path], ContentStore]
    age_ingest: Callable[[ContentStore, str, float], None]
    corrupt: Callable[[ContentStore, Digest], None]


def _local_age(store: ContentStore, ref: str, seconds: float) -> None:
    assert isinstance(store, LocalContentStore)
    then = time.time() - seconds
    dirpath = store._ingest_dir(ref)
    for path in (dirpath / "data", dirpath):
        os.utime(path, (then, then))


def _local_corrupt(store: ContentStore, digest: Digest) -> None:
    path = store.path(digest)
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.write(b"X")


IMPLEMENTATIONS = [
    pytest.param(Implementation(LocalContentStore, _local_age, _local_corrupt), id="local"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Implementation:
    result: Implementation = request.param
    return result


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(impl: Implementation, root: Path) -> ContentStore:
    return impl.make(root)


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> Digest:
    return Digest.of(data)


class Unseekable(io.RawIOBase):
    """A pipe-like stream: read only, no seek."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._inner.readinto(b)


def _run(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    proc = FORK.Process(target=target, args=args)
    proc.start()
    return proc


def _join(proc: multiprocessing.process.BaseProcess) -> int | None:
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return proc.exitcode


# --- write and read -------------------------------------------------------------------------


def test_write_read(store: ContentStore) -> None:
    data = blob(3 * MiB + 17)
    with store.writer("ref-1") as w:
        assert w.offset == 0
        for i in range(0, len(data), 100_000):
            assert w.write(data[i : i + 100_000]) == len(data[i : i + 100_000])
        assert w.offset == len(data)
        digest = w.commit()
    assert digest == sha(data)
    assert store.exists(digest)
    with store.open(digest) as f:
        assert f.read() == data
    assert store.read_bytes(digest, limit=len(data)) == data
    assert store.path(digest).read_bytes() == data
    assert store.ingests() == []


def test_exists_and_info(store: ContentStore) -> None:
    data = b"hello, content"
    missing = sha(b"nothing")
    assert not store.exists(missing)
    digest = store.put_bytes(data)
    assert store.exists(digest)
    info = store.info(digest)
    assert (info.digest, info.size) == (digest, len(data))
    assert info.mtime > 0
    for call in (store.info, store.path, store.open, store.verify):
        with pytest.raises(BlobNotFound, match=str(missing)):
            call(missing)
    with pytest.raises(BlobNotFound, match=str(missing)):
        store.read_bytes(missing, limit=10)


def test_put_bytes(store: ContentStore) -> None:
    data = b'{"schemaVersion": 2}'
    digest = store.put_bytes(data)
    assert digest == sha(data)
    assert store.put_bytes(data) == digest
    assert store.put_bytes(data, expected=digest) == digest
    assert store.read_bytes(digest, limit=100) == data
    assert [b.digest for b in store.walk()] == [digest]


def test_put_bytes_wrong_digest(store: ContentStore) -> None:
    wrong = sha(b"other")
    with pytest.raises(DigestMismatch, match=str(wrong)):
        store.put_bytes(b"data", expected=wrong)
    assert list(store.walk()) == []
    assert store.ingests() == []


def test_empty_blob(store: ContentStore) -> None:
    digest = store.put_bytes(b"")
    assert digest == sha(b"")
    assert store.read_bytes(digest, limit=0) == b""


def test_sha512_blob(store: ContentStore) -> None:
    data = blob(1000)
    digest = Digest.of(data, "sha512")
    assert store.put_bytes(data, expected=digest) == digest
    assert store.exists(digest)
    store.verify(digest)
    assert digest in {b.digest for b in store.walk()}
    assert store.ingest(io.BytesIO(data), expected=digest) == digest


# --- ingest with expectations ---------------------------------------------------------------


def test_ingest_expected_ok(store: ContentStore) -> None:
    data = blob(2 * MiB + 5)
    digest = store.ingest(io.BytesIO(data), expected=sha(data), size=len(data))
    assert digest == sha(data)
    assert store.info(digest).size == len(data)
    assert store.ingests() == []


def test_ingest_without_expectations(store: ContentStore) -> None:
    data = blob(5000)
    assert store.ingest(io.BytesIO(data)) == sha(data)


def test_ingest_wrong_digest_leaves_nothing(store: ContentStore) -> None:
    data = blob(MiB + 1)
    wrong = sha(b"something else")
    with pytest.raises(DigestMismatch, match=str(wrong)):
        store.ingest(io.BytesIO(data), expected=wrong, size=len(data))
    assert list(store.walk()) == []
    assert not store.exists(sha(data))
    assert store.ingests() == []


@pytest.mark.parametrize("delta", [-1, 1])
def test_ingest_wrong_size(store: ContentStore, delta: int) -> None:
    data = blob(MiB + 3)
    with pytest.raises(SizeMismatch, match=str(sha(data))):
        store.ingest(io.BytesIO(data), expected=sha(data), size=len(data) + delta)
    assert list(store.walk()) == []
    assert store.ingests() == []


def test_ingest_of_existing_blob_still_checks_the_stream(store: ContentStore) -> None:
    data = blob(4096)
    digest = store.put_bytes(data)
    assert store.ingest(io.BytesIO(data), expected=digest, size=len(data)) == digest
    with pytest.raises(DigestMismatch, match=str(digest)):
        store.ingest(io.BytesIO(b"x" * len(data)), expected=digest)
    with pytest.raises(SizeMismatch, match=str(digest)):
        store.ingest(io.BytesIO(data), expected=digest, size=len(data) + 1)
    store.verify(digest)


def test_commit_verifies(store: ContentStore) -> None:
    data = blob(1000)
    with store.writer("r") as w:
        w.write(data)
        with pytest.raises(DigestMismatch, match=str(sha(b"x"))):
            w.commit(expected=sha(b"x"))
    assert store.ingests() == []
    with store.writer("r") as w:
        w.write(data)
        with pytest.raises(SizeMismatch):
            w.commit(size=999)
    assert store.ingests() == []
    assert list(store.walk()) == []


def test_write_past_total(store: ContentStore) -> None:
    with store.writer("r", total=3) as w, pytest.raises(SizeMismatch, match="3 bytes"):
        w.write(b"abcd")
    assert store.ingests() == []


def test_commit_of_present_blob_succeeds(store: ContentStore) -> None:
    data = blob(3000)
    digest = store.put_bytes(data)
    with store.writer("again", expected=digest) as w:
        w.write(data)
        assert w.commit() == digest
    assert store.ingests() == []
    assert [b.digest for b in store.walk()] == [digest]


# --- resume and abort -----------------------------------------------------------------------


def test_resume_after_close(store: ContentStore) -> None:
    data = blob(3 * MiB + 11)
    part = 2 * MiB + 7
    with store.writer("resume-me", expected=sha(data), total=len(data)) as w:
        w.write(data[:part])
    # Left without commit: a writer that stopped. The data is still there.
    (info,) = store.ingests()
    assert (info.ref, info.offset, info.expected) == ("resume-me", part, sha(data))
    assert info.started <= info.updated + 1
    with store.writer("resume-me", expected=sha(data), total=len(data)) as w:
        assert w.offset == part
        w.write(data[part:])
        assert w.commit() == sha(data)
    assert store.read_bytes(sha(data), limit=len(data)) == data
    assert store.ingests() == []


def test_resume_keeps_recorded_expectations(store: ContentStore) -> None:
    data = blob(5000)
    with store.writer("r", expected=sha(data)) as w:
        w.write(data[:100])
    with store.writer("r") as w:
        assert w.offset == 100
        w.write(b"not the rest")
        with pytest.raises(DigestMismatch, match=str(sha(data))):
            w.commit()


def test_resume_after_exception_in_with_block(store: ContentStore) -> None:
    data = blob(10_000)
    with pytest.raises(RuntimeError), store.writer("crash") as w:
        w.write(data[:4000])
        raise RuntimeError("interrupted")
    with store.writer("crash") as w:
        assert w.offset == 4000
        w.write(data[4000:])
        assert w.commit() == sha(data)


def _write_and_die(store_factory: Callable[[Path], ContentStore], root: Path, data: bytes) -> None:
    store = store_factory(root)
    w = store.writer("killed")
    for i in range(0, len(data), 256 * 1024):
        w.write(data[i : i + 256 * 1024])
    os.kill(os.getpid(), signal.SIGKILL)


def test_resume_after_killed_writer(impl: Implementation, store: ContentStore, root: Path) -> None:
    data = blob(MiB)
    proc = _run(_write_and_die, impl.make, root, data)
    assert _join(proc) == -signal.SIGKILL
    with store.writer("killed") as w:
        assert w.offset == len(data)
        assert w.commit(expected=sha(data)) == sha(data)


def test_ingest_resumes_with_ref(store: ContentStore) -> None:
    data = blob(2 * MiB + 3)
    with store.writer("pull-layer") as w:
        w.write(data[:MiB])
    assert store.ingest(io.BytesIO(data), expected=sha(data), ref="pull-layer") == sha(data)
    other = blob(MiB + 5, seed=1)
    with store.writer("pipe") as w:
        w.write(other[:1000])
    stream: BinaryIO = io.BufferedReader(Unseekable(other))
    assert store.ingest(stream, expected=sha(other), size=len(other), ref="pipe") == sha(other)
    assert store.ingests() == []


def test_ingest_of_present_blob_drops_its_partial_ingest(store: ContentStore) -> None:
    data = blob(5000)
    with store.writer("late") as w:
        w.write(data[:10])
    store.put_bytes(data)
    assert store.ingest(io.BytesIO(data), expected=sha(data), ref="late") == sha(data)
    assert store.ingests() == []


def test_ingest_stream_shorter_than_resumed_data(store: ContentStore) -> None:
    data = blob(5000)
    with store.writer("short") as w:
        w.write(data)
    stream: BinaryIO = io.BufferedReader(Unseekable(data[:100]))
    with pytest.raises(SizeMismatch, match="ingest short"):
        store.ingest(stream, ref="short")
    assert store.ingests() == []


def test_abort(store: ContentStore) -> None:
    data = blob(1000)
    with store.writer("gone") as w:
        w.write(data)
        w.abort()
    assert store.ingests() == []
    assert not store.exists(sha(data))
    with store.writer("later") as w:
        w.write(data)
    assert [i.ref for i in store.ingests()] == ["later"]
    store.abort_ingest("later")
    assert store.ingests() == []
    store.abort_ingest("never-existed")
    with store.writer("later") as w:
        assert w.offset == 0


def test_refs_cannot_escape(store: ContentStore, root: Path, tmp_path: Path) -> None:
    for ref in ("../../escape", "/etc/passwd", "a/b/../../..", "nul\0byte", "..", "é" * 300):
        with store.writer(ref) as w:
            w.write(b"x")
        assert ref in {i.ref for i in store.ingests()}
        store.abort_ingest(ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


# --- concurrency ----------------------------------------------------------------------------


def _hold_ref(
    store_factory: Callable[[Path], ContentStore],
    root: Path,
    ref: str,
    holding: Event,
    release: Event,
) -> None:
    store = store_factory(root)
    with store.writer(ref) as w:
        w.write(b"12345")
        holding.set()
        release.wait(30)


def test_locked_ref_across_processes(impl: Implementation, store: ContentStore, root: Path) -> None:
    holding, release = FORK.Event(), FORK.Event()
    proc = _run(_hold_ref, impl.make, root, "busy-ref", holding, release)
    try:
        assert holding.wait(30)
        with pytest.raises(Locked, match="ingest busy-ref is being written by another process"):
            store.writer("busy-ref")
        with pytest.raises(Locked):
            store.abort_ingest("busy-ref")
        impl.age_ingest(store, "busy-ref", 7200)
        assert store.clean_ingests(3600) == 0
    finally:
        release.set()
        assert _join(proc) == 0
    with store.writer("busy-ref") as w:
        assert w.offset == 5


def test_locked_ref_in_one_process(store: ContentStore) -> None:
    with store.writer("mine") as w:
        w.write(b"a")
        with pytest.raises(Locked):
            store.writer("mine")
    with store.writer("mine") as w:
        assert w.offset == 1


def _ingest_same(
    store_factory: Callable[[Path], ContentStore],
    root: Path,
    data: bytes,
    barrier: Barrier,
    n: int,
) -> None:
    store = store_factory(root)
    barrier.wait(30)
    for _ in range(n):
        assert store.ingest(io.BytesIO(data), size=len(data)) == Digest.of(data)
        store.delete(Digest.of(data))
        assert store.ingest(io.BytesIO(data), expected=Digest.of(data)) == Digest.of(data)


def test_concurrent_writers_of_one_blob(
    impl: Implementation, store: ContentStore, root: Path
) -> None:
    data = blob(2 * MiB + 99)
    barrier = FORK.Barrier(4)
    procs = [_run(_ingest_same, impl.make, root, data, barrier, 5) for _ in range(4)]
    assert [_join(p) for p in procs] == [0, 0, 0, 0]
    assert [b.digest for b in store.walk()] == [sha(data)]
    store.verify(sha(data))
    assert store.ingests() == []


def _race_on_one_ref(
    store_factory: Callable[[Path], ContentStore], root: Path, data: bytes, seed: int
) -> None:
    rng = random.Random(seed)
    store = store_factory(root)
    for _ in range(60):
        with contextlib.suppress(Locked), store.writer("shared", expected=Digest.of(data)) as w:
            rest = data[w.offset :]
            cut = rng.choice([0, len(rest), rng.randint(0, len(rest))])
            w.write(rest[:cut])
            if cut == len(rest) and rng.random() < 0.5:
                assert w.commit() == Digest.of(data)
            elif rng.random() < 0.3:
                w.abort()
        if rng.random() < 0.3:
            store.clean_ingests(0)
        if rng.random() < 0.1:
            store.delete(Digest.of(data))


def test_writers_aborters_and_cleaners_racing_on_one_ref(
    impl: Implementation, store: ContentStore, root: Path
) -> None:
    data = blob(200_000)
    procs = [_run(_race_on_one_ref, impl.make, root, data, seed) for seed in range(4)]
    assert [_join(p) for p in procs] == [0, 0, 0, 0]
    for info in store.ingests():
        with store.writer(info.ref) as w:
            assert w.offset == info.offset
            w.write(data[w.offset :])
            assert w.commit() == sha(data)
    # The last thing done may have been a delete; a fresh ingest must work on what is left.
    assert store.ingest(io.BytesIO(data), expected=sha(data)) == sha(data)
    store.verify(sha(data))
    assert [b.digest for b in store.walk()] == [sha(data)]
    assert store.ingests() == []


# --- integrity, listing, cleaning -----------------------------------------------------------


def test_verify_detects_corruption(impl: Implementation, store: ContentStore) -> None:
    digest = store.put_bytes(blob(4000))
    store.verify(digest)
    impl.corrupt(store, digest)
    with pytest.raises(DigestMismatch, match=f"blob {digest}: corrupt"):
        store.verify(digest)


def test_delete(store: ContentStore) -> None:
    digest = store.put_bytes(b"delete me")
    assert store.delete(digest) is True
    assert not store.exists(digest)
    assert store.delete(digest) is False
    assert list(store.walk()) == []


def test_walk(store: ContentStore) -> None:
    datas = [blob(n, seed=n) for n in (0, 10, 1000, MiB)]
    digests = {store.put_bytes(d): len(d) for d in datas}
    assert {b.digest: b.size for b in store.walk()} == digests


def test_clean_ingests_removes_only_old(impl: Implementation, store: ContentStore) -> None:
    for ref in ("old", "new"):
        with store.writer(ref) as w:
            w.write(ref.encode())
    impl.age_ingest(store, "old", 7200)
    assert store.clean_ingests(3600) == 1
    assert [i.ref for i in store.ingests()] == ["new"]
    assert store.clean_ingests(3600) == 0
    assert store.clean_ingests(0) == 1
    assert store.ingests() == []


def test_read_bytes_limit(store: ContentStore) -> None:
    digest = store.put_bytes(b"x" * 100)
    assert store.read_bytes(digest, limit=100) == b"x" * 100
    with pytest.raises(TooLarge, match=f"blob {digest}: 100 bytes, over the limit of 99"):
        store.read_bytes(digest, limit=99)


# --- hostile digests ------------------------------------------------------------------------

BAD_DIGESTS = [
    Digest("sha256", "../../x"),
    Digest("sha256", "../../" + "a" * 58),
    Digest("sha256", "AB" * 32),
    Digest("sha256", "ab" * 10),
    Digest("sha256", "ab" * 33),
    Digest("sha256", ""),
    Digest("sha512", "ab" * 32),
    Digest("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    Digest("../sha256", "ab" * 32),
    Digest("sha256", "a" * 63 + "/"),
]


@pytest.mark.parametrize("bad", BAD_DIGESTS, ids=str)
def test_invalid_digests_never_become_paths(
    store: ContentStore, bad: Digest, tmp_path: Path
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.exists(bad),
        lambda: store.info(bad),
        lambda: store.path(bad),
        lambda: store.open(bad),
        lambda: store.read_bytes(bad, limit=10),
        lambda: store.delete(bad),
        lambda: store.verify(bad),
        lambda: store.writer("r", expected=bad),
        lambda: store.put_bytes(b"x", expected=bad),
        lambda: store.ingest(io.BytesIO(b"x"), expected=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidDigest):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


@pytest.mark.parametrize("text", ["sha256:../../x", "sha256:" + "AB" * 32, "sha256:abc", "md5"])
def test_invalid_digest_strings(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)
