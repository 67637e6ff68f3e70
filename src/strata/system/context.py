"""The services a check looks through, opened once per ``system check``."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore
    from strata.runtime.lifecycle import Containers
    from strata.snapshot import Snapshotter

__all__ = ["SECOND_LOOK", "CheckContext", "twice"]

SECOND_LOOK = 0.5
"""Seconds between two looks at something a live command may hold in a moment: made, then
locked (an ingest, a new snapshot directory)."""


def twice(look: Callable[[], bool]) -> bool:
    """``look`` true now and again `SECOND_LOOK` seconds later."""
    if not look():
        return False
    time.sleep(SECOND_LOOK)
    return look()


class CheckContext:
    """One store root and the services over it; ``quick`` skips re-hashing blobs."""

    def __init__(self, root: StoreRoot, *, quick: bool = False) -> None:
        self.root = root
        self.quick = quick

    @cached_property
    def images(self) -> ImageStore:
        from strata.image.store import ImageStore

        return ImageStore(self.root)

    @cached_property
    def containers(self) -> Containers:
        from strata.runtime.lifecycle import Containers

        return Containers(self.root)

    @cached_property
    def snapshotter(self) -> Snapshotter:
        from strata.snapshot.select import default_snapshotter

        return default_snapshotter(self.root.path, self.root.db)

    def relative(self, path: object) -> str:
        """``path`` relative to the root, as the problem lines name places."""
        text = str(path)
        prefix = str(self.root.path).rstrip("/") + "/"
        return text[len(prefix) :] if text.startswith(prefix) else text
