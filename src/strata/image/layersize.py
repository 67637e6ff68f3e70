"""A layer's size as Docker shows it: the one figure ``image ls``, ``inspect`` and ``system df``
agree on, however the layer arrived.

Docker 20.10 sizes a layer by walking its extracted directory (moby's ``directory.Size``): the
bytes of its regular files and the length of its symlinks' targets, each inode once, never the
directories. From a tar that is the data of regular members plus the targets of symlink
members (a hardlink member adds nothing: its inode was counted with its first name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT, open_decompressed
from strata.layer.entry import SYMTYPE, TarEntry
from strata.layer.tarreader import TarReader

if TYPE_CHECKING:
    from strata.content.local import LocalContentStore
    from strata.digest import Digest


def entry_size(entry: TarEntry) -> int:
    """What one tar member adds to Docker's layer size."""
    return len(entry.linkname) if entry.type == SYMTYPE else entry.size


def count_layer_size(content: LocalContentStore, blob: Digest) -> int:
    """Docker's size of the layer stored as ``blob`` (compressed or not); reads it once."""
    source = f"layer {blob}"
    total = 0
    with (
        content.open(blob) as stream,
        open_decompressed(stream, limit=DEFAULT_DECOMPRESS_LIMIT, source=source) as tar,
    ):
        for entry in TarReader(tar, source=source):
            total += entry_size(entry)
    return total
