"""The canonical tar encoding of layer members, and a writer that hashes as it goes.

Canonical form: a USTAR header when the member fits (ASCII names of up to 100 bytes, or split
at a slash into the 155-byte prefix; numbers within their octal fields; no xattrs), otherwise a
PAX extended header (named ``././@PaxHeader``, all its own fields zero) carrying only what did
not fit, in a fixed order. Owner names are empty, ids numeric, times whole seconds; the archive
ends with two zero blocks and no record padding (as Go's archive/tar writes it). The encoding
is a pure function of the `TarEntry`, so the same members always give the same bytes. GNU tar,
Python's tarfile and Go's archive/tar all read it.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterable
from typing import BinaryIO, Final

from strata.errors import FormatError, SizeMismatch
from strata.layer.entry import DIRTYPE, SYMTYPE, TarEntry, display_name
from strata.layer.stats import HashingWriter, LayerStats

BLOCK: Final = 512
END_OF_ARCHIVE: Final = bytes(2 * BLOCK)
_PAX_NAME: Final = b"././@PaxHeader"
_MAX7: Final = 0o7777777
_MAX11: Final = 0o77777777777
_USTAR: Final = b"ustar\x0000"
# Pieces smaller than this are gathered before hashing and writing: fewer, larger calls.
_GATHER: Final = 1 << 20


def byte_sum(block: bytes) -> int:
    """The sum of a tar header's bytes (its checksum), computed without a Python-level loop.

    adler32 gives the sum modulo 65521; a header's sum is below 2 x 65521, and the count of
    non-zero bytes bounds it, which settles the one ambiguity almost always.
    """
    low = ((zlib.adler32(block) & 0xFFFF) - 1) % 65521
    nonzero = len(block) - block.count(0)
    if low + 65521 > 255 * nonzero:
        return low
    if low < nonzero:
        return low + 65521
    return sum(block)


_NUMBERS: Final = b"%07o\x00%07o\x00%07o\x00%011o\x00%011o\x00"
# magic "ustar\0" version "00", empty uname and gname.
_MAGIC_AND_OWNERS: Final = _USTAR + bytes(64)
# The rest of the block of a member that is not a device and has no prefix.
_PLAIN_TAIL: Final = _MAGIC_AND_OWNERS + b"0000000\x00" * 2 + bytes(167)
_PLAIN_TAIL_SUM: Final = sum(_PLAIN_TAIL)


def _ustar(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
    devmajor: int = 0,
    devminor: int = 0,
    prefix: bytes = b"",
) -> bytes:
    head = b"%s%s" % (name.ljust(100, b"\x00"), _NUMBERS % (mode, uid, gid, size, mtime))
    link = linkname.ljust(100, b"\x00")
    if devmajor or devminor or prefix:
        tail = b"%s%07o\x00%07o\x00%s" % (
            _MAGIC_AND_OWNERS,
            devmajor,
            devminor,
            prefix.ljust(167, b"\x00"),
        )
        tail_sum = byte_sum(tail)
    else:
        tail, tail_sum = _PLAIN_TAIL, _PLAIN_TAIL_SUM
    # The checksum counts its own field as eight spaces.
    checksum = (
        byte_sum(head) + (byte_sum(linkname) if linkname else 0) + typeflag[0] + 256 + tail_sum
    )
    return b"%s%06o\x00 %s%s%s" % (head, checksum, typeflag, link, tail)


def _split_prefix(name: bytes) -> tuple[bytes, bytes] | None:
    """USTAR's prefix/name split of a long ASCII name, if one fits."""
    if len(name) > 256 or not name.isascii():
        return None
    cut = name.rfind(b"/", 0, min(156, len(name) - 1))
    if cut <= 0 or len(name) - cut - 1 > 100:
        return None
    return name[:cut], name[cut + 1 :]


def pax_record(key: bytes, value: bytes) -> bytes:
    """One PAX record, ``"%d %s=%s\\n"`` with the length counting itself."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + len(str(len(body)))
    if len(str(length)) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_header(entry: TarEntry) -> bytes:
    """The header block(s) of ``entry``: one USTAR block, preceded by a PAX header if needed."""
    name = entry.name + b"/" if entry.type == DIRTYPE else entry.name
    records: list[tuple[bytes, bytes]] = []
    prefix = b""
    if len(name) > 100 or not name.isascii():
        split = _split_prefix(name)
        if split is None:
            records.append((b"path", name))
            name = name[:100]
        else:
            prefix, name = split
    linkname = entry.linkname
    if len(linkname) > 100 or not linkname.isascii():
        records.append((b"linkpath", linkname))
        linkname = linkname[:100]
    size, uid, gid, mtime = entry.size, entry.uid, entry.gid, entry.mtime
    if size > _MAX11:
        records.append((b"size", b"%d" % size))
        size = 0
    if uid > _MAX7:
        records.append((b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX7:
        records.append((b"gid", b"%d" % gid))
        gid = 0
    if not 0 <= mtime <= _MAX11:
        records.append((b"mtime", b"%d" % mtime))
        mtime = 0
    if entry.devmajor > _MAX7 or entry.devminor > _MAX7:
        raise FormatError(f"member {display_name(entry.name)}: device number out of range")
    for key, value in entry.xattrs:
        if b"=" in key or b"\x00" in key:
            raise FormatError(
                f"member {display_name(entry.name)}: xattr name {display_name(key)} "
                "cannot be stored in a tar"
            )
        records.append((b"SCHILY.xattr." + key, value))
    block = _ustar(
        name,
        entry.mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
        entry.type,
        linkname,
        entry.devmajor,
        entry.devminor,
        prefix,
    )
    if not records:
        return block
    if not (_is_utf8(entry.name) and _is_utf8(entry.linkname)):
        # Tells GNU tar and tarfile the path values are raw bytes, not UTF-8.
        records.insert(0, (b"hdrcharset", b"BINARY"))
    data = b"".join(pax_record(key, value) for key, value in records)
    pax = _ustar(_PAX_NAME, 0, 0, 0, len(data), 0, b"x", b"")
    return b"%s%s%s%s" % (pax, data, bytes(-len(data) % BLOCK), block)


class _AbandonedError(Exception):
    """Marks a sink whose archive was given up: the worker drops what is still queued."""


class _Sink:
    """Hashes and writes on a worker thread, so sha256 (GIL released) runs beside the tar work.

    The queue is short, so memory stays at a few MiB and a slow ``out`` slows the producer.
    The first error from ``out`` is raised again in the producer at its next write or finish.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._writer = HashingWriter(out)
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            if len(data) < _GATHER:  # small archives never need the thread
                self._writer.write(data)
                return
            self._thread = threading.Thread(target=self._run, name="strata-tar-sink", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is None:
                try:
                    self._writer.write(data)
                except BaseException as e:
                    self._error = e

    def close(self, *, discard: bool = False) -> None:
        """Wait for everything queued to be written and raise the worker's error, if any;
        with ``discard`` (the archive is being abandoned) drop what is queued, raise nothing."""
        if discard and self._error is None:
            self._error = _AbandonedError()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None and not discard:
            raise self._error

    def stats(self, entries: int, content: int) -> LayerStats:
        return LayerStats(self._writer.digest(), self._writer.size, entries, content)


class TarWriter:
    """Writes canonical members to ``out``, hashing and counting the tar bytes on the way.

    Past the first MiB, hashing and writing to ``out`` move to one worker thread (calls to
    ``out.write`` stay sequential). Use the writer as a context manager (or call `close`), so
    that thread stops even when the archive is abandoned half-way.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._sink = _Sink(out)
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self.entries = 0
        self.content = 0

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(abandon=kind is not None)

    def close(self, *, abandon: bool = False) -> None:
        """Stop the worker (if any); nothing more can be written. ``abandon`` drops queued data
        and errors, for use when the archive is being given up anyway."""
        self._sink.close(discard=abandon)

    def _put(self, data: bytes | memoryview) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _GATHER:
            self._drain()

    def _drain(self) -> None:
        if self._pending:
            pending = self._pending
            self._sink.write(pending[0] if len(pending) == 1 else b"".join(pending))
            self._pending = []
            self._pending_size = 0

    def add(self, entry: TarEntry, data: bytes = b"") -> None:
        """Write ``entry`` with all of its data (regular files; empty for everything else)."""
        if len(data) != entry.size:
            raise SizeMismatch(
                f"member {display_name(entry.name)}: {len(data)} data bytes for size {entry.size}"
            )
        self._put(encode_header(entry))
        if data:
            self._put(data)
            pad = -len(data) % BLOCK
            if pad:
                self._put(bytes(pad))
            self.content += len(data)
        elif entry.type == SYMTYPE:
            self.content += len(entry.linkname)  # Docker's layer size counts link targets
        self.entries += 1

    def add_chunks(self, entry: TarEntry, chunks: Iterable[bytes | memoryview]) -> None:
        """Write ``entry`` with data streamed from ``chunks`` (which may reuse one buffer)."""
        self._put(encode_header(entry))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > entry.size:
                break
            piece = chunk
            if isinstance(chunk, memoryview) and not isinstance(chunk.obj, bytes):
                piece = bytes(chunk)  # the worker reads it later: never a reused buffer
            if len(piece) >= _GATHER:
                self._drain()
                self._sink.write(piece)
            else:
                self._put(piece)
        if written != entry.size:
            raise SizeMismatch(
                f"member {display_name(entry.name)}: data ended at {written} bytes "
                f"for size {entry.size}"
            )
        pad = -written % BLOCK
        if pad:
            self._put(bytes(pad))
        self.content += written
        self.entries += 1

    def finish(self) -> LayerStats:
        """End the archive (two zero blocks), wait for it to be written, say what it was."""
        self._put(END_OF_ARCHIVE)
        self._drain()
        self._sink.close()
        return self._sink.stats(self.entries, self.content)
