"""Content store: immutable blobs addressed by digest, and the resumable ingests that make them.

The seam is `ContentStore` (a Protocol) so that other implementations can plug in beside the local
one (`strata.content.local.LocalContentStore`); `tests/content/test_conformance.py` is the suite
every implementation must pass. Writes go through an ingest: data is streamed to a private area,
fsynced, checked against the expected size and digest and only then renamed into place, so a blob
that exists is always whole and correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from strata.digest import Digest

__all__ = ["BlobInfo", "ContentStore", "IngestInfo", "Writer"]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A committed blob: its digest, size in bytes, and modification time (seconds since epoch)."""

    digest: Digest
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class IngestInfo:
    """An unfinished write: its ref, bytes written so far, when it started and was last written."""

    ref: str
    offset: int
    started: float
    updated: float
    expected: Digest | None


class Writer(Protocol):
    """An open ingest. Leaving it without `commit` keeps the data for a later resume."""

    @property
    def ref(self) -> str:
        """The ingest's ref."""
        ...

    @property
    def offset(self) -> int:
        """Bytes written so far, including those found when the ingest was resumed."""
        ...

    @property
    def present(self) -> bool:
        """True if the expected blob was already stored when the ingest was opened."""
        ...

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; return the number of bytes written."""
        ...

    def flush(self) -> None:
        """Push buffered bytes towards the store (durability comes only with `commit`)."""
        ...

    def tell(self) -> int:
        """The same as ``offset``, for code that treats the writer as a file."""
        ...

    def commit(self, *, expected: Digest | None = None, size: int | None = None) -> Digest:
        """Verify and move the data into the store; return its digest."""
        ...

    def abort(self) -> None:
        """Discard the ingest and its data."""
        ...

    def close(self) -> None:
        """Release the ingest without committing; the data stays for a resume."""
        ...

    def __enter__(self) -> Writer: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ContentStore(Protocol):
    """Blobs by digest. Every method validates the digest before it is used for anything."""

    def exists(self, digest: Digest) -> bool:
        """True if the blob is in the store."""
        ...

    def info(self, digest: Digest) -> BlobInfo:
        """Size and time of a blob; `BlobNotFound` if absent."""
        ...

    def path(self, digest: Digest) -> Path:
        """The file holding an existing blob; `BlobNotFound` if absent."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """Open a blob for reading; `BlobNotFound` if absent."""
        ...

    def read_bytes(self, digest: Digest, *, limit: int) -> bytes:
        """The whole blob, which must be at most ``limit`` bytes (`TooLarge` otherwise)."""
        ...

    def delete(self, digest: Digest) -> bool:
        """Remove a blob; False if it was not there."""
        ...

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob, in no particular order."""
        ...

    def verify(self, digest: Digest) -> None:
        """Re-hash a blob; `DigestMismatch` if its bytes no longer match its digest."""
        ...

    def writer(
        self,
        ref: str,
        *,
        expected: Digest | None = None,
        total: int | None = None,
        stall: float = 0.0,
        on_wait: Callable[[int], None] | None = None,
    ) -> Writer:
        """Open (or resume) the ingest ``ref``. If another process is writing it: `Locked` at
        once with ``stall`` 0, else wait while it makes progress (``on_wait`` gets its bytes)."""
        ...

    def put_bytes(self, data: bytes, *, expected: Digest | None = None) -> Digest:
        """Store ``data`` (checked against ``expected`` if given); return its digest."""
        ...

    def ingest(
        self,
        stream: BinaryIO,
        *,
        expected: Digest | None = None,
        size: int | None = None,
        ref: str | None = None,
    ) -> Digest:
        """Stream ``stream`` into the store, verifying ``expected``/``size``; return the digest."""
        ...

    def ingests(self) -> list[IngestInfo]:
        """The unfinished ingests."""
        ...

    def abort_ingest(self, ref: str) -> None:
        """Discard the ingest ``ref`` if it exists; `Locked` if another process is writing it."""
        ...

    def clean_ingests(self, older_than: float) -> int:
        """Discard ingests not written for ``older_than`` seconds and not in use; return a count."""
        ...
