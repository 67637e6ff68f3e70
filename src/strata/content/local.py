"""The content store on local disk: ``blobs/<algorithm>/<hex>`` and ``ingest/<hashed ref>/``.

Blob files are mode 0444 and the store's directories 0700. How an ingest is laid out, locked and
resumed lives in `strata.content.ingest`; this module is the store around it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from strata.content import BlobInfo, IngestInfo
from strata.content.ingest import (
    CHUNK_SIZE,
    DATA,
    EXPECTED,
    REF,
    STARTED,
    ContentWriter,
    acquire,
    checked_digest,
    fsync_dir,
    hash_file,
    make_dir,
    os_error,
    read_text,
    remove_ingest,
)
from strata.digest import SHA256, SHA512, Digest
from strata.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidArgument,
    InvalidDigest,
    Locked,
    SizeMismatch,
    TooLarge,
)
from strata.store.space import is_no_space, no_space

__all__ = ["CHUNK_SIZE", "ContentWriter", "LocalContentStore"]


class LocalContentStore:
    """Blobs in ``root/blobs/<algorithm>/<hex>``, writes in progress in ``root/ingest/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._ingest = self.root / "ingest"
        try:
            for path in (self.root, self._blobs, self._blobs / SHA256, self._ingest):
                make_dir(path)
        except OSError as err:
            where = f"content store {self.root}: cannot create {err.filename}"
            raise os_error(where, err) from None

    def _blob_path(self, digest: Digest) -> Path:
        digest = checked_digest(digest)
        return self._blobs / digest.algorithm / digest.encoded

    def _ingest_dir(self, ref: str) -> Path:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument(f"invalid ingest ref {ref!r}: must be a non-empty string")
        return self._ingest / hashlib.sha256(ref.encode("utf-8", "surrogatepass")).hexdigest()

    def exists(self, digest: Digest) -> bool:
        """True if the blob is in the store."""
        return self._blob_path(digest).is_file()

    def info(self, digest: Digest) -> BlobInfo:
        """Size and time of a blob; `BlobNotFound` if absent."""
        path = self._blob_path(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest}: not found") from None
        except OSError as err:
            raise os_error(f"blob {digest}", err) from None
        return BlobInfo(checked_digest(digest), st.st_size, st.st_mtime)

    def path(self, digest: Digest) -> Path:
        """The file holding an existing blob; `BlobNotFound` if absent."""
        path = self._blob_path(digest)
        if not path.is_file():
            raise BlobNotFound(f"blob {digest}: not found")
        return path

    def open(self, digest: Digest) -> BinaryIO:
        """Open a blob for reading; `BlobNotFound` if absent."""
        path = self._blob_path(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest}: not found") from None
        except OSError as err:
            raise os_error(f"blob {digest}", err) from None

    def read_bytes(self, digest: Digest, *, limit: int) -> bytes:
        """The whole blob, which must be at most ``limit`` bytes (`TooLarge` otherwise)."""
        with self.open(digest) as f:
            try:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    raise TooLarge(f"blob {digest}: {size} bytes, over the limit of {limit}")
                data = f.read(limit + 1)
            except OSError as err:
                raise os_error(f"blob {digest}", err) from None
        if len(data) > limit:
            raise TooLarge(f"blob {digest}: over the limit of {limit} bytes")
        return data

    def delete(self, digest: Digest) -> bool:
        """Remove a blob; False if it was not there."""
        path = self._blob_path(digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise os_error(f"blob {digest}: cannot delete", err) from None
        return True

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob; stray files with names that are not digests are skipped."""
        for algorithm in (SHA256, SHA512):
            try:
                entries = list(os.scandir(self._blobs / algorithm))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    digest = Digest.from_hex(entry.name, algorithm)
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except (InvalidDigest, FileNotFoundError):
                    continue
                yield BlobInfo(digest, st.st_size, st.st_mtime)

    def verify(self, digest: Digest) -> None:
        """Re-hash a blob; `DigestMismatch` if its bytes no longer match its digest."""
        path = self._blob_path(digest)
        digest = checked_digest(digest)
        try:
            actual, _ = hash_file(path, digest.algorithm)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest}: not found") from None
        except OSError as err:
            raise os_error(f"blob {digest}", err) from None
        if actual != digest:
            raise DigestMismatch(f"blob {digest}: corrupt, content hashes to {actual}")

    def writer(
        self,
        ref: str,
        *,
        expected: Digest | None = None,
        total: int | None = None,
        stall: float = 0.0,
        on_wait: Callable[[int], None] | None = None,
    ) -> ContentWriter:
        """Open the ingest ``ref``, resuming what is there.

        If another writer has it: `Locked` at once with ``stall`` 0, else wait for it until it
        has written nothing for ``stall`` seconds, telling ``on_wait`` its bytes so far. The caller
        continues writing from ``.offset``, or, if ``.present`` (the blob has been made
        meanwhile), aborts. An ingest recorded with a different expected digest or total than
        given is started over.
        """
        if expected is not None:
            expected = checked_digest(expected)
        if total is not None and total < 0:
            raise InvalidArgument(f"ingest {ref}: invalid total size {total}")
        try:
            dirpath = self._ingest_dir(ref)
            return ContentWriter(
                dirpath,
                ref,
                blobs=self._blobs,
                expected=expected,
                total=total,
                stall=stall,
                on_wait=on_wait,
            )
        except OSError as err:
            raise os_error(f"ingest {ref}: cannot open", err) from None

    def put_bytes(self, data: bytes, *, expected: Digest | None = None) -> Digest:
        """Store ``data`` (checked against ``expected`` if given); return its digest."""
        algorithm = checked_digest(expected).algorithm if expected is not None else SHA256
        digest = Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
        if expected is not None and digest != expected:
            raise DigestMismatch(f"blob {expected}: content hashes to {digest}")
        if self.exists(digest):
            return digest
        with self.writer(f"put-{uuid.uuid4().hex}", expected=digest, total=len(data)) as w:
            try:
                w.write(data)
                return w.commit()
            except BaseException:
                w.abort()
                raise

    def put_many(self, blobs: Sequence[tuple[bytes, Digest]], *, missing: bool = False) -> None:
        """Store several small blobs (``(data, digest)``, each checked) durably at once.

        One ingest directory, locked as any ingest, holds them all: each is written, then one
        ``syncfs`` (one fsync each where there is none) makes them durable, each is renamed
        into ``blobs/`` and one fsync of that directory makes the renames durable. A build's
        metadata steps store their configs and manifests this way (one step's two blobs each
        as `put_bytes` cost four fsyncs, each a flush of the disk's cache: ~2.5 ms here). A crash
        leaves at most the unlocked ingest, which gc and ``system check`` remove; a blob is
        never visible under its name before its bytes are durable.

        ``missing=True`` says the caller has just found these blobs absent, so they are not
        looked up again (a 1,000-step build would ask twice for each of 2,000 blobs); one that
        appears meanwhile is replaced by the same bytes, which readers cannot tell apart.
        """
        todo: dict[Digest, bytes] = {}
        for data, expected in blobs:
            digest = checked_digest(expected)
            actual = Digest(digest.algorithm, hashlib.new(digest.algorithm, data).hexdigest())
            if actual != digest:
                raise DigestMismatch(f"blob {digest}: content hashes to {actual}")
            if digest not in todo and (missing or not self.exists(digest)):
                todo[digest] = data
        if not todo:
            return
        ref = f"put-many-{uuid.uuid4().hex}"
        dirpath = self._ingest_dir(ref)
        try:
            lock = acquire(dirpath, ref, create=True)
        except OSError as err:
            raise os_error(f"ingest {ref}: cannot open", err) from None
        assert lock is not None  # create=True never gives None
        files: list[tuple[int, Path, Digest]] = []
        failure: OSError | None = None
        try:
            (dirpath / REF).write_bytes(ref.encode())
            (dirpath / STARTED).write_bytes(repr(time.time()).encode())
            for digest, data in todo.items():
                path = dirpath / f"{DATA}-{digest.algorithm}-{digest.encoded}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                files.append((fd, path, digest))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            if not _sync_filesystem(lock.fileno()):
                for fd, _, _ in files:
                    os.fsync(fd)
            dirs = set()
            for _, path, digest in files:
                target = self._blobs / digest.algorithm / digest.encoded
                make_dir(target.parent)
                os.rename(path, target)
                dirs.add(target.parent)
            for parent in dirs:
                fsync_dir(parent)
        except OSError as err:
            failure = err
        finally:
            # Closed and removed first, whatever happened: on a full disk this frees the space.
            for fd, _, _ in files:
                with contextlib.suppress(OSError):
                    os.close(fd)
            remove_ingest(dirpath, lock)
        if failure is not None:
            what = f"writing {len(todo)} blobs ({sum(len(d) for d in todo.values())} bytes)"
            if is_no_space(failure):
                raise no_space(what, failure)
            raise os_error(what, failure)

    def ingest(
        self,
        stream: BinaryIO,
        *,
        expected: Digest | None = None,
        size: int | None = None,
        ref: str | None = None,
    ) -> Digest:
        """Stream ``stream`` into the store in 1 MiB chunks, verifying ``expected`` and ``size``.

        With a ``ref`` whose ingest exists, the write resumes: the bytes already stored are
        skipped in ``stream`` (by seeking where it can). Without a ``ref`` a failed write is
        discarded, since nobody could resume it. If ``expected`` is already stored the stream is
        only verified.
        """
        if expected is not None:
            expected = checked_digest(expected)
            if self.exists(expected):
                self._check_stream(stream, expected, size)
                if ref is not None:
                    # A partial write of a blob that is now present is of no more use.
                    with contextlib.suppress(Locked):
                        self.abort_ingest(ref)
                return expected
        own_ref = ref is None
        with self.writer(ref or f"ingest-{uuid.uuid4().hex}", expected=expected, total=size) as w:
            try:
                if w.offset:
                    _skip(stream, w)
                while chunk := stream.read(CHUNK_SIZE):
                    w.write(chunk)
                return w.commit()
            except BaseException:
                if own_ref:
                    w.abort()
                raise

    def _check_stream(self, stream: BinaryIO, expected: Digest, size: int | None) -> None:
        hasher = hashlib.new(expected.algorithm)
        count = 0
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
            count += len(chunk)
            if size is not None and count > size:
                raise SizeMismatch(f"blob {expected}: more than the expected {size} bytes")
        if size is not None and count != size:
            raise SizeMismatch(f"blob {expected}: got {count} bytes, expected {size}")
        actual = Digest(expected.algorithm, hasher.hexdigest())
        if actual != expected:
            raise DigestMismatch(f"blob {expected}: content hashes to {actual}")

    def ingests(self) -> list[IngestInfo]:
        """The unfinished ingests (including ones being written right now)."""
        found = []
        try:
            entries = list(os.scandir(self._ingest))
        except OSError as err:
            raise os_error(f"content store {self.root}: cannot list ingests", err) from None
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                info = self._ingest_info(Path(entry.path))
                if info is not None:
                    found.append(info)
        return found

    def _ingest_info(self, dirpath: Path) -> IngestInfo | None:
        try:
            ref = read_text(dirpath / REF)
            if ref is None:
                return None
            started_text = read_text(dirpath / STARTED)
            expected_text = read_text(dirpath / EXPECTED)
            started = float(started_text) if started_text else os.stat(dirpath).st_mtime
            try:
                st = os.stat(dirpath / DATA)
                offset, updated = st.st_size, st.st_mtime
            except FileNotFoundError:
                offset, updated = 0, started
        except (OSError, ValueError):
            return None
        expected = None
        if expected_text is not None:
            with contextlib.suppress(InvalidDigest):
                expected = Digest.parse(expected_text)
        return IngestInfo(ref, offset, started, updated, expected)

    def abort_ingest(self, ref: str) -> None:
        """Discard the ingest ``ref`` if it exists; `Locked` if another process is writing it."""
        dirpath = self._ingest_dir(ref)
        try:
            lock = acquire(dirpath, ref, create=False)
            if lock is not None:
                remove_ingest(dirpath, lock)
        except OSError as err:
            raise os_error(f"ingest {ref}: cannot remove", err) from None

    def clean_ingests(self, older_than: float) -> int:
        """Discard ingests not written for ``older_than`` seconds and not in use; return a count."""
        now = time.time()
        removed = 0
        try:
            entries = [Path(e.path) for e in os.scandir(self._ingest) if e.is_dir()]
            for dirpath in entries:
                if now - _last_update(dirpath) < older_than:
                    continue
                try:
                    lock = acquire(dirpath, dirpath.name, create=False)
                except Locked:
                    continue
                if lock is None:
                    continue
                # Re-read under the lock: a writer may have added data since the first look.
                if now - _last_update(dirpath) < older_than:
                    lock.close()
                    continue
                remove_ingest(dirpath, lock)
                removed += 1
        except OSError as err:
            raise os_error(f"content store {self.root}: cannot clean ingests", err) from None
        return removed


_syncfs: Callable[[int], int] | None = None


def _sync_filesystem(fd: int) -> bool:
    """syncfs(2) the filesystem holding ``fd``: everything written to it is durable after one
    flush, where an fsync per file pays one each. False where there is no syncfs (not Linux):
    the caller fsyncs each file."""
    global _syncfs
    if _syncfs is None:
        try:
            function = ctypes.CDLL(None, use_errno=True).syncfs
            function.argtypes = [ctypes.c_int]
            _syncfs = function
        except (OSError, AttributeError):
            _syncfs = lambda _: -2  # noqa: E731
    result = _syncfs(fd)
    if result == -2:
        return False
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


def _last_update(dirpath: Path) -> float:
    try:
        return os.stat(dirpath / DATA).st_mtime
    except FileNotFoundError:
        try:
            return os.stat(dirpath).st_mtime
        except FileNotFoundError:
            return time.time()


def _skip(stream: BinaryIO, writer: ContentWriter) -> None:
    """Move ``stream`` past the bytes a resumed writer already has."""
    offset = writer.offset
    if stream.seekable():
        stream.seek(offset, os.SEEK_CUR)
        return
    left = offset
    while left:
        chunk = stream.read(min(left, CHUNK_SIZE))
        if not chunk:
            writer.abort()
            raise SizeMismatch(
                f"ingest {writer.ref}: stream ended {offset - left} bytes in, before the "
                f"{offset} bytes already written"
            )
        left -= len(chunk)
