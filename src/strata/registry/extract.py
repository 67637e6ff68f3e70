"""A pulled layer extracted into its snapshot, or its diff ID checked without extracting.

Snapshots are keyed by chain ID as `strata.image.unpack` keys them, so `run` finds the layers a
pull extracted. The bytes come from the content store, or from a `Tee` while the blob is still
downloading; either way the snapshot is committed only once the blob is verified and its
uncompressed tar hashes to the diff ID the config claims.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import DigestMismatch, NotFound, StrataError
from strata.oci.descriptor import Descriptor
from strata.registry.progress import EXTRACTING, TransferEvents
from strata.registry.tee import Tee
from strata.snapshot import Snapshotter

__all__ = ["LayerFacts", "check_diff_id", "extract_layer", "snapshot_exists"]


@dataclass(frozen=True, slots=True)
class LayerFacts:
    """A verified layer: its diff ID, uncompressed size and file bytes (None: not counted)."""

    diff_id: Digest
    size: int
    content_size: int | None


class _CountingReader(io.RawIOBase):
    """A blob file whose reads are reported (extraction progress)."""

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


def snapshot_exists(snapshotter: Snapshotter, key: str) -> bool:
    try:
        snapshotter.stat(key)
    except NotFound:
        return False
    return True


def extract_layer(
    content: LocalContentStore,
    snapshotter: Snapshotter,
    desc: Descriptor,
    diff_id: Digest,
    key: str,
    parent: str | None,
    events: TransferEvents,
    *,
    tee: Tee | None = None,
    download: Future[None] | None = None,
) -> LayerFacts:
    """Apply the blob ``desc`` into a new snapshot ``key`` on ``parent``, its diff ID checked.

    With a ``tee`` the bytes come from the ``download`` as it goes, else from the store.
    """
    from strata.layer.apply import apply_layer
    from strata.layer.compression import DEFAULT_DECOMPRESS_LIMIT

    layer = desc.digest.short
    active = f"extract-{uuid.uuid4().hex}"
    snapshotter.prepare(active, parent)
    try:
        mode: Literal["overlay", "delete"] = (
            "overlay" if snapshotter.diff_kind == "overlay" else "delete"
        )
        with contextlib.ExitStack() as stack:
            if tee is not None:
                stack.callback(tee.abandon)  # the download never waits for a dead reader
                src = tee.reader()
            else:
                events.start(layer, EXTRACTING, desc.size)
                blob = stack.enter_context(content.open(desc.digest))
                src = cast(BinaryIO, _CountingReader(blob, lambda n: events.advance(layer, n)))
            try:
                stats = apply_layer(
                    src,
                    snapshotter.upper(active),
                    whiteouts=mode,
                    source=f"layer {desc.digest}",
                    limit=DEFAULT_DECOMPRESS_LIMIT,
                    diff_id=diff_id,
                )
            except StrataError:
                if download is not None and tee is not None:
                    tee.abandon()
                    download.result()  # the download's own error says more, if it failed
                raise
        if download is not None:
            download.result()
        try:
            snapshotter.commit(key, active)
        except StrataError:
            if not snapshot_exists(snapshotter, key):
                raise
            snapshotter.remove(active)  # another process unpacked the same stack first
    except BaseException:
        if snapshot_exists(snapshotter, active):
            snapshotter.remove(active)
        raise
    return LayerFacts(diff_id, stats.size, stats.bytes)


def check_diff_id(content: LocalContentStore, desc: Descriptor, diff_id: Digest) -> LayerFacts:
    """Decompress and hash a blob that needs no extraction, against the config's claim."""
    from strata.image.archive.diffid import hash_decompressed

    with content.open(desc.digest) as blob:
        got, size = hash_decompressed(blob, f"layer {desc.digest}")
    if got != diff_id:
        raise DigestMismatch(
            f"layer {desc.digest}: uncompressed tar is {got}, the config says {diff_id}"
        )
    return LayerFacts(diff_id, size, None)
