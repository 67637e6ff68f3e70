"""The images a build makes: one per step, each its parent plus a layer or a config change.

A layer step's snapshot is committed in place as the new layer's snapshot (keyed by chain ID),
so what a step wrote is never extracted again: the next step stacks on it at once. The layer
blob is the canonical tar of the snapshot's changes, written while hashing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from strata.diff.chain import chain_ids, layer_key
from strata.diff.compare import compare_snapshot
from strata.digest import Digest
from strata.errors import Conflict, NoSpace, StrataError
from strata.image.create import NewImage, encode_image, store_image
from strata.image.model import ContentImage, LayerInfo
from strata.image.record import WriteRequest
from strata.image.store import Image, ImageLayer, ImageStore, now_rfc3339
from strata.oci.config import History, ImageConfig, RootFS
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import Reference
from strata.snapshot import Snapshotter
from strata.store.leases import Lease
from strata.store.space import no_space

if TYPE_CHECKING:
    from strata.builder.batch import StepBatch
    from strata.builder.hold import BuildHold


@dataclass(frozen=True, slots=True)
class StepImage:
    """The image a stage stands on after a step."""

    image: Image | None  # None: nothing stored yet (FROM scratch)
    config: ImageConfig
    layers: tuple[ImageLayer, ...]
    top: str | None  # snapshot key of the top layer (None: no layers, or not unpacked yet)
    parent: Digest | None = None  # the ID of the image the step made this one on
    # A metadata step's image taken from the cache has ``config`` as this build computed it:
    # the same run config, but not the stored history (times of the build that made it), so
    # that a rebuild of N metadata steps does not parse N configs of N entries each. This
    # reads the stored one, for whatever stands on it (`exact`).
    stored_config: Callable[[], ImageConfig] | None = None

    @property
    def id(self) -> str:
        return str(self.image.id) if self.image is not None else "scratch"

    def exact(self) -> StepImage:
        """This image with its stored config (itself, unless its config was computed)."""
        if self.stored_config is None:
            return self
        return replace(self, config=self.stored_config(), stored_config=None)


def write_snapshot_layer(
    images: ImageStore,
    snapshotter: Snapshotter,
    key: str,
    scratch: Path,
    clamp_mtime: int | None,
    hold: BuildHold,
) -> ImageLayer:
    """Store the changes of active snapshot ``key`` as an uncompressed layer blob, held by the
    build's lease (leased before the commit makes it visible; no image names it yet)."""
    try:
        with images.content.writer(f"build-{uuid.uuid4().hex}") as w:
            stats = compare_snapshot(snapshotter, key, w, scratch, clamp_mtime=clamp_mtime)  # type: ignore[arg-type]
            hold.add("blob", [str(stats.diff_id)])
            digest = w.commit(expected=stats.diff_id, size=stats.size)
    except NoSpace as err:
        # The writer has removed what it wrote; the layer is at least as large as what the
        # step changed, so that less what was written is the least still needed.
        try:
            needed: int | None = snapshotter.usage(key).size - err.written
        except StrataError:
            needed = None
        raise no_space("writing the layer of the step", needed=needed) from None
    return ImageLayer(digest, OCI_LAYER, digest, stats.size, stats.content)


def layer_snapshot_key(diff_ids: Sequence[str]) -> str:
    """The snapshot key of the top of the stack ``diff_ids`` (its chain ID)."""
    return layer_key(chain_ids([Digest.parse(d) for d in diff_ids])[-1])


def adopt_snapshot(snapshotter: Snapshotter, key: str, diff_ids: Sequence[str]) -> str:
    """Commit active snapshot ``key`` as the layer snapshot of the stack ``diff_ids``.

    If another build made that layer first, ours is dropped and theirs used: same chain ID,
    same content.
    """
    top = layer_snapshot_key(diff_ids)
    try:
        snapshotter.commit(top, key)
    except Conflict:
        snapshotter.remove(key)
    return top


def store_step(
    images: ImageStore,
    parent: StepImage,
    *,
    config: ImageConfig,
    history: History,
    layer: ImageLayer | None,
    top: str | None,
    lease: Lease | None = None,
    batch: StepBatch | None = None,
) -> StepImage:
    """Store the image of a step: ``parent`` with ``config`` and, if given, one more layer.

    With a ``batch`` (a build's) the image is only encoded and queued: the batch writes it
    with the steps around it. Otherwise ``lease`` is the build's own lease (held for the whole
    build), else the step takes one, and the image is stored at once, as every image is
    (config and manifest blobs, then one transaction), but without `ImageStore.operation`,
    whose clean-up on failure lists the whole content store (O(N^2) for N steps).
    """
    if parent.stored_config is not None:
        # ``config`` has the computed parent's history: the new image's is the stored one's.
        parent = parent.exact()
        config = replace(config, history=parent.config.history)
    layers = (*parent.layers, layer) if layer is not None else parent.layers
    history = replace(history, empty_layer=layer is None)
    diff_ids = tuple(la.diff_id for la in layers)
    new_config = replace(
        config,
        created=history.created,
        rootfs=RootFS("layers", diff_ids),
        history=(*config.history, history),
    )
    parent_id = parent.image.id if parent.image is not None else None
    next_top = top if layer is not None else parent.top
    if batch is not None:
        blobs = encode_image(
            batch.encode_config(new_config), [(la, batch.blob_size(la)) for la in layers]
        )
        new = NewImage(
            blobs.manifest_digest,
            blobs.config_digest,
            new_config.created,
            layers,
            intermediate=True,
            parent=parent_id,
        )
        batch.add(new, blobs, new_config)
        return StepImage(new.image(now_rfc3339()), new_config, layers, next_top, parent_id)
    if lease is None:
        with images.root.lease() as own:
            image = _store_step(images, own, new_config, layers, parent.image)
    else:
        image = _store_step(images, lease, new_config, layers, parent.image)
    return StepImage(image, new_config, layers, next_top, parent_id)


def store_named(
    images: ImageStore, batch: StepBatch, final: StepImage, names: Sequence[Reference]
) -> Image:
    """Write what ``batch`` holds, then write ``final`` (again, if a prune removed its row
    meanwhile) with ``names`` pointing at it, through `ImageStore.write_many` under the build's
    hold.

    Nothing is copied: every blob of ``final`` was held by the build's lease when it was made
    or found, so it is still there; the hold is asked again (as every write does, before it
    looks) and holds nothing new. Its layers are taken from ``final`` and its creation time from
    its row, not the store's rows or its config, which may be gone or large."""
    batch.flush()
    image = final.image
    assert image is not None
    facts = {la.blob: LayerInfo(la.diff_id, la.size, la.content_size) for la in final.layers}
    stored = ContentImage(
        images.content,
        image.manifest_digest,
        image.media_type,
        config_digest=image.config_digest,
        facts=lambda _: facts,
    )
    request = WriteRequest(
        stored,
        tuple(names),
        intermediate=image.intermediate,
        parent=final.parent,
        created=image.created,
    )
    return images.write_many([request], hold=lambda keys: batch.hold.add("blob", keys))[0]


def _store_step(
    images: ImageStore,
    lease: Lease,
    config: ImageConfig,
    layers: Sequence[ImageLayer],
    parent: Image | None,
) -> Image:
    """A step's image: intermediate (the build cache holds it), its parent recorded."""
    return store_image(
        images,
        lease,
        config=config,
        layers=layers,
        intermediate=True,
        parent=parent.id if parent is not None else None,
    )


def scratch_dir(root: Path) -> Path:
    path = root / "tmp"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path
