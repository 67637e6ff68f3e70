"""The store root: one directory holding blobs, ingests, snapshots and the metadata database."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import StoreError
from strata.store.db import Database

if TYPE_CHECKING:
    from strata.content.local import LocalContentStore
    from strata.store.leases import Lease

DEFAULT_ROOT_FOR_ROOT = Path("/var/lib/strata")


def default_root() -> Path:
    """``STRATA_ROOT``, else /var/lib/strata for root, else ``$XDG_DATA_HOME/strata``."""
    env = os.environ.get("STRATA_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return DEFAULT_ROOT_FOR_ROOT
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "strata"


class StoreRoot:
    """Opens (creating on first use) the directory layout of DESIGN.md "On disk".

    The database is opened lazily so commands that only read blobs stay cheap.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store root {path}: cannot create: {exc.strerror}") from exc
        if not path.is_dir():
            raise StoreError(f"store root {path}: not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StoreError(f"store root {path}: not writable by this user")
        self._content: LocalContentStore | None = None
        self._db: Database | None = None

    @property
    def content(self) -> LocalContentStore:
        # Lazily: ``run`` of an unpacked image reads no blob through it.
        if self._content is None:
            from strata.content.local import LocalContentStore

            self._content = LocalContentStore(self.path)
        return self._content

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.path / "strata.db")
        return self._db

    @contextlib.contextmanager
    def lease(self, *, ttl: float = 24 * 3600.0) -> Iterator[Lease]:
        """Protect blobs written during an operation from a concurrent gc until it commits."""
        from strata.store.leases import lease

        with lease(self.db, ttl=ttl) as held:
            yield held

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> StoreRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
