"""Pure changes to images, as go-containerregistry's ``mutate``: each returns a new in-memory
image (`MemoryImage`) and writes nothing; `ImageStore.write` stores the result.

The new config and manifest are encoded as strata's commit and build steps encode theirs (the
config's canonical JSON, an OCI manifest), so an image made here and one committed have the same
digests for the same content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from strata.image import changes as _changes
from strata.image.model import Image, Layer, MemoryImage
from strata.oci.config import History, ImageConfig, RootFS


def set_config(image: Image, config: ImageConfig) -> MemoryImage:
    """``image`` with ``config`` (as given: its rootfs should name ``image``'s layers)."""
    return MemoryImage(config, image.layers())


def append_layer(image: Image, layer: Layer, *, history: History | None = None) -> MemoryImage:
    """``image`` with ``layer`` on top: its diff ID appended to the rootfs, and ``history``
    (an entry with no fields if not given) appended to the config's history."""
    config = image.config()
    entry = replace(history if history is not None else History(), empty_layer=False)
    new_config = replace(
        config,
        rootfs=RootFS("layers", (*config.rootfs.diff_ids, layer.diff_id)),
        history=(*config.history, entry),
    )
    return MemoryImage(new_config, (*image.layers(), layer))


def append_history(image: Image, history: History) -> MemoryImage:
    """``image`` with a history entry that made no layer (a metadata step: ENV, CMD...)."""
    config = image.config()
    entry = replace(history, empty_layer=True)
    return set_config(image, replace(config, history=(*config.history, entry)))


def apply_changes(image: Image, changes: Iterable[str]) -> MemoryImage:
    """``image`` with the ``-c`` changes of ``commit`` and ``import`` applied to its config
    (`strata.image.changes`: a bad change raises before anything is made)."""
    return set_config(image, _changes.apply_changes(image.config(), changes))
