"""Diff IDs of compressed layers, computed on a thread while the blob is being ingested.

A compressed layer's diff ID is the digest of its decompressed stream, which costs a full
decompression. Done after the archive pass, that work adds up with the pass itself; done on a
second thread fed with the very chunks being written to the store, the two overlap (isal, zstd
and hashlib all release the GIL), which on two cores nearly halves a load of gzip layers.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from typing import BinaryIO, Final, cast

from strata.digest import SHA256, Digest
from strata.layer.compression import (
    DEFAULT_DECOMPRESS_LIMIT,
    Compression,
    detect,
    open_decompressed,
)

__all__ = ["MIN_THREADED_SIZE", "DiffIdWorker", "hash_decompressed"]

CHUNK: Final = 1 << 20
MIN_THREADED_SIZE: Final = 256 << 10
"""Below this a blob decompresses faster than a thread starts to pay off."""

_QUEUED_CHUNKS: Final = 8
_END: Final = b""


def hash_decompressed(stream: BinaryIO, source: str) -> tuple[Digest, int]:
    """The sha256 digest and size of ``stream`` decompressed (`FormatError` if corrupt)."""
    hasher = hashlib.sha256()
    size = 0
    with open_decompressed(stream, limit=DEFAULT_DECOMPRESS_LIMIT, source=source) as plain:
        while data := plain.read(CHUNK):
            hasher.update(data)
            size += len(data)
    return Digest(SHA256, hasher.hexdigest()), size


class _QueueReader(io.RawIOBase):
    """The chunks put on a queue, as a readable stream that ends at the end marker."""

    def __init__(self, chunks: queue.Queue[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._rest = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._rest and not self._ended:
            self._rest = self._chunks.get()
            self._ended = self._rest == _END
        if size < 0 or size >= len(self._rest):
            data, self._rest = self._rest, b""
        else:
            data, self._rest = self._rest[:size], self._rest[size:]
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Consume up to the end marker, so that whoever feeds the queue never blocks."""
        while not self._ended:
            self._ended = self._chunks.get() == _END


class DiffIdWorker:
    """Decompresses and hashes one blob on a thread; feed it every chunk, then `finish`."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._result: tuple[Digest, int] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="strata-diff-id", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, head: bytes, size: int, source: str) -> DiffIdWorker | None:
        """A worker for a blob starting with ``head``, if it is a big enough gzip/zstd one."""
        if size < MIN_THREADED_SIZE or detect(head) not in (Compression.GZIP, Compression.ZSTD):
            return None
        return cls(source)

    def feed(self, data: bytes) -> None:
        if data:
            self._chunks.put(data)

    def finish(self) -> None:
        """No more data: the worker completes on what it has."""
        self._chunks.put(_END)

    def wait(self) -> tuple[Digest, int]:
        """The diff ID and uncompressed size; raises what decompressing raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def _run(self) -> None:
        reader = _QueueReader(self._chunks)
        try:
            self._result = hash_decompressed(cast(BinaryIO, reader), self._source)
        except BaseException as err:  # handed to whoever waits for the result
            self._error = err
        finally:
            reader.drain()
