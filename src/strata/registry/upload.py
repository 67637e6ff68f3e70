"""A local layer compressed straight into its upload, the compressed blob kept in the store.

A layer pushed for the first time has no compressed digest yet, so nothing can be asked about
it beforehand; compressing it to a file and then sending the file would put the two longest
steps of a push end to end. Instead a thread compresses into the content store and a queue, and
the upload streams the queue to the registry in one chunked ``PATCH`` (as Docker does), naming
the digest in the closing ``PUT`` once it is known. If the upload fails the compression still
completes, so the blob is kept and the caller can send it the ordinary, retried way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import StrataError
from strata.registry.compress import CompressedBlob, LayerCompression, compress_blob

if TYPE_CHECKING:
    from strata.registry.client import RegistryClient

__all__ = ["compress_and_upload"]

_QUEUED: Final = 32  # compressed pieces of about 1 MiB waiting for the socket
_END: Final = b""


class _Pieces:
    """Compressed bytes from the compressing thread, as the upload's request body."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self.failed = False

    def put(self, data: bytes) -> None:
        if data:
            self._queue.put(data)

    def end(self, *, failed: bool = False) -> None:
        self.failed = failed
        self._queue.put(None)

    def __iter__(self) -> Iterator[bytes]:
        while (item := self._queue.get()) is not None:
            yield item
        if self.failed:
            # Breaks the request off: the registry must not take a blob cut short.
            raise StrataError("compression failed")

    def drain(self) -> None:
        """Consume to the end (the upload gave up), so the compression never blocks."""
        while self._queue.get() is not None:
            pass


def compress_and_upload(
    client: RegistryClient,
    content: LocalContentStore,
    repo: str,
    source: Digest,
    compression: LayerCompression,
    *,
    progress: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    hold: Callable[[Digest], None] | None = None,
) -> tuple[CompressedBlob, bool]:
    """Compress the stored layer ``source`` into the store and into an upload to ``repo``.

    Returns the compressed blob (committed to the store) and whether the registry took it: a
    `RegistryError` of the upload is swallowed (False), for the caller to send the kept blob
    again with retries. A failure to compress is raised. ``hold`` gets the compressed blob's
    digest before it is committed, on the compressing thread (see `compress_blob`).
    """
    pieces = _Pieces()
    made: list[CompressedBlob] = []
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            made.append(
                compress_blob(
                    content, source, compression, progress=progress, cancelled=cancelled,
                    tap=pieces.put, hold=hold,
                )
            )  # fmt: skip
        except BaseException as err:  # raised again on the caller's thread
            failure.append(err)
            pieces.end(failed=True)
        else:
            pieces.end()

    def digest() -> Digest:
        # The last piece is sent: the blob is committed (and its digest known) at once.
        thread.join()
        if failure:
            raise StrataError(f"layer {source}: compression failed")
        return made[0].digest

    thread = threading.Thread(target=produce, name="strata-compress", daemon=True)
    thread.start()
    sent = True
    try:
        client.upload_stream(repo, pieces, digest)
    except StrataError:
        if failure:
            thread.join()
            raise failure[0] from None
        sent = False
    finally:
        if thread.is_alive():
            pieces.drain()
        thread.join()
    if failure:
        raise failure[0]
    return made[0], sent
