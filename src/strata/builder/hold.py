"""What a running build depends on, held by its lease so that no prune collects it meanwhile.

The lease protocol (`strata.store.leases`) is "lease before you look": a blob or snapshot key
is added to the build's lease before the build reads or stacks on it, and only then is it
checked to be there. An image found by name or in the build cache is held thus: its manifest
and config first (their digests are in its row), then its layers and their snapshots (named by
the manifest and the layers table). Whatever the build makes (layer blobs, step snapshots,
config and manifest blobs) is leased before it is written. A key is leased once per build.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from strata.builder.cache import BuildCache
from strata.diff.chain import chain_ids, layer_key
from strata.errors import StrataError
from strata.image.store import Image, ImageLayer, ImageStore
from strata.store.leases import Lease

AHEAD: Final = 256
FAN_OUT: Final = 4


class BuildHold:
    """The build's lease, remembering what it already holds (one commit per new batch)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._held: set[tuple[str, str]] = set()

    def add(self, kind: str, keys: Iterable[str]) -> None:
        """Hold ``keys`` of ``kind`` (committed before this returns); known ones are skipped."""
        new = [k for k in dict.fromkeys(keys) if (kind, k) not in self._held]
        if not new:
            return
        self.lease.add_all(kind, new)
        self._held.update((kind, k) for k in new)

    def layers(self, layers: Iterable[ImageLayer]) -> None:
        """Hold the blobs of ``layers`` and the snapshots of their stack (chain IDs)."""
        stack = list(layers)
        self.add("blob", (str(la.blob) for la in stack))
        if stack:
            keys = [layer_key(c) for c in chain_ids([la.diff_id for la in stack])]
            self.add("snapshot", keys)

    def cache_chain(self, images: ImageStore, cache: BuildCache, manifest: str) -> None:
        """Hold, in one commit, the manifest and config of the cached image ``manifest`` and
        of the cached images that earlier builds made on it, step after step (up to
        `AHEAD` images, `FAN_OUT` per image): the images a rebuild hits next. Only the rows are
        read here (no blob), so this is still "lease before you look"; each hit then checks
        its blobs are there (`image`). A rebuild of N cached steps pays N/`AHEAD` lease
        commits instead of N."""
        if ("blob", manifest) in self._held:
            return
        keys: list[str] = []
        level, seen = [manifest], 0
        while level and seen < AHEAD:
            below = []
            for digest in level[: AHEAD - seen]:
                found = images.by_manifest(digest)
                if found is None:
                    continue
                seen += 1
                keys += (str(found.manifest_digest), str(found.config_digest))
                children = cache.children(str(found.config_digest))[:FAN_OUT]
                below += [r.image for r in children if ("blob", r.image) not in self._held]
            level = below
        self.add("blob", keys)

    def image(self, images: ImageStore, image: Image) -> tuple[ImageLayer, ...] | None:
        """Hold every blob and layer snapshot of ``image``; its layers, or None if some part
        of it is gone (it was removed before the lease held it). Its config is held, not read
        (`ImageStore.config` reads it when it is needed)."""
        self.add("blob", (str(image.manifest_digest), str(image.config_digest)))
        content = images.content
        try:
            if not (content.exists(image.manifest_digest) and content.exists(image.config_digest)):
                return None
            layers = tuple(images.layers(image))
            self.layers(layers)
            if not all(content.exists(la.blob) for la in layers):
                return None
        except StrataError:
            return None  # a blob or the layers' rows went before the lease held them
        return layers
