"""Any tar stream re-emitted in the canonical layer form, hostile names refused on the way.

Normalising makes a foreign tar (``image import``, a pulled layer) look exactly as if
`generate` had written it: same header form, so the same files in the same order give the same
diff ID. Names are made relative and clean, ``..`` stopping at the root as in a chroot (where
Docker's ``import`` applies the tar, and as containerd cleans names), so ``../x`` is ``x``;
a member naming the root is dropped, as both do. Whiteout files pass through untouched: they
are data for the applier.
"""

from __future__ import annotations

from typing import BinaryIO, Final

from strata.errors import FormatError
from strata.layer.entry import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
    display_name,
    keep_xattr,
)
from strata.layer.resolve import clean
from strata.layer.stats import LayerStats
from strata.layer.tarreader import TarReader
from strata.layer.tarwriter import TarWriter

# Regular files up to this size are copied as one piece with their header.
_SMALL: Final = 256 * 1024


def clean_name(name: bytes) -> bytes:
    """``name`` made relative and canonical (no ``/``, ``.``, ``..`` or empty parts), ``..``
    stopping at the root as in a chroot (containerd and Docker apply such names inside the
    root); ``b""`` for the root itself."""
    return b"/".join(clean(name))


def normalize_tar(src: BinaryIO, out: BinaryIO, *, source: str) -> LayerStats:
    """Read the uncompressed tar on ``src``, write its canonical form to ``out``.

    Every member is checked: names are cleaned (``..`` stops at the root, absolute names and
    ``./`` prefixes are made relative); a member naming the root (``.``, ``/``, ``a/..``) is
    dropped (so is an empty name); a hardlink must name an earlier non-directory member;
    symlinks to nothing and unsupported member types -> `FormatError`, as is a truncated or
    corrupt tar. xattrs are kept (overlayfs and SELinux ones dropped), owner names and
    sub-second times are not.
    """
    with TarWriter(out) as writer:
        return _normalize(TarReader(src, source=source), writer, source)


def _normalize(reader: TarReader, writer: TarWriter, source: str) -> LayerStats:
    # Earlier non-directory members: what a hardlink may point at.
    linkable: set[bytes] = set()
    for member in reader:
        name = b"/".join(clean(member.name))
        typeflag = member.type
        if not name:
            continue  # the root: never replaced, as containerd and Docker leave it
        linkname = b""
        if typeflag == LNKTYPE:
            target = b"/".join(clean(member.linkname))
            if target not in linkable:
                raise FormatError(
                    f"{source}: member {display_name(member.name)}: hardlink target "
                    f"{display_name(member.linkname)} is not an earlier file of this layer"
                )
            linkname = target
        elif typeflag == SYMTYPE:
            if not member.linkname:
                raise FormatError(
                    f"{source}: member {display_name(member.name)}: symlink with an empty target"
                )
            linkname = member.linkname
        device = typeflag in (CHRTYPE, BLKTYPE)
        xattrs = member.xattrs
        if typeflag == LNKTYPE:
            xattrs = ()  # they live on the inode, written with the link's target
        elif xattrs and not all(keep_xattr(key) for key, _ in xattrs):
            xattrs = tuple(pair for pair in xattrs if keep_xattr(pair[0]))
        entry = TarEntry(
            name,
            typeflag,
            member.mode,
            member.uid,
            member.gid,
            member.mtime,
            member.size,
            linkname,
            member.devmajor if device else 0,
            member.devminor if device else 0,
            xattrs,
        )
        try:
            if typeflag == REGTYPE and member.size > _SMALL:
                writer.add_chunks(entry, reader.chunks())
            elif typeflag == REGTYPE:
                writer.add(entry, reader.data())
            else:
                writer.add(entry)
        except FormatError as e:
            if str(e).startswith(source):
                raise
            raise FormatError(f"{source}: {e}") from None
        if typeflag == DIRTYPE:
            linkable.discard(name)
        else:
            linkable.add(name)
    return writer.finish()
