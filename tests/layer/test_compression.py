"""Compression: detection, round trips, reproducible bytes, the bomb bound, corrupt input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from typing import Any, cast

import pytest
import zstandard

from strata.errors import FormatError, InvalidArgument, TooLarge
from strata.layer import compression
from strata.layer.compression import (
    Compression,
    detect,
    open_compressed,
    open_decompressed,
)

# Over two gzip blocks (1 MiB each), part incompressible, part very compressible.
DATA = os.urandom(1 << 20) + bytes(1 << 20) + b"layer bytes " * 30_000
# bzip2 and xz are slow and only there for completeness: a smaller sample keeps tests quick.
SMALL = DATA[:200_000] + DATA[-200_000:]
KINDS = list(Compression)


def sample(kind: Compression) -> bytes:
    return SMALL if kind in (Compression.BZIP2, Compression.XZ) else DATA


COMPRESSED = [c for c in Compression if c is not Compression.NONE]


def compress(data: bytes, kind: Compression, piece: int = 1 << 16, **kw: int) -> bytes:
    out = io.BytesIO()
    writer = open_compressed(out, kind, **kw)
    for i in range(0, len(data), piece):
        writer.write(data[i : i + piece])
    writer.close()
    assert not out.closed
    return out.getvalue()


def decompress(blob: bytes, **kw: int | None) -> bytes:
    reader = open_decompressed(io.BytesIO(blob), source="blob", **kw)
    with reader:
        return reader.read()


def test_detect_magic_numbers() -> None:
    assert detect(b"\x1f\x8b\x08\x00\x00\x00") is Compression.GZIP
    assert detect(b"\x28\xb5\x2f\xfd\x00\x00") is Compression.ZSTD
    assert detect(struct.pack("<I", 0x184D2A5E) + b"\x00\x00") is Compression.ZSTD
    assert detect(b"BZh91A") is Compression.BZIP2
    assert detect(b"\xfd7zXZ\x00") is Compression.XZ
    assert detect(b"etc/\x00\x00") is Compression.NONE
    assert detect(b"BZhello") is Compression.NONE  # a tar whose first name starts "BZh"
    assert detect(b"") is Compression.NONE
    assert detect(b"\x28\xb5") is Compression.NONE


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(kind: Compression) -> None:
    data = sample(kind)
    blob = compress(data, kind)
    assert detect(blob[:6]) is kind
    assert decompress(blob) == data
    reader = cast(io.RawIOBase, open_decompressed(io.BytesIO(blob), source="blob"))
    buffer = bytearray(100_000)
    got = bytearray()
    while n := reader.readinto(buffer):
        got += buffer[:n]
    assert bytes(got) == data


@pytest.mark.parametrize("kind", KINDS)
def test_empty_input_round_trip(kind: Compression) -> None:
    assert decompress(compress(b"", kind)) == b""


def test_peers_read_what_we_write() -> None:
    assert gzip.decompress(compress(DATA, Compression.GZIP)) == DATA
    assert bz2.decompress(compress(SMALL, Compression.BZIP2)) == SMALL
    assert lzma.decompress(compress(SMALL, Compression.XZ)) == SMALL
    zstd_blob = compress(DATA, Compression.ZSTD)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd_blob) == DATA
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-t", "-q"], input=zstd_blob, check=True)
    if shutil.which("gzip"):
        gz = compress(DATA, Compression.GZIP)
        subprocess.run(["gzip", "-t"], input=gz, check=True)


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.ZSTD])
def test_same_input_same_bytes_however_written(
    kind: Compression, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = compress(DATA, kind, piece=1 << 16)
    assert compress(DATA, kind, piece=10_000) == reference
    assert compress(DATA, kind, piece=len(DATA)) == reference
    # Neither the number of compression threads nor the machine's cores change the bytes.
    monkeypatch.setattr(compression, "_threads", lambda: 1)
    assert compress(DATA, kind, piece=3_000) == reference
    monkeypatch.setattr(compression, "_threads", lambda: 3)
    assert compress(DATA, kind, piece=777_777) == reference


def test_gzip_header_has_no_time_and_no_name() -> None:
    class Named(io.BytesIO):
        name = "/tmp/layer.tar.gz"

    out = Named()
    writer = open_compressed(out, Compression.GZIP)
    writer.write(b"x" * 1000)
    writer.close()
    header = out.getvalue()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # no FNAME, FCOMMENT, FEXTRA
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert out.getvalue().count(b"\x1f\x8b\x08") == 1  # one member, no empty trailing one


def test_flush_does_not_change_the_stream() -> None:
    out = io.BytesIO()
    writer = open_compressed(out, Compression.ZSTD)
    writer.write(DATA[:1000])
    writer.flush()
    writer.write(DATA[1000:])
    writer.close()
    assert out.getvalue() == compress(DATA, Compression.ZSTD)


def test_zstd_frame_options() -> None:
    blob = compress(b"abc" * 1000, Compression.ZSTD)
    params = zstandard.get_frame_parameters(blob)
    assert params.has_checksum
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN


@pytest.mark.parametrize(
    ("kind", "level"),
    [(Compression.GZIP, 4), (Compression.GZIP, 0), (Compression.ZSTD, 23), (Compression.XZ, 10)],
)
def test_bad_level(kind: Compression, level: int) -> None:
    with pytest.raises(InvalidArgument, match=f"invalid {kind.value} compression level"):
        open_compressed(io.BytesIO(), kind, level=level)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_isal_level(level: int) -> None:
    assert decompress(compress(DATA, Compression.GZIP, level=level)) == DATA


@pytest.mark.parametrize("kind", KINDS)
def test_destination_errors_reach_the_caller(kind: Compression) -> None:
    data = sample(kind)

    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):  # and nothing hangs in a worker
        writer = open_compressed(Full(), kind)
        writer.write(data)
        writer.close()


def test_multi_frame_and_skippable_zstd() -> None:
    zc = zstandard.ZstdCompressor()
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"meta"
    blob = skippable + zc.compress(DATA[:5000]) + skippable + zc.compress(DATA[5000:])
    assert decompress(blob) == DATA


@pytest.mark.parametrize(
    "options",
    [
        {"write_content_size": True, "write_checksum": False},
        {"write_content_size": True, "write_checksum": True},
        {"write_content_size": False, "write_checksum": False, "level": 19},
    ],
)
@pytest.mark.parametrize("size", [0, 1, 200, 70_000, 2_000_000])
def test_zstd_frame_header_variants(options: dict[str, Any], size: int) -> None:
    # Content sizes of every width, single-segment frames, with and without checksums.
    data = DATA[:size]
    blob = zstandard.ZstdCompressor(**options).compress(data)
    assert decompress(blob) == data
    if size:
        with pytest.raises(FormatError, match="truncated zstd stream"):
            decompress(blob[:-1])


def test_zstd_cli_output() -> None:
    if not shutil.which("zstd"):
        pytest.skip("zstd CLI not installed")
    for args in (["-3"], ["-19", "--no-check"], ["--long=27", "-1"]):
        blob = subprocess.run(["zstd", "-c", *args], input=DATA, capture_output=True, check=True)
        assert decompress(blob.stdout) == DATA


def test_multi_member_gzip() -> None:
    blob = gzip.compress(DATA[:5000]) + gzip.compress(DATA[5000:])
    assert decompress(blob) == DATA


def test_gzip_bomb_is_stopped() -> None:
    bomb = compress(bytes(50_000_000), Compression.GZIP)
    with pytest.raises(TooLarge, match=r"^blob: decompressed size over 1000000 bytes$"):
        decompress(bomb, limit=1_000_000)


class LazyBomb(io.RawIOBase):
    """A gzip stream of 64 GiB of zeros, compressed only as far as it is read."""

    def __init__(self) -> None:
        self.pulled = 0
        self._chunks = self._generate()
        self._left = b""

    def _generate(self) -> Iterator[bytes]:
        deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 24)
        for _ in range(4096):
            yield deflate.compress(zeros)
        yield deflate.flush()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        self.pulled += n
        return n


def test_bomb_stops_early_without_expanding_it_all() -> None:
    bomb = LazyBomb()
    reader = open_decompressed(bomb, limit=4 << 20, source="bomb.gz")  # type: ignore[arg-type]
    with pytest.raises(TooLarge):
        while reader.read(1 << 16):
            pass
    # 64 GiB of zeros is ~64 MiB compressed; only the first few hundred KiB were pulled.
    assert bomb.pulled < 2 << 20


@pytest.mark.parametrize("kind", COMPRESSED)
def test_limit_is_exact(kind: Compression) -> None:
    data = sample(kind)
    blob = compress(data, kind)
    assert decompress(blob, limit=len(data)) == data
    with pytest.raises(TooLarge):
        decompress(blob, limit=len(data) - 1)


def test_limit_applies_to_uncompressed_input() -> None:
    with pytest.raises(TooLarge):
        decompress(DATA, limit=1000)


@pytest.mark.parametrize("kind", COMPRESSED)
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_stream(kind: Compression, cut: float) -> None:
    data = sample(kind)
    blob = compress(data, kind)
    with pytest.raises(FormatError, match=rf"^blob: truncated {kind.value} stream$"):
        decompress(blob[: int(len(blob) * cut)])


@pytest.mark.parametrize("kind", COMPRESSED)
def test_truncated_to_the_header(kind: Compression) -> None:
    data = sample(kind)
    blob = compress(data, kind)
    with pytest.raises(FormatError, match=r"^blob: "):
        decompress(blob[:8])


@pytest.mark.parametrize("kind", COMPRESSED)
def test_corrupt_stream(kind: Compression) -> None:
    data = sample(kind)
    blob = bytearray(compress(data, kind))
    middle = len(blob) // 3
    blob[middle : middle + 64] = bytes(64)
    with pytest.raises(FormatError, match=rf"^blob: (corrupt|truncated) {kind.value} stream"):
        decompress(bytes(blob))


def test_gzip_bad_crc() -> None:
    blob = bytearray(compress(DATA, Compression.GZIP))
    blob[-6] ^= 0xFF
    with pytest.raises(FormatError, match=r"^blob: corrupt gzip stream: .*CRC"):
        decompress(bytes(blob))


def test_data_after_zstd_stream() -> None:
    blob = compress(DATA, Compression.ZSTD) + b"not a frame"
    with pytest.raises(FormatError, match=r"^blob: corrupt zstd stream"):
        decompress(blob)


def test_source_errors_are_not_disguised() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            raise ConnectionResetError("peer went away")

    blob = compress(DATA, Compression.GZIP)

    class FailsLater(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 1000:
                raise ConnectionResetError("peer went away")
            return super().read(size)

    with pytest.raises(ConnectionResetError):
        open_decompressed(Failing(), source="net")  # type: ignore[arg-type]
    with pytest.raises(ConnectionResetError):
        open_decompressed(FailsLater(blob), source="net").read()


def test_reads_are_full_until_the_end() -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(min(1000, size if size is not None and size >= 0 else 1000))

    for kind in (Compression.NONE, Compression.GZIP):
        reader = open_decompressed(Trickle(compress(DATA, kind)), source="blob")
        assert reader.read(0) == b""
        assert reader.read(2) == DATA[:2]
        assert reader.read(4998) == DATA[2:5000]
        assert reader.read(3 << 20) == DATA[5000 : 5000 + (3 << 20)]
        assert reader.read() == DATA[5000 + (3 << 20) :]
        assert reader.read(10) == b""


def test_close_leaves_source_open() -> None:
    src = io.BytesIO(compress(DATA, Compression.GZIP))
    reader = open_decompressed(src, source="blob")
    reader.read(10)
    reader.close()
    assert not src.closed
