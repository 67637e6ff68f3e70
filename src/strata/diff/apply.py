"""The one unpacker: a layer stream applied onto a new snapshot, safely.

Every path that turns a layer blob into a snapshot comes here: `strata.image.unpack` (by chain
ID, from the content store) and a pull (from the content store, or from the download as it
arrives). The layer is applied into an active snapshot of the caller's naming on ``parent``, its
uncompressed tar checked against the diff ID its image claims, and only then committed as
``key``: snapshots are shared by chain ID, which rests on those claims, so a layer that is not
what its image says must never become one. If another process committed ``key`` first, ours is
dropped and theirs kept (same chain ID, same content). On any failure the active snapshot is
removed, so a failed apply leaves nothing; a killed one leaves only the active snapshot, which its
owned name (`strata.store.owned`) marks as debris.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, cast

from strata.digest import Digest
from strata.errors import NotFound, StrataError
from strata.snapshot import Snapshotter

if TYPE_CHECKING:
    from strata.layer.apply import ApplyStats, Whiteouts

__all__ = ["apply_to_snapshot", "has_snapshot"]

log = logging.getLogger(__name__)


def has_snapshot(snapshotter: Snapshotter, key: str) -> bool:
    """Whether a snapshot ``key`` exists (of any kind)."""
    try:
        snapshotter.stat(key)
    except NotFound:
        return False
    return True


def _whiteouts(snapshotter: Snapshotter) -> Whiteouts:
    """How deletions are written into ``snapshotter``'s directories: overlayfs's own whiteouts
    in an upper dir, or removed outright from a full copy."""
    return "overlay" if snapshotter.diff_kind == "overlay" else "delete"


class _CountingReader(io.RawIOBase):
    """A source whose reads are reported (progress)."""

    def __init__(self, src: BinaryIO, report: Callable[[int], None]) -> None:
        super().__init__()
        self._src = src
        self._report = report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._src.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        if data:
            self._report(len(data))
        return len(data)


def apply_to_snapshot(
    snapshotter: Snapshotter,
    src: BinaryIO,
    *,
    key: str,
    parent: str | None,
    active: str,
    diff_id: Digest,
    source: str,
    progress: Callable[[int], None] | None = None,
    verified: Callable[[], None] | None = None,
) -> ApplyStats:
    """Apply the layer blob on ``src`` (plain or compressed tar) as snapshot ``key`` on ``parent``.

    The work is done in the active snapshot ``active`` (the caller names it, so that a killed
    command's is recognisably its own). ``progress`` is told how many bytes of ``src`` each read
    took; ``verified`` is called once the layer is applied and its diff ID checked, before the
    commit: a source that is still being verified (a download) raises there, and nothing is
    committed. Raises `DigestMismatch` if the tar is not ``diff_id``, `UnsafePath` or
    `FormatError` for a hostile or malformed layer (naming ``source``), `TooLarge` past the
    decompression limit; the active snapshot is removed in every case.
    """
    # The applier and the compression libraries load only when a layer must be applied: a warm
    # `strata run` never pays for them.
    from strata.layer.apply import apply_layer
    from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT

    snapshotter.prepare(active, parent)
    try:
        if progress is not None:
            src = cast(BinaryIO, _CountingReader(src, progress))
        stats = apply_layer(
            src,
            snapshotter.upper(active),
            whiteouts=_whiteouts(snapshotter),
            source=source,
            limit=DEFAULT_DECOMPRESS_LIMIT,
            diff_id=diff_id,
        )
        if verified is not None:
            verified()
        try:
            snapshotter.commit(key, active)
        except StrataError:
            if not has_snapshot(snapshotter, key):
                raise
            # Another process applied the same stack first; theirs is as good as ours.
            log.debug("snapshot %s already committed by another process", key)
            snapshotter.remove(active)
    except BaseException:
        if has_snapshot(snapshotter, active):
            snapshotter.remove(active)
        raise
    return stats
