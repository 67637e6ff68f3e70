"""One tar member as a value: the fields a canonical layer tar keeps, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

REGTYPE: Final = b"0"
LNKTYPE: Final = b"1"
SYMTYPE: Final = b"2"
CHRTYPE: Final = b"3"
BLKTYPE: Final = b"4"
DIRTYPE: Final = b"5"
FIFOTYPE: Final = b"6"

MEMBER_TYPES: Final = frozenset({REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE})

Xattrs = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class TarEntry:
    """A member of a layer tar.

    ``name`` is relative, ``/``-separated bytes (a directory's without the trailing slash the
    writer adds); ``linkname`` is a symlink's target or a hardlink's earlier member; ``xattrs``
    are (name, value) pairs sorted by name. ``size`` is the data length of regular files only.
    """

    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int = 0
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Xattrs = ()


# Host bookkeeping, not file content: overlayfs's own attributes (opaque, redirect, origin,
# metacopy) would change how a lower dir behaves once applied, and SELinux labels belong to the
# host that labelled the files.
_DROPPED_XATTR_PREFIXES: Final = (b"trusted.overlay.", b"user.overlay.")
_DROPPED_XATTRS: Final = frozenset({b"security.selinux"})


def keep_xattr(name: bytes) -> bool:
    """True if xattr ``name`` belongs in a layer (False for overlayfs and SELinux attributes)."""
    return not name.startswith(_DROPPED_XATTR_PREFIXES) and name not in _DROPPED_XATTRS


_DISPLAY_MAX: Final = 256


def display_name(name: bytes) -> str:
    """``name`` as one short printable line for messages (odd bytes and controls escaped)."""
    if len(name) > _DISPLAY_MAX:
        return display_name(name[:_DISPLAY_MAX]) + f"...({len(name)} bytes)"
    text = name.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
