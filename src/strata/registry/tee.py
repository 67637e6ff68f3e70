"""A layer download shared with its extraction, so that a pull extracts while it downloads.

The downloading thread writes each chunk to the content store and `Tee.feed`s it here; the
extracting thread reads the same bytes through `Tee.reader`. The end of the stream comes only
after the download was verified and committed (`Tee.finish`), so an extraction that reads to its
end has read a verified blob; a failed download ends the stream with an error instead. The queue
is short: the download waits for a slow extraction, never piling up the layer in memory.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import BinaryIO, Final, cast

from strata.errors import StrataError

__all__ = ["Tee"]

_QUEUED: Final = 16  # chunks of ~1 MiB
_POLL: Final = 0.1
_END: Final = b""


class _Failed:
    """Marks the stream as broken by the download (its error is the download's to report)."""


class Tee:
    """One download's chunks, handed to one reader."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._queue: queue.Queue[bytes | _Failed] = queue.Queue(maxsize=_QUEUED)
        self._abandoned = threading.Event()

    # -- the downloading side -------------------------------------------------------------------

    def _put(self, item: bytes | _Failed) -> None:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def feed(self, chunk: bytes) -> None:
        """Hand on a chunk just written (waits while the reader is behind)."""
        if chunk:
            self._put(chunk)

    def finish(self) -> None:
        """The blob is complete and verified: the reader may reach its end."""
        self._put(_END)

    def fail(self) -> None:
        """The download failed: the reader gets an error instead of the end."""
        self._put(_Failed())

    # -- the reading side -----------------------------------------------------------------------

    def abandon(self) -> None:
        """The reader stops (it failed): the download goes on without waiting for it."""
        self._abandoned.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def reader(self) -> BinaryIO:
        """The stream of the blob's bytes, as they arrive."""
        return cast(BinaryIO, _Reader(self))

    def _get(self) -> bytes | _Failed:
        return self._queue.get()


class _Reader(io.RawIOBase):
    def __init__(self, tee: Tee) -> None:
        super().__init__()
        self._tee = tee
        self._rest = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._rest and not self._ended:
            item = self._tee._get()
            if isinstance(item, _Failed):
                raise StrataError(f"{self._tee.source}: the download failed")
            self._ended = item == _END
            self._rest = memoryview(item)
        n = min(len(buffer), len(self._rest))
        memoryview(buffer).cast("B")[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n
