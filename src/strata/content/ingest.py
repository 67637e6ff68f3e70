"""Ingests: the directories where blobs are written, locked, resumed and verified.

An ingest directory holds ``data`` (the bytes so far), ``ref`` (the ref text, since the directory
is named by the ref's sha256 so that no ref can escape), ``started``, and the optional
``expected`` and ``total``. A writer holds ``flock`` on ``lock`` for its whole life, which makes an
ingest exclusive per ref across processes and lets a crashed writer's data be resumed: the lock
dies with the process, the data stays.

A second writer of the same ref can wait for the first instead of failing (``stall`` > 0), as
containerd's ingest does: it polls the lock with a growing delay, reports the first writer's
progress, and gives up only when the first writer has added no byte for ``stall`` seconds. When
the first writer commits, the waiter finds the blob present (`ContentWriter.present`); when it
dies, its lock dies with it and the waiter resumes its data.

A write that finds the disk full (ENOSPC, EDQUOT) removes the ingest at once, before anything
else happens, so that the space it took is free again for the cleanup that follows (releasing a
lease needs a database write), and raises `NoSpace` naming the blob and, when its size is known,
how much more space it needed. Such an ingest is not worth keeping to resume: the disk is full.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from strata.digest import SHA256, Digest
from strata.errors import DigestMismatch, InvalidDigest, Locked, SizeMismatch, StoreError
from strata.store.space import is_no_space, no_space

__all__ = ["CHUNK_SIZE", "ContentWriter"]

CHUNK_SIZE: Final = 1 << 20
DIR_MODE: Final = 0o700
BLOB_MODE: Final = 0o444
FILE_MODE: Final = 0o600
LOCK_ATTEMPTS: Final = 50
DATA: Final = "data"
REF: Final = "ref"
STARTED: Final = "started"
EXPECTED: Final = "expected"
TOTAL: Final = "total"
LOCK: Final = "lock"
WAIT_FIRST: Final = 0.02
WAIT_MAX: Final = 0.5


WRITEBACK_CHUNK = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range: Callable[[int, int, int, int], int] | None = None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of ``fd`` to disk, without waiting for it.

    sync_file_range(2) is Linux-only and not in the os module; where it is missing this does
    nothing and commit's fsync simply does all the work.
    """
    global _sync_file_range
    if _sync_file_range is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            function = libc.sync_file_range
            function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            _sync_file_range = function
        except (OSError, AttributeError):
            _sync_file_range = lambda *_: 0  # noqa: E731
    _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def checked_digest(digest: Digest) -> Digest:
    """Re-validate ``digest`` (a Digest can be built unchecked) and require a storable algorithm."""
    parsed = Digest.parse(str(digest))
    if not parsed.storable:
        raise InvalidDigest(f"invalid digest {parsed}: {parsed.algorithm} blobs cannot be stored")
    return parsed


def os_error(what: str, err: OSError) -> StoreError:
    """A one-line `StoreError` for an OS failure while doing ``what``."""
    return StoreError(f"{what}: {err.strerror or err}")


def make_dir(path: Path) -> None:
    """Create ``path`` mode 0700 whatever the umask; an existing directory is left as it is."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    # An empty ingest directory may be removed by a cleaner at once; the caller then retries.
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, DIR_MODE)


def fsync_dir(path: Path) -> None:
    """Make a rename into ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path, algorithm: str) -> tuple[Digest, int]:
    """The digest and size of a file, read in 1 MiB chunks."""
    hasher = hashlib.new(algorithm)
    size = 0
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
            size += n
    return Digest(algorithm, hasher.hexdigest()), size


def read_text(path: Path) -> str | None:
    """A small metadata file's text, or None if it is absent."""
    try:
        return path.read_bytes().decode("utf-8", "surrogatepass")
    except FileNotFoundError:
        return None


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


def _data_size(dirpath: Path) -> int:
    try:
        return os.stat(dirpath / DATA).st_size
    except FileNotFoundError:
        return 0


def _wait_for_lock(
    fd: int, dirpath: Path, ref: str, stall: float, on_wait: Callable[[int], None] | None
) -> None:
    """Take ``flock`` on ``fd``, polling while another writer holds it and makes progress.

    Raises `Locked` at once with ``stall`` <= 0, else once the holder has written nothing for
    ``stall`` seconds. ``on_wait`` is told the holder's bytes so far each time they grow.
    """
    delay = WAIT_FIRST
    seen = -1
    last_progress = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if stall <= 0:
            raise Locked(f"ingest {ref} is being written by another process")
        size = _data_size(dirpath)
        now = time.monotonic()
        if size != seen:
            # Any change is progress; only growth is reported (the data file vanishes on commit).
            if on_wait is not None and size > seen:
                on_wait(size)
            seen, last_progress, delay = size, now, WAIT_FIRST
        elif now - last_progress >= stall:
            raise Locked(
                f"ingest {ref} is being written by another process, which has written nothing"
                f" for {stall:g}s"
            )
        time.sleep(delay)
        delay = min(delay * 2, WAIT_MAX)


def acquire(
    dirpath: Path,
    ref: str,
    *,
    create: bool,
    stall: float = 0.0,
    on_wait: Callable[[int], None] | None = None,
) -> io.FileIO | None:
    """Lock the ingest directory ``dirpath``; None if it does not exist and ``create`` is false.

    With ``stall`` > 0 a lock held by another writer is waited for (see `_wait_for_lock`). A holder
    that commits or aborts unlinks the lock file while still holding it, so after taking the lock
    we check that the file we locked is still the one at the path; if not, we retry.
    """
    for _ in range(LOCK_ATTEMPTS):
        if create:
            make_dir(dirpath)
        try:
            fd = os.open(dirpath / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except FileNotFoundError:
            if not create:
                return None
            continue
        lock = io.FileIO(fd, "r", closefd=True)
        try:
            _wait_for_lock(fd, dirpath, ref, stall, on_wait)
        except BaseException:
            lock.close()
            raise
        try:
            here = os.stat(dirpath / LOCK)
            mine = os.fstat(fd)
            if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                return lock
        except FileNotFoundError:
            pass
        lock.close()
        if not create and not dirpath.exists():
            return None
    raise Locked(f"ingest {ref} keeps being replaced by other processes")


def remove_ingest(dirpath: Path, lock: io.FileIO) -> None:
    """Remove a locked ingest directory, then release the lock.

    Everything but the lock goes first: nobody else can hold it, so nothing new appears. A process
    that creates a fresh ingest of the same ref after the lock is unlinked makes rmdir fail, and
    that is fine: the directory is theirs now.
    """
    try:
        with os.scandir(dirpath) as entries:
            names = [e.name for e in entries if e.name != LOCK]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dirpath / name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dirpath / LOCK)
        try:
            os.rmdir(dirpath)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise
    finally:
        lock.close()


class ContentWriter:
    """An open ingest; obtain one from a content store's ``writer``. Not thread-safe.

    ``dirpath`` is the ingest directory for ``ref``; committed blobs go to
    ``blobs/<algorithm>/<hex>``.
    """

    def __init__(
        self,
        dirpath: Path,
        ref: str,
        *,
        blobs: Path,
        expected: Digest | None,
        total: int | None,
        stall: float = 0.0,
        on_wait: Callable[[int], None] | None = None,
    ) -> None:
        self._blobs = blobs
        self._ref = ref
        self._dir = dirpath
        self._lock: io.FileIO | None = None
        self._file: io.BufferedRandom | None = None
        self._hasher = hashlib.sha256()
        self._synced = 0
        self._offset = 0
        self._present = False
        lock = acquire(self._dir, ref, create=True, stall=stall, on_wait=on_wait)
        assert lock is not None  # create=True never gives None
        self._lock = lock
        self._expected = expected
        self._total = total
        try:
            if expected is not None and (blobs / expected.algorithm / expected.encoded).is_file():
                # Another writer (perhaps the one we waited for) has made it: nothing to write.
                self._present = True
            self._setup(expected, total)
        except OSError as err:
            if is_no_space(err):
                raise self._no_space(err) from None
            self.close()
            raise
        except BaseException:
            self.close()
            raise

    def _setup(self, expected: Digest | None, total: int | None) -> None:
        recorded_ref = read_text(self._dir / REF)
        if recorded_ref is not None and recorded_ref != self._ref:
            raise StoreError(f"ingest {self._ref}: directory {self._dir} belongs to another ref")
        recorded_expected = read_text(self._dir / EXPECTED)
        recorded_total = read_text(self._dir / TOTAL)
        # Data written for a different blob cannot be resumed into this one: start over.
        restart = (expected is not None and recorded_expected not in (None, str(expected))) or (
            total is not None and recorded_total not in (None, str(total))
        )
        if expected is None and recorded_expected is not None:
            with contextlib.suppress(InvalidDigest):
                expected = checked_digest(Digest.parse(recorded_expected))
        if total is None and recorded_total is not None:
            with contextlib.suppress(ValueError):
                total = int(recorded_total)
        self._expected = expected
        self._total = total
        if recorded_ref is None:
            _write_text(self._dir / REF, self._ref)
        if restart or not (self._dir / STARTED).exists():
            _write_text(self._dir / STARTED, repr(time.time()))
        if expected is not None:
            _write_text(self._dir / EXPECTED, str(expected))
        if total is not None:
            _write_text(self._dir / TOTAL, str(total))
        fd = os.open(self._dir / DATA, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self._file = open(fd, "r+b")  # noqa: SIM115 -- lives as long as the writer
        if restart:
            self._file.truncate(0)
        self._rehash()
        if total is not None and self._offset > total:
            self._file.truncate(0)
            self._rehash()

    def _rehash(self) -> None:
        """Rebuild the hash state from the data already on disk (a resume)."""
        assert self._file is not None
        algorithm = self._expected.algorithm if self._expected is not None else SHA256
        self._hasher = hashlib.new(algorithm)
        self._offset = 0
        self._file.seek(0)
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        while n := self._file.readinto(buf):
            self._hasher.update(view[:n])
            self._offset += n
        self._file.seek(self._offset)
        self._synced = self._offset

    @property
    def ref(self) -> str:
        """The ingest's ref."""
        return self._ref

    @property
    def present(self) -> bool:
        """True if the expected blob was already in the store when the ingest was opened (for
        example made by the writer this one waited for): the caller can `abort` and use it."""
        return self._present

    @property
    def offset(self) -> int:
        """Bytes written so far, including those found when the ingest was resumed."""
        return self._offset

    @property
    def hashes_sha256_from_start(self) -> bool:
        """True while `digest` is the sha256 of every byte written through this writer alone
        (nothing resumed), so a producer hashing the same stream can use it instead."""
        return self._hasher.name == "sha256" and self._offset == 0

    @property
    def expected(self) -> Digest | None:
        """The digest the data must have, if known."""
        return self._expected

    @property
    def total(self) -> int | None:
        """The size the data must have, if known."""
        return self._total

    def _name(self, expected: Digest | None) -> str:
        return f"blob {expected}" if expected is not None else f"ingest {self._ref}"

    def _no_space(self, err: OSError) -> StoreError:
        """Remove the ingest (freeing what it took) and return the error to raise."""
        written = self._offset
        needed = self._total - written if self._total is not None else None
        if self._file is not None:
            # Closing flushes what is buffered, which fails again; the file is closed anyway.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        try:
            self.abort()
        except StoreError:
            self.close()
        what = f"writing {self._name(self._expected)}"
        return no_space(what, err, needed=needed, written=written)

    def _open_file(self) -> io.BufferedRandom:
        if self._file is None:
            raise StoreError(f"ingest {self._ref}: writer is closed")
        return self._file

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; `SizeMismatch` (ingest discarded) if it goes past the expected total."""
        f = self._open_file()
        n = memoryview(data).nbytes
        if self._total is not None and self._offset + n > self._total:
            self.abort()
            raise SizeMismatch(
                f"{self._name(self._expected)}: more than the expected {self._total} bytes"
            )
        try:
            f.write(data)
        except OSError as err:
            if is_no_space(err):
                raise self._no_space(err) from None
            raise os_error(f"ingest {self._ref}: cannot write", err) from None
        self._hasher.update(data)
        self._offset += n
        if self._offset - self._synced >= WRITEBACK_CHUNK:
            # Start writing back what is there now, so the fsync at commit finds little left
            # to do: the disk works while we produce the rest.
            f.flush()
            start_writeback(f.fileno(), self._synced, self._offset - self._synced)
            self._synced = self._offset
        return n

    def flush(self) -> None:
        """Push buffered bytes to the file (no fsync; `commit` does that)."""
        f = self._open_file()
        try:
            f.flush()
        except OSError as err:
            if is_no_space(err):
                raise self._no_space(err) from None
            raise os_error(f"ingest {self._ref}: cannot write", err) from None

    def tell(self) -> int:
        """The same as `offset`, for code that treats the writer as a file."""
        return self._offset

    def writable(self) -> bool:
        """True while the writer is open, for code that treats the writer as a file."""
        return self._file is not None

    @property
    def closed(self) -> bool:
        """True once committed, aborted or closed."""
        return self._file is None

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return Digest(self._hasher.name, self._hasher.hexdigest())

    def commit(self, *, expected: Digest | None = None, size: int | None = None) -> Digest:
        """Fsync, verify size and digest, and rename the data into ``blobs/``; return the digest.

        On a mismatch the ingest is discarded. A blob that is already present counts as success.
        """
        f = self._open_file()
        expected = checked_digest(expected) if expected is not None else self._expected
        size = size if size is not None else self._total
        data_path = self._dir / DATA
        try:
            f.flush()
            os.fsync(f.fileno())
            on_disk = os.fstat(f.fileno()).st_size
            if on_disk != self._offset or (size is not None and self._offset != size):
                want = size if size is not None else self._offset
                self.abort()
                raise SizeMismatch(f"{self._name(expected)}: got {on_disk} bytes, expected {want}")
            if expected is None or expected.algorithm == self._hasher.name:
                digest = self.digest()
            else:
                digest, _ = hash_file(data_path, expected.algorithm)
            if expected is not None and digest != expected:
                self.abort()
                raise DigestMismatch(f"blob {expected}: content hashes to {digest}")
            target = self._blobs / digest.algorithm / digest.encoded
            if not target.exists():
                os.fchmod(f.fileno(), BLOB_MODE)
                make_dir(target.parent)
                # Two writers of one blob may both get here; rename replaces atomically and
                # both copies are identical, so whichever lands last is as good as the first.
                os.rename(data_path, target)
                fsync_dir(target.parent)
        except OSError as err:
            if is_no_space(err):
                raise self._no_space(err) from None
            raise os_error(f"{self._name(expected)}: cannot commit", err) from None
        self.abort()
        return digest

    def abort(self) -> None:
        """Discard the ingest and its data. Does nothing once the writer is closed."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            lock, self._lock = self._lock, None
            try:
                remove_ingest(self._dir, lock)
            except OSError as err:
                raise os_error(f"ingest {self._ref}: cannot remove", err) from None

    def close(self) -> None:
        """Release the ingest without committing; the data stays for a later resume."""
        try:
            if self._file is not None:
                self._file.close()
        finally:
            self._file = None
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Kept on error too: what was written can be resumed, and gc cleans what is never resumed.
        self.close()
