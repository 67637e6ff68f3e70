"""Layer compression: detect it, stream through it, and write it reproducibly.

gzip goes through python-isal (pinned: gzip bytes differ between libraries and versions), zstd
through zstandard, bzip2 and xz through the standard library. Decompression counts what it
produces and stops past a bound, so a bomb costs at most the bound, never the whole expansion.
"""

from __future__ import annotations

import bz2
import collections
import enum
import io
import lzma
import os
from collections.abc import Callable
from typing import BinaryIO, Final, cast

import zstandard
from isal import igzip, igzip_lib, igzip_threaded

from strata.errors import FormatError, InvalidArgument, StrataError, TooLarge

DEFAULT_DECOMPRESS_LIMIT: Final = 64 * 1024**3
"""Decompressed bytes allowed by default: far above any real layer, far below a full disk."""

DEFAULT_GZIP_LEVEL: Final = 1
"""isal level 1 (of 1-3): the fastest on a Debian rootfs tar, within 3 % of level 3's size."""

DEFAULT_ZSTD_LEVEL: Final = 3

_CHUNK: Final = 1 << 20
# Fixed input blocks make the gzip bytes a function of the data alone, not of how callers
# happened to slice their writes (isal's output depends on both otherwise).
_GZIP_BLOCK: Final = 1 << 20
_HEAD: Final = 6
# isal's stub declares IsalError as an instance, not a class.
_ISAL_ERROR: Final = cast(type[Exception], igzip_lib.IsalError)


class Compression(str, enum.Enum):
    """How a layer blob is compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


_ZSTD_MAGIC: Final = 0xFD2FB528
_ZSTD_SKIPPABLE: Final = 0x184D2A50  # low 4 bits are free: 0x184D2A50..0x184D2A5F


def detect(head: bytes) -> Compression:
    """The compression whose magic number starts ``head`` (6 bytes are enough), else NONE."""
    if head[:2] == b"\x1f\x8b":
        return Compression.GZIP
    if len(head) >= 4:
        magic = int.from_bytes(head[:4], "little")
        if magic == _ZSTD_MAGIC or magic & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
            return Compression.ZSTD
    # The block-size digit cuts false positives on tars whose first member starts "BZh".
    if head[:3] == b"BZh" and head[3:4] in tuple(b"%d" % i for i in range(1, 10)):
        return Compression.BZIP2
    if head[:6] == b"\xfd7zXZ\x00":
        return Compression.XZ
    return Compression.NONE


class _SourceError(Exception):
    """An OSError from the caller's stream, carried through the decompressor unchanged."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _TruncatedError(Exception):
    """The compressed stream ended inside a frame."""


class _ZstdFrames:
    """Follows zstd frame and block headers in the compressed bytes, to notice truncation.

    zstandard's stream reader treats a stream cut inside a frame as a clean end; walking the
    headers (without decompressing) tells a finished stream from a cut one.
    """

    _MAGIC, _SKIP_SIZE, _DESCRIPTOR, _HEADER_REST, _BLOCK = range(5)

    def __init__(self) -> None:
        self._state = self._MAGIC
        self._need = 4
        self._have = bytearray()
        self._skip = 0
        self._checksum = False

    @property
    def at_boundary(self) -> bool:
        """True between frames: the stream may end here."""
        return self._state == self._MAGIC and not self._have and self._skip == 0

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._have), end - pos)
            self._have += data[pos : pos + take]
            pos += take
            if len(self._have) == self._need:
                field = bytes(self._have)
                self._have.clear()
                self._advance(field)

    def _advance(self, field: bytes) -> None:
        value = int.from_bytes(field, "little")
        if self._state == self._MAGIC:
            if value == _ZSTD_MAGIC:
                self._state, self._need = self._DESCRIPTOR, 1
            elif value & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
                self._state, self._need = self._SKIP_SIZE, 4
            else:
                raise FormatError(f"unknown zstd frame magic {value:#010x}")
        elif self._state == self._SKIP_SIZE:
            self._skip = value
            self._state, self._need = self._MAGIC, 4
        elif self._state == self._DESCRIPTOR:
            single_segment = value >> 5 & 1
            self._checksum = bool(value >> 2 & 1)
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[value & 3]
            rest += (single_segment, 2, 4, 8)[value >> 6]
            if rest:
                self._state, self._need = self._HEADER_REST, rest
            else:
                self._state, self._need = self._BLOCK, 3
        elif self._state == self._HEADER_REST:
            self._state, self._need = self._BLOCK, 3
        else:
            block_type = value >> 1 & 3
            if block_type == 3:
                raise FormatError("reserved zstd block type")
            self._skip = 1 if block_type == 1 else value >> 3
            if value & 1:  # last block of the frame
                self._skip += 4 if self._checksum else 0
                self._state, self._need = self._MAGIC, 4


class _Source(io.RawIOBase):
    """The caller's stream with the sniffed magic bytes put back in front."""

    def __init__(self, head: bytes, src: BinaryIO, frames: _ZstdFrames | None) -> None:
        super().__init__()
        self._head = head
        self._src = src
        self._frames = frames
        self.at_eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._head:
            cut = len(self._head) if size < 0 else size
            data, self._head = self._head[:cut], self._head[cut:]
        else:
            try:
                data = self._src.read(size if size > 0 else _CHUNK)
            except OSError as e:
                raise _SourceError(e) from e
        if self._frames is not None:
            if data:
                self._frames.feed(data)
            elif not self._frames.at_boundary:
                raise _TruncatedError
        if not data:
            self.at_eof = True
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class _Decompressed(io.RawIOBase):
    """Decompressed bytes, counted against the limit, with decoder errors made FormatError."""

    def __init__(
        self,
        inner: BinaryIO,
        source_stream: _Source,
        compression: Compression,
        limit: int | None,
        source: str,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._stream = source_stream
        self._compression = compression
        self._limit = limit
        self._source = source
        self._count = 0

    def readable(self) -> bool:
        return True

    def _read_some(self, size: int) -> bytes:
        try:
            data = self._inner.read(size)
            # When zstd says "done", make sure the input really ended on a frame boundary.
            if (
                not data
                and self._compression is Compression.ZSTD
                and not self._stream.at_eof
                and self._stream.read(1)
            ):
                raise FormatError("data after the last zstd frame")
        except _SourceError as e:
            raise e.error from None
        except (_TruncatedError, EOFError):
            raise FormatError(
                f"{self._source}: truncated {self._compression.value} stream"
            ) from None
        except StrataError as e:
            if isinstance(e, FormatError) and not str(e).startswith(self._source):
                raise FormatError(
                    f"{self._source}: corrupt {self._compression.value} stream: {e}"
                ) from None
            raise
        except (OSError, _ISAL_ERROR, zstandard.ZstdError, lzma.LZMAError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise FormatError(
                f"{self._source}: corrupt {self._compression.value} stream: {reason}"
            ) from None
        self._count += len(data)
        if self._limit is not None and self._count > self._limit:
            raise TooLarge(f"{self._source}: decompressed size over {self._limit} bytes")
        return data

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that remain if negative); fewer only at the end."""
        if size == 0:
            return b""
        if size is None or size < 0:
            size = -1
        first = self._read_some(_CHUNK if size < 0 else min(size, _CHUNK))
        if len(first) == size or not first:
            return first
        # Short read or more wanted: gather in chunks, checking the limit as bytes appear.
        parts = [first]
        want = size - len(first) if size > 0 else -1
        while want:
            data = self._read_some(_CHUNK if want < 0 else min(want, _CHUNK))
            if not data:
                break
            parts.append(data)
            if want > 0:
                want -= len(data)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


def _read_head(src: BinaryIO) -> bytes:
    head = b""
    while len(head) < _HEAD:
        data = src.read(_HEAD - len(head))
        if not data:
            break
        head += data
    return head


def open_decompressed(src: BinaryIO, *, limit: int | None = None, source: str) -> BinaryIO:
    """A stream of ``src`` decompressed, whatever its compression (detected from its magic).

    Reads return decompressed bytes; past ``limit`` of them `TooLarge` is raised; a corrupt or
    truncated stream raises `FormatError` naming ``source``. Closing the result does not close
    ``src``.
    """
    head = _read_head(src)
    compression = detect(head)
    frames = _ZstdFrames() if compression is Compression.ZSTD else None
    stream = _Source(head, src, frames)
    raw = cast(BinaryIO, stream)
    inner: BinaryIO
    if compression is Compression.NONE:
        inner = raw
    elif compression is Compression.GZIP:
        gzip_file = igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call]
        inner = cast(BinaryIO, gzip_file)
    elif compression is Compression.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=_CHUNK, read_across_frames=True, closefd=False
        )
        inner = cast(BinaryIO, reader)
    elif compression is Compression.BZIP2:
        inner = cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    else:
        inner = cast(BinaryIO, lzma.LZMAFile(raw, "rb"))  # noqa: SIM115 (closed with the result)
    return cast(BinaryIO, _Decompressed(inner, stream, compression, limit, source))


def _threads() -> int:
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return 1


class _Collector:
    """Where isal's worker threads put compressed bytes; the caller's thread moves them on.

    isal's threads writing to ``dst`` themselves would hang the writer's close() if ``dst``
    failed (a full disk, a dropped upload); appending to a deque cannot fail, and the error
    of a real write then surfaces in the caller's thread.
    """

    def __init__(self) -> None:
        self._parts: collections.deque[bytes] = collections.deque()

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return

    def drain(self, dst: BinaryIO) -> None:
        while self._parts:
            dst.write(self._parts.popleft())


class _Compressor(io.RawIOBase):
    """A write-only stream: ``close()`` ends the compressed stream but leaves ``dst`` open."""

    def __init__(
        self,
        sink: Callable[[bytes | memoryview], object],
        finish: Callable[[], object],
        block: int | None = None,
    ) -> None:
        super().__init__()
        self._sink = sink
        self._finish = finish
        self._block = block
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        block = self._block
        if block is None:
            if size:
                self._sink(view)
            return size
        offset = 0
        if self._pending:
            offset = min(block - len(self._pending), size)
            self._pending += view[:offset]
            if len(self._pending) < block:
                return size
            self._sink(bytes(self._pending))
            self._pending.clear()
        while size - offset >= block:
            self._sink(view[offset : offset + block])
            offset += block
        if offset < size:
            self._pending += view[offset:]
        return size

    def flush(self) -> None:
        # Deliberately nothing: a flush inside gzip or zstd changes the bytes produced, and the
        # same input must always give the same blob.
        return

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pending:
                self._sink(bytes(self._pending))
                self._pending.clear()
            self._finish()
        finally:
            super().close()


def _check_level(compression: Compression, level: int, low: int, high: int) -> int:
    if not low <= level <= high:
        raise InvalidArgument(
            f"invalid {compression.value} compression level {level}: must be {low} to {high}"
        )
    return level


def open_compressed(
    dst: BinaryIO, compression: Compression, *, level: int | None = None
) -> BinaryIO:
    """A writable stream compressing into ``dst``; its ``close()`` finishes the stream only.

    gzip: isal (default level 1), header mtime 0 and no file name, input cut into fixed 1 MiB
    blocks (compressed on background threads; the bytes do not depend on the thread count).
    zstd: level 3 with a content checksum, content size unknown (streamed). The same input
    gives the same bytes every time.
    """
    compression = Compression(compression)
    if compression is Compression.NONE:
        return cast(BinaryIO, _Compressor(dst.write, lambda: None))
    if compression is Compression.GZIP:
        # isal level 0 is refused: slower and larger than level 1 on real layers, and in
        # python-isal 1.7.2 its threaded writer overflows (and can hang) on incompressible data.
        lvl = _check_level(compression, DEFAULT_GZIP_LEVEL if level is None else level, 1, 3)
        collector = _Collector()
        # The public igzip_threaded.open() wraps this in a writer whose close() flushes first,
        # which appends an empty second gzip member; the raw writer ends the stream cleanly.
        gz = igzip_threaded._ThreadedGzipWriter(
            collector, level=lvl, threads=_threads(), block_size=_GZIP_BLOCK
        )

        def sink(block: bytes | memoryview) -> None:
            gz.write(block)
            collector.drain(dst)

        def finish() -> None:
            gz.close()
            collector.drain(dst)

        return cast(BinaryIO, _Compressor(sink, finish, _GZIP_BLOCK))
    if compression is Compression.ZSTD:
        lvl = _check_level(
            compression,
            DEFAULT_ZSTD_LEVEL if level is None else level,
            -(1 << 17),
            zstandard.MAX_COMPRESSION_LEVEL,
        )
        # threads >= 1 always: zstd's multi-threaded bytes are the same for any worker count,
        # but differ from its single-threaded mode.
        zc = zstandard.ZstdCompressor(level=lvl, threads=_threads(), write_checksum=True)
        writer = zc.stream_writer(dst, closefd=False, write_return_read=True)
        return cast(BinaryIO, _Compressor(writer.write, writer.close))
    if compression is Compression.BZIP2:
        bz = bz2.BZ2Compressor(_check_level(compression, 9 if level is None else level, 1, 9))
        return cast(
            BinaryIO,
            _Compressor(lambda b: dst.write(bz.compress(b)), lambda: dst.write(bz.flush())),
        )
    xz = lzma.LZMACompressor(
        lzma.FORMAT_XZ, preset=_check_level(compression, 6 if level is None else level, 0, 9)
    )
    return cast(
        BinaryIO, _Compressor(lambda b: dst.write(xz.compress(b)), lambda: dst.write(xz.flush()))
    )
