"""The per-invocation state shared by commands: where the store is, opened on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from strata.image.root import StoreRoot
    from strata.image.store import ImageStore


@dataclass
class App:
    """Global options and lazily opened stores."""

    root: str | None = None
    debug: bool = False
    _store: StoreRoot | None = field(default=None, repr=False)

    def store(self) -> StoreRoot:
        if self._store is None:
            from strata.image.root import StoreRoot, default_root

            self._store = StoreRoot(Path(self.root) if self.root else default_root())
        return self._store

    def images(self) -> ImageStore:
        from strata.image.store import ImageStore

        return ImageStore(self.store())


pass_app = click.make_pass_decorator(App)
