"""Unpack an image's layers into snapshots, each layer once, keyed by its chain ID.

A layer's snapshot is shared by every image and container that stacks the same layers below it:
its key is the OCI chain ID (``sha256(parent_chain + " " + diff_id)``), which names the whole
stack up to and including that layer, not just the layer (`strata.diff.chain`). Unpacking is
idempotent and safe to run from two processes at once: each applies its layer through
`strata.diff.apply` into its own active snapshot, and the loser of the final commit discards its
copy.
"""

from __future__ import annotations

import sqlite3
from functools import partial

from strata.diff.apply import apply_to_snapshot, has_snapshot
from strata.diff.chain import INIT_PREFIX, SNAPSHOT_PREFIX, chain_ids, layer_key
from strata.digest import Digest
from strata.errors import Conflict, FormatError, StrataError
from strata.image.scratch import owned_name
from strata.image.store import Image, ImageStore
from strata.snapshot import Kind, Snapshotter
from strata.store.leases import held

__all__ = ["collect_snapshots", "unpack"]


def unpack(images: ImageStore, snapshotter: Snapshotter, image: Image) -> str | None:
    """Make sure every layer of ``image`` is extracted; return the top snapshot key.

    Returns None for an image with no layers (a container then starts from an empty snapshot).
    """
    manifest = images.manifest(image)
    # The config's diff IDs are the image's identity (OCI): chain IDs come from them, and
    # each layer is checked against its claim while it is extracted.
    diff_ids = images.config(image).rootfs.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise FormatError(
            f"image {image.id.short}: {len(manifest.layers)} layers but"
            f" {len(diff_ids)} diff IDs in its config"
        )
    parent: str | None = None
    for layer, diff_id, chain_id in zip(
        manifest.layers, diff_ids, chain_ids(diff_ids), strict=True
    ):
        key = layer_key(chain_id)
        if not has_snapshot(snapshotter, key):
            _extract(images, snapshotter, layer.digest, diff_id, key, parent)
        parent = key
    return parent


def _extract(
    images: ImageStore,
    snapshotter: Snapshotter,
    blob: Digest,
    diff_id: Digest,
    key: str,
    parent: str | None,
) -> None:
    with images.content.open(blob) as src:
        apply_to_snapshot(
            snapshotter,
            src,
            key=key,
            parent=parent,
            active=owned_name("extract"),  # a killed extraction's is debris at once
            diff_id=diff_id,
            source=f"layer {blob}",
        )


def collect_snapshots(images: ImageStore, snapshotter: Snapshotter) -> int:
    """Remove the extracted layers (and init layers) no image stacks any more.

    A snapshot is live when some image's chain IDs name it or a live lease holds its key (a
    build holds the layers it stacks on and makes before any image names them); one with
    children (a container's layer, or layers above it) is never removed: the snapshotter
    refuses, and it stays until they go. The lease, and whether any image was recorded since the
    live set was made, are asked again inside each removal's transaction, so neither a key
    leased nor an image recorded after the first look loses a snapshot. Returns how many
    snapshots were removed.
    """
    live = {f"{INIT_PREFIX}scratch"}
    listed = images.all()
    known = {str(image.manifest_digest) for image in listed}
    for image in listed:
        try:
            diff_ids = images.config(image).rootfs.diff_ids
        except StrataError:
            continue  # a broken image keeps nothing alive
        keys = [layer_key(chain_id) for chain_id in chain_ids(diff_ids)]
        live.update(keys)
        if keys:
            live.add(f"{INIT_PREFIX}{keys[-1]}")
    removed = 0
    progress = True
    while progress:  # top layers first make room for the ones below them
        progress = False
        for info in list(snapshotter.walk()):
            if info.kind is not Kind.COMMITTED or info.key in live:
                continue
            if not info.key.startswith((SNAPSHOT_PREFIX, INIT_PREFIX)):
                continue
            try:
                snapshotter.remove(info.key, unless=partial(_kept, info.key, known))
            except Conflict:
                continue
            removed += 1
            progress = True
    return removed


def _kept(key: str, known: set[str], conn: sqlite3.Connection) -> bool:
    """Whether snapshot ``key`` must stay after all (asked inside the removing transaction):
    a live lease holds it, or an image was recorded since the live set was made (a pull's
    lease on the snapshots it made ends once its image is recorded, and that image may stack
    this one: the next collection knows it)."""
    if key in held(conn, "snapshot"):
        return True
    return any(row[0] not in known for row in conn.execute("SELECT manifest_digest FROM images"))
