"""The canonical header encoder and the streaming reader, against Python's tarfile."""

from __future__ import annotations

import io
import random
import tarfile
from dataclasses import replace

import pytest

from strata.errors import FormatError, SizeMismatch
from strata.layer.entry import TarEntry, display_name
from strata.layer.tarreader import TarReader
from strata.layer.tarwriter import TarWriter, byte_sum, encode_header, pax_record
from tests.layer.trees import BINARY_XATTR, CAPABILITY, MTIME, info, tar_of

REG, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"


def entry(name: bytes, kind: bytes = REG, **fields: object) -> TarEntry:
    values: dict[str, object] = {"mode": 0o644, "uid": 0, "gid": 0, "mtime": MTIME}
    values.update(fields)
    return TarEntry(name, kind, **values)  # type: ignore[arg-type]


def write(*items: tuple[TarEntry, bytes]) -> bytes:
    out = io.BytesIO()
    with TarWriter(out) as writer:
        for e, data in items:
            writer.add(e, data)
        stats = writer.finish()
    assert stats.entries == len(items)
    return out.getvalue()


class Trickle(io.RawIOBase):
    """A stream that hands out a few bytes per read, to exercise every buffer boundary."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(self._step, len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        n = min(self._step, len(self._data)) if size < 0 else min(self._step, size)
        data = bytes(self._data[:n])
        self._data = self._data[n:]
        return data


def test_byte_sum_matches_sum() -> None:
    rng = random.Random(7)
    blocks = [bytes(512), b"\xff" * 512, b"\x01" + bytes(511), b"\x80" * 300 + bytes(212)]
    blocks += [rng.randbytes(512) for _ in range(300)]
    blocks += [bytes(rng.choice((0, 255, 128, 1)) for _ in range(512)) for _ in range(300)]
    for length in (257, 300, 400):  # counts where both candidates are possible
        blocks += [bytes(rng.choice((0, 255)) for _ in range(length)) for _ in range(100)]
    for block in blocks:
        assert byte_sum(block) == sum(block)


@pytest.mark.parametrize("size", range(1, 130))
def test_pax_record_length_counts_itself(size: int) -> None:
    for key in (b"path", b"SCHILY.xattr.user.x"):
        record = pax_record(key, b"v" * size)
        length, _, rest = record.partition(b" ")
        assert int(length) == len(record)
        assert rest.endswith(b"\n")


def test_plain_member_is_one_block() -> None:
    header = encode_header(entry(b"usr/bin/tool", size=10, mode=0o4755))
    assert len(header) == 512
    assert header[257:265] == b"ustar\x0000"
    assert header[265:329] == bytes(64)  # uname, gname empty
    assert header[148:156] == b"%06o\x00 " % (sum(header[:148]) + 256 + sum(header[156:]))


@pytest.mark.parametrize(
    ("e", "records"),
    [
        (entry(b"d" * 120 + b"/" + b"f" * 99), []),  # fits with the USTAR prefix
        (entry(b"d" * 120 + b"/" + b"f" * 101), [b"path"]),
        (entry(b"x" * 300), [b"path"]),
        (entry(b"caf\xc3\xa9"), [b"path"]),
        (entry(b"latin1-\xe9"), [b"hdrcharset", b"path"]),
        (entry(b"s", SYM, linkname=b"t" * 101), [b"linkpath"]),
        (entry(b"s", SYM, linkname=b"\xe2\x98\x83"), [b"linkpath"]),
        (entry(b"f", uid=2097152, gid=2097151), [b"uid"]),
        (entry(b"f", mtime=-1), [b"mtime"]),
        (entry(b"f", mtime=8**11), [b"mtime"]),
        (entry(b"f", size=8**11), [b"size"]),
        (entry(b"f", xattrs=((b"user.a", b"1"), (b"user.b", BINARY_XATTR))), [b"SCHILY.xattr."]),
    ],
    ids=lambda v: display_name(v.name)[:20] if isinstance(v, TarEntry) else str(v),
)
def test_pax_only_for_what_does_not_fit(e: TarEntry, records: list[bytes]) -> None:
    header = encode_header(e)
    if not records:
        assert len(header) == 512
        return
    assert header[156:157] == b"x"
    size = int(header[124:135], 8)
    data = header[512 : 512 + size]
    keys = [line.partition(b" ")[2].partition(b"=")[0] for line in data.split(b"\n") if line]
    for want, got in zip(records, keys, strict=False):
        assert got.startswith(want)
    assert len(header) == 512 + -(-size // 512) * 512 + 512


def test_tarfile_reads_every_encoding_back() -> None:
    items = [
        (entry(b"dir", DIR, mode=0o2775, uid=1234, gid=5678), b""),
        (entry(b"dir/" + b"n" * 150, size=5, mode=0o755), b"12345"),
        (entry(b"x" * 300, size=0), b""),
        (entry(b"caf\xc3\xa9 \xe2\x98\x83", size=1), b"c"),
        (entry(b"latin1-\xe9"), b""),
        (entry(b"link", LNK, linkname=b"x" * 300), b""),
        (entry(b"sym", SYM, linkname=b"/abs/" + b"t" * 200), b""),
        (entry(b"null", CHR, devmajor=1, devminor=3, mode=0o666), b""),
        (entry(b"loop", BLK, devmajor=7, devminor=1048575), b""),
        (entry(b"fifo", FIFO), b""),
        (entry(b"big-ids", uid=3_000_000, gid=2**32 - 2), b""),
        (entry(b"old", mtime=-86400), b""),
        (entry(b"future", mtime=2**40), b""),
        (
            entry(b"ping", size=4, mode=0o4755, xattrs=((b"security.capability", CAPABILITY),)),
            b"ping",
        ),
        (entry(b"bin", xattrs=((b"user.binary", BINARY_XATTR),)), b""),
    ]
    data = write(*items)
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        got = tf.getmembers()
        assert len(got) == len(items)
        for m, (e, payload) in zip(got, items, strict=True):
            assert m.name.encode("utf-8", "surrogateescape") == e.name
            assert m.linkname.encode("utf-8", "surrogateescape") == e.linkname
            assert (m.type, m.mode, m.uid, m.gid, int(m.mtime), m.size) == (
                e.type,
                e.mode,
                e.uid,
                e.gid,
                e.mtime,
                e.size,
            )
            assert (m.uname, m.gname) == ("", "")
            if e.type in (CHR, BLK):
                assert (m.devmajor, m.devminor) == (e.devmajor, e.devminor)
            xattrs = {
                k[len("SCHILY.xattr.") :].encode(): v.encode("utf-8", "surrogateescape")
                for k, v in m.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            }
            assert xattrs == dict(e.xattrs)
            if m.isreg():
                f = tf.extractfile(m)
                assert f is not None and f.read() == payload
    # and our reader reads it back to the very same entries
    back = list(TarReader(io.BytesIO(data), source="t"))
    expected = [e if e.type != DIR else replace(e, name=e.name + b"/") for e, _ in items]
    assert back == expected


def test_writer_checks_data_length() -> None:
    with TarWriter(io.BytesIO()) as writer, pytest.raises(SizeMismatch):
        writer.add(entry(b"f", size=3), b"ab")
    with TarWriter(io.BytesIO()) as writer, pytest.raises(SizeMismatch):
        writer.add_chunks(entry(b"f", size=3), [b"ab", b"cd"])


def test_xattr_names_a_tar_cannot_hold() -> None:
    with pytest.raises(FormatError, match="cannot be stored in a tar"):
        encode_header(entry(b"f", xattrs=((b"user.a=b", b"1"),)))


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reader_agrees_with_tarfile(fmt: int) -> None:
    long_ok = "p" * 100 + "/" + "q" * 90  # USTAR needs the prefix; GNU uses a long name
    items = [
        (info("dir/", tarfile.DIRTYPE), b""),
        (info("dir/file", mode=0o640, uid=1000, gid=1000), b"x" * 1500),
        (info(long_ok), b"long"),
        (info("sym", tarfile.SYMTYPE, linkname="../target"), b""),
        (info("hard", tarfile.LNKTYPE, linkname="dir/file"), b""),
        (info("chr", tarfile.CHRTYPE, devmajor=4, devminor=64), b""),
        (info("fifo", tarfile.FIFOTYPE), b""),
        (info("empty"), b""),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        items += [
            (info("n" * 300), b"n"),
            (info("s2", tarfile.SYMTYPE, linkname="l" * 200), b""),
            (info("caf\u00e9", uid=2_500_000), b"u"),
        ]
    data = tar_of(*items, fmt=fmt)
    ours = TarReader(Trickle(data, 333), source="t")  # type: ignore[arg-type]
    got = []
    for m in ours:
        got.append((m, b"".join(bytes(c) for c in ours.chunks())))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        theirs = tf.getmembers()
        assert len(got) == len(theirs)
        for (m, payload), t in zip(got, theirs, strict=True):
            assert m.name.rstrip(b"/").decode() == t.name
            assert (m.type, m.mode, m.uid, m.gid, m.mtime, m.size) == (
                t.type,
                t.mode,
                t.uid,
                t.gid,
                int(t.mtime),
                t.size,
            )
            assert m.linkname.decode() == t.linkname
            assert (m.devmajor, m.devminor) == (t.devmajor, t.devminor)
            if t.isreg():
                f = tf.extractfile(t)
                assert f is not None and payload == f.read()
            else:
                assert payload == b""


def test_reader_skips_unread_data_and_survives_tiny_reads() -> None:
    big = random.Random(1).randbytes(3 << 20)
    data = write((entry(b"big", size=len(big)), big), (entry(b"after", size=2), b"ok"))
    for step in (1 << 20, 4096, 511):
        reader = TarReader(Trickle(data, step), source="t")  # type: ignore[arg-type]
        first, second = reader
        assert (first.name, second.name) == (b"big", b"after")
    reader = TarReader(Trickle(data, 5000), source="t")  # type: ignore[arg-type]
    it = iter(reader)
    next(it)
    assert b"".join(bytes(c) for c in reader.chunks()) == big
    next(it)
    assert reader.data() == b"ok"


def test_signed_checksum_and_v7_headers_are_read() -> None:
    data = bytearray(tar_of((info("caf\u00e9-\u00ff"), b"x"), fmt=tarfile.USTAR_FORMAT))
    header = data[:512]
    high = sum(1 for b in header[:148] + header[156:] if b >= 128)
    signed = sum(header[:148]) + sum(header[156:]) + 256 - 256 * high
    data[148:156] = b"%06o\x00 " % signed
    assert [m.name for m in TarReader(io.BytesIO(bytes(data)), source="t")] == [
        "caf\u00e9-\u00ff".encode()
    ]
    v7 = bytearray(tar_of((info("plain"), b"x"), fmt=tarfile.USTAR_FORMAT))
    v7[257:265] = bytes(8)  # no magic: an old V7 header
    v7[148:156] = b"%06o\x00 " % (sum(v7[:148]) + sum(v7[156:512]) + 256)
    (m,) = TarReader(io.BytesIO(bytes(v7)), source="t")
    assert (m.name, m.size) == (b"plain", 1)


def test_invalid_pax_records() -> None:
    for records in (b"5 a=b\n", b"x path=a\n", b"11 path=a\nxx", b"9 nokey\n", b"12 path=a\x00b\n"):
        header = encode_header(entry(b"x" * 300))
        size = int(header[124:135], 8)
        pax_block = bytearray(header[:512])
        pax_block[124:136] = b"%011o\x00" % len(records)
        pax_block[148:156] = b"%06o\x00 " % (sum(pax_block[:148]) + sum(pax_block[156:]) + 256)
        body = records + bytes(-len(records) % 512)
        rest = header[512 + -(-size // 512) * 512 :]
        data = bytes(pax_block) + body + rest + bytes(1024)
        with pytest.raises(FormatError, match=r"^t: (invalid PAX|PAX path with a NUL)"):
            list(TarReader(io.BytesIO(data), source="t"))
