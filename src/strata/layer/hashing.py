"""The uncompressed tar stream of a layer being applied, hashed (its diff ID) as it is read."""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from typing import BinaryIO, Final

from strata.digest import Digest
from strata.errors import StrataError

_CHUNK: Final = 1 << 20
_THREADED_HASH: Final = 256 * 1024


class HashingReader(io.RawIOBase):
    """The uncompressed tar stream, hashed and counted as the reader takes it.

    Large layers are hashed on a worker thread (sha256 releases the GIL), beside the
    applier's own work; the queue is short, so memory stays at a few MiB.
    """

    def __init__(self, src: BinaryIO, source: str, *, enabled: bool) -> None:
        super().__init__()
        self._enabled = enabled
        self._src = src
        self._source = source
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._src.read(size)
        except OSError as e:
            raise StrataError(f"{self._source}: cannot read: {e.strerror or e}") from None
        self.size += len(data)
        if not self._enabled:
            return data
        if self._thread is None:
            if len(data) < _THREADED_HASH:
                self._hash.update(data)
                return data
            self._thread = threading.Thread(target=self._run, name="strata-apply-hash")
            self._thread.daemon = True
            self._thread.start()
        self._queue.put(data)
        return data

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def drain(self) -> None:
        """Read (and hash) what is left after the end of the archive."""
        while self.read(_CHUNK):
            pass

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        super().close()

    def digest(self) -> Digest:
        self.close()
        return Digest("sha256", self._hash.hexdigest())
