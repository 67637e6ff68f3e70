"""The hostile corpus, part three: members malformed at the byte level, broken streams, modes.

Registered into the same corpus as test_hostile's cases, and run by its runner.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

from strata.errors import FormatError, TooLarge
from strata.layer.entry import REGTYPE, TarEntry
from strata.layer.tarwriter import BLOCK, END_OF_ARCHIVE, encode_header, pax_record

from .hostile import Sandbox, case, regular, that
from .members import device, directory, file, tar


def _setuid(t: Path, mode: str) -> None:
    st = os.lstat(t / "su")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o6755, 1000, 1000)


@case(check=_setuid, root=True)
def setuid_file_keeps_mode(s: Sandbox) -> bytes:
    return tar(file("su", b"\x7fELF", 0o6755, uid=1000, gid=1000))


@case(error=FormatError)
def xattr_name_with_nul(s: Sandbox) -> bytes:
    # our writer refuses such a name: the PAX header is made by hand
    records = pax_record(b"SCHILY.xattr.user.a\x00b", b"1")
    pax = encode_header(TarEntry(b"././@PaxHeader", b"x", 0, 0, 0, 0, len(records)))
    body = records + bytes(-len(records) % BLOCK)
    head = encode_header(TarEntry(b"f", REGTYPE, 0o644, 0, 0, 0, 1))
    return pax + body + head + b"x" + bytes(BLOCK - 1) + END_OF_ARCHIVE


@case(error=FormatError)
def xattr_name_too_long(s: Sandbox) -> bytes:
    return tar(file("f", b"x", xattrs=((b"user." + b"n" * 300, b"1"),)))


@case(error=FormatError)
def xattr_value_too_large(s: Sandbox) -> bytes:
    return tar(file("f", b"x", xattrs=((b"user.big", bytes(70_000)),)))


@case(error=FormatError, root=True)
def uid_out_of_range(s: Sandbox) -> bytes:
    return tar(file("f", b"x", uid=2**40))


@case(error=FormatError)
def mtime_out_of_range(s: Sandbox) -> bytes:
    return tar(file("f", b"x", mtime=2**70))


def _base256(block: bytes, start: int, end: int, value: int) -> bytes:
    field = (value | (1 << (8 * (end - start) - 1))).to_bytes(end - start, "big")
    block = block[:start] + field + block[end:]
    block = block[:148] + b" " * 8 + block[156:]
    return block[:148] + b"%06o\x00 " % sum(block) + block[156:]


@case(error=FormatError, root=True)
def device_number_out_of_range(s: Sandbox) -> bytes:
    header = encode_header(device("dev/huge", 1, 3))
    return _base256(header, 329, 337, 2**60) + END_OF_ARCHIVE


# --- broken streams, duplicates, type changes ----------------------------------------------


@case(error=TooLarge, limit=1 << 20)
def gzip_bomb(s: Sandbox) -> bytes:
    return gzip.compress(tar(file("zeros", bytes(16 << 20))), compresslevel=9)


@case(error=FormatError)
def truncated_tar(s: Sandbox) -> bytes:
    return tar(file("big", os.urandom(10_000)))[:3000]


@case(error=FormatError)
def truncated_gzip(s: Sandbox) -> bytes:
    return gzip.compress(tar(file("f", os.urandom(50_000))))[:-100]


@case(error=FormatError)
def not_a_tar(s: Sandbox) -> bytes:
    return b"<html>rate limited</html>" + bytes(1000)


@case(error=FormatError)
def sparse_member_refused(s: Sandbox) -> bytes:
    return tar(TarEntry(b"sparse", b"S", 0o644, 0, 0, 0))


@case(check=lambda t, m: that(regular(t / "f", b"two") and regular(t / "g", b"g")))
def duplicate_entries_last_wins(s: Sandbox) -> bytes:
    return tar(file("f", b"one"), file("f", b"two"), file("g", b"g", 0o000), file("g", b"g"))


@case(check=lambda t, m: that(regular(t / "d", b"file") and regular(t / "f/x", b"x")))
def dir_replaced_by_file_and_back(s: Sandbox) -> bytes:
    return tar(
        directory("d"), file("d/x", b"x"), file("d", b"file"),
        file("f", b"file"), directory("f"), file("f/x", b"x"),
    )  # fmt: skip
