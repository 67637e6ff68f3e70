"""A pulled layer extracted into its snapshot, or its diff ID checked without extracting.

The extraction itself is `strata.diff.apply`'s, keyed by chain ID as `strata.image.unpack` keys
snapshots, so `run` finds the layers a pull extracted. What is the pull's own is where the bytes
come from: the content store (extraction progress reported), or a `Tee` while the blob is still
downloading; either way the snapshot is committed only once the blob is verified and its
uncompressed tar hashes to the diff ID the config claims.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from strata.content.local import LocalContentStore
from strata.diff.apply import apply_to_snapshot
from strata.digest import Digest
from strata.errors import DigestMismatch, StrataError
from strata.oci.descriptor import Descriptor
from strata.registry.progress import EXTRACTING, TransferEvents
from strata.registry.tee import Tee
from strata.snapshot import Snapshotter

__all__ = ["LayerFacts", "check_diff_id", "extract_layer"]


@dataclass(frozen=True, slots=True)
class LayerFacts:
    """A verified layer: its diff ID, uncompressed size and file bytes (None: not counted)."""

    diff_id: Digest
    size: int
    content_size: int | None


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
    layer = desc.digest.short

    def verified() -> None:
        if tee is not None:
            tee.abandon()  # read to its end: the download never waits for us again
        if download is not None:
            download.result()  # the blob is whole and verified, or this raises why not

    with contextlib.ExitStack() as stack:
        src: BinaryIO
        progress: Callable[[int], None] | None = None
        if tee is not None:
            stack.callback(tee.abandon)  # the download never waits for a dead reader
            src = tee.reader()
        else:
            events.start(layer, EXTRACTING, desc.size)
            src = stack.enter_context(content.open(desc.digest))
            progress = partial(events.advance, layer)
        try:
            stats = apply_to_snapshot(
                snapshotter,
                src,
                key=key,
                parent=parent,
                active=f"extract-{uuid.uuid4().hex}",
                diff_id=diff_id,
                source=f"layer {desc.digest}",
                progress=progress,
                verified=verified,
            )
        except StrataError:
            if download is not None and tee is not None:
                tee.abandon()
                download.result()  # the download's own error says more, if it failed
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
